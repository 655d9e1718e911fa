"""Distributed and mixed-precision training, for real: MirroredStrategy on
two logical CPU devices and two multi-worker processes on 127.0.0.1, each
compared with an independent single-device computation of the correct
per-replica split.

The global batch of 4 is split in two halves, one per replica. BatchNorm
normalizes each half with its own statistics, each replica's loss is the
masked mean over its half, and the gradients are all-reduced: the step is
the mean of the two halves' gradients, and the kept BatchNorm moving
statistics are the first replica's (of the chief), updated from the first
halves only. The reference computes exactly that on one device, without
any strategy: batches of 2 (the stream of scenes does not depend on the
batch size, so batch 2k is the first half of global batch k and 2k + 1 the
second), the optimizer accumulating the gradients of two batches before
applying their mean (Keras's `gradient_accumulation_steps=2`, with the
learning-rate schedule of the global steps), and the BatchNorm moving
statistics left unchanged by every second half.

There are 4 training scenes, shuffled, repeated and batched: the two halves
of every global batch are different scenes with different statistics, so
wrong sharding (each replica given the whole global batch, or both the same
half, or a half other than the chief's kept) changes the weights by far
more than the tolerance (by 0.1 to 0.2 when measured). The weights after 3
steps agree with the reference to float rounding (measured: bit for bit).
The learning rate is small (0.02) so that 3 steps do not amplify
rounding."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from rmtl_tf.data import datasets
from rmtl_tf.training import distribute, strategies, train_lib
from rmtl_tf.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# The same run as flags (train.py) and as TrainConfig arguments.
RUN = dict(tasks="semseg", backbone="resnet_tiny", head_channels=8,
           low_level_channels=4, image_size="32,32", batch_size=4,
           train_steps=3, checkpoint_every=3, bank="random",
           train_examples=4, eval_examples=2, momentum=0.0,
           weight_decay=0.0, learning_rate=0.02, seed=3)
REPLICAS = 2
TOLERANCE = 1e-5  # On |difference| / (|weight| + 1): absolute below 1.


def _config(model_dir, **overrides):
    args = {k: v for k, v in RUN.items() if k not in ("tasks", "image_size")}
    args.update(model_dir=str(model_dir), tasks=(RUN["tasks"],),
                image_size=tuple(int(s) for s in RUN["image_size"].split(
                    ",")), augment=False)
    args.update(overrides)
    return TrainConfig(**args)


def _flags(model_dir):
    return [f"--model_dir={model_dir}", "--noaugment",
            *(f"--{k}={v}" for k, v in RUN.items())]


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                PYTHONPATH=os.pathsep.join(
                    [ROOT, os.environ.get("PYTHONPATH", "")]), **extra)


def _weights(model_dir):
    model = train_lib.load_model(str(model_dir))
    return {v.path: np.asarray(v) for v in model.weights}


def _assert_same_weights(got, want):
    assert sorted(got) == sorted(want)
    worst = max((float(np.max(np.abs(got[k] - want[k])
                              / (np.abs(want[k]) + 1.0))), k) for k in want)
    assert worst[0] < TOLERANCE, worst
    return worst


class _GlobalStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` of the global step: `REPLICAS` batches make one."""

    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, step):
        return self.schedule(step // REPLICAS)


def _accumulating_optimizer(config, total_steps):
    """`train_lib._optimizer` of the global run, applying the mean gradient
    of every `REPLICAS` batches (the replicas' all-reduce, on one device).
    RUN has no momentum and no weight decay."""
    schedule = keras.optimizers.schedules.PolynomialDecay(
        config.learning_rate, decay_steps=total_steps // REPLICAS,
        end_learning_rate=0.0, power=config.poly_power)
    return keras.optimizers.SGD(_GlobalStepSchedule(schedule),
                                gradient_accumulation_steps=REPLICAS)


class _FirstReplicaStatistics(keras.callbacks.Callback):
    """Stands in for `distribute.SyncReplicas` in the reference: every
    batch but the first of each global batch leaves the non-trainable
    variables (the BatchNorm moving statistics) as they were, so they are
    updated by the first halves only, as the first replica's."""

    def __init__(self, model, optimizer):
        del optimizer
        super().__init__()
        self.variables = [v for v in model.weights if not v.trainable]
        self.step, self.saved = 0, None

    def on_train_batch_begin(self, batch, logs=None):
        self.saved = [np.asarray(v) for v in self.variables]

    def on_train_batch_end(self, batch, logs=None):
        if self.step % REPLICAS:
            for variable, value in zip(self.variables, self.saved):
                variable.assign(value)
        self.step += 1


@pytest.fixture(scope="module")
def per_replica_reference(tmp_path_factory):
    """The reference: one device, no strategy, each global batch computed
    as its two halves (see the module doc)."""
    model_dir = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_lib, "_optimizer", _accumulating_optimizer)
        patch.setattr(distribute, "SyncReplicas", _FirstReplicaStatistics)
        summary = train_lib.train(
            _config(model_dir, batch_size=RUN["batch_size"] // REPLICAS,
                    train_steps=RUN["train_steps"] * REPLICAS,
                    checkpoint_every=RUN["checkpoint_every"] * REPLICAS),
            log=lambda *_: None)
    return model_dir, summary


def test_the_halves_of_each_global_batch_differ():
    """What makes the comparisons sensitive to the split: the replicas'
    halves are different scenes, with different statistics."""
    config = _config("unused")
    keras.utils.set_random_seed(config.seed)  # As the runs: their batches.
    batches = datasets.load_split(
        config.dataset, "train", ["semseg"], config.image_size,
        config.batch_size, config.train_examples, seed=config.seed,
        training=True, augment=False).take(RUN["train_steps"])
    for images, _ in batches:
        halves = np.asarray(images).reshape(REPLICAS, -1, 3)
        means, stds = halves.mean(axis=1), halves.std(axis=1)
        # (Pixel values in [0, 255]; any pairing of the 4 scenes differs
        # by at least 4 in some channel's mean and 5 in its spread.)
        assert np.max(np.abs(means[0] - means[1])) > 3.0, means
        assert np.max(np.abs(stds[0] - stds[1])) > 3.0, stds


def test_every_iterator_of_the_training_split_yields_the_same_batches():
    """Keras `fit` under a strategy iterates the dataset once to build the
    model, then again to train: the second iterator must start the same
    stream, not continue the first one's reshuffles."""
    config = _config("unused")
    train = datasets.load_split(
        config.dataset, "train", ["semseg"], config.image_size,
        config.batch_size, config.train_examples, seed=config.seed,
        training=True, augment=False)
    first = iter(train)
    want = [np.asarray(next(first)[0]) for _ in range(3)]
    for _ in range(2):
        got = [np.asarray(images) for images, _ in train.take(3)]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def _initial_head(tmp_path):
    """The head kernel of the same run before any step (0 steps is not a
    valid run: train 1 step at learning rate ~0)."""
    config = _config(tmp_path, train_steps=1, checkpoint_every=1,
                     learning_rate=1e-30)
    train_lib.train(config, log=lambda *_: None)
    return _weights(tmp_path)["head_predict_semseg/kernel"]


MIRRORED_SCRIPT = """
import json, sys
from rmtl_tf.training import distribute, train_lib
from rmtl_tf.training.config import TrainConfig
replicas = distribute.build_strategy("mirrored", 2).num_replicas_in_sync
config = TrainConfig(**json.loads(sys.argv[1]))
summary = train_lib.train(config, log=lambda *_: None)

# BatchNorm moving statistics drift apart per replica (each updates them
# from its own half); broadcast_from_chief makes every copy the first's.
import keras, numpy as np, tensorflow as tf
strategy = distribute.build_strategy("mirrored", 2)
with strategy.scope():
    inputs = keras.Input((3,))
    bn = keras.layers.BatchNormalization(momentum=0.0)
    model = keras.Model(inputs, bn(inputs))
    model.compile(optimizer="sgd", loss="mse")
x = np.array([[0.0] * 3, [1.0] * 3, [5.0] * 3, [9.0] * 3], np.float32)
model.fit(tf.data.Dataset.from_tensors((x, x)).repeat(), steps_per_epoch=1,
          verbose=0)
copies = lambda: [np.asarray(v) for v in
                  strategy.experimental_local_results(bn.moving_mean.value)]
before = copies()
with strategy.scope():
    distribute.broadcast_from_chief(model.weights)
after = copies()
print(json.dumps({"replicas": replicas,
                  "loss": summary["tasks"]["semseg"]["final_loss"],
                  "bn_before": [c.tolist() for c in before],
                  "bn_after": [c.tolist() for c in after]}))
"""


def test_mirrored_two_cpu_devices_equals_the_per_replica_split(
        tmp_path, per_replica_reference):
    reference_dir, reference = per_replica_reference
    config = _config(tmp_path / "mirrored", strategy="mirrored",
                     num_cpu_devices=2)
    args = {k: list(v) if isinstance(v, tuple) else v
            for k, v in vars(config).items()}
    # Logical devices must be set before TF initializes: a fresh process.
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(args)], cwd=ROOT,
        env=_env(), capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == REPLICAS
    want = _weights(reference_dir)
    _assert_same_weights(_weights(tmp_path / "mirrored"), want)
    # The reported loss is the mean of the replicas' losses.
    np.testing.assert_allclose(
        result["loss"], reference["tasks"]["semseg"]["final_loss"],
        rtol=1e-5)
    # Halves [0, 1] and [5, 9]: moving means 0.5 and 7 per replica, then
    # the first replica's everywhere.
    np.testing.assert_allclose(result["bn_before"], [[0.5] * 3, [7.0] * 3])
    np.testing.assert_allclose(result["bn_after"], [[0.5] * 3, [0.5] * 3])
    # The weights did move: not a comparison of two initial states.
    moved = np.max(np.abs(want["head_predict_semseg/kernel"]
                          - _initial_head(tmp_path / "initial")))
    assert moved > 100 * TOLERANCE, moved


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_equal_the_per_replica_split_and_only_chief_writes(
        tmp_path, per_replica_reference):
    """Two train.py processes (TF_CONFIG each), training then evaluating
    and exporting: the chief's model equals the per-replica reference."""
    reference_dir, reference = per_replica_reference
    model_dir, export_dir = tmp_path / "multi", tmp_path / "export"
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    procs = []
    try:
        for index in range(2):
            tf_config = {"cluster": cluster,
                         "task": {"type": "worker", "index": index}}
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "train.py"),
                 "--strategy=multi_worker", *_flags(model_dir),
                 f"--export_dir={export_dir}"], cwd=ROOT,
                env=_env(TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:  # A worker waiting for a dead peer never exits.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    chief, other = outputs
    assert f"saved {model_dir / 'model.keras'}" in chief
    # The other worker trained the same steps but wrote to a temp dir,
    # deleted when it finished.
    assert str(model_dir) not in other and "rmtl_worker_" in other
    temp = other.split("saved ")[1].split("model.keras")[0]
    assert not os.path.exists(temp)
    # Evaluation and export run outside the strategy, in each process; the
    # chief's export is the one kept.
    assert "| semseg | mIoU" in chief and "| semseg | mIoU" in other
    assert (export_dir / "rmtl" / "1" / "saved_model.pb").is_file()
    assert not (export_dir / "rmtl" / "2").exists()
    summary = json.loads((model_dir / "summary.json").read_text())
    assert summary["tasks"]["semseg"]["config"]["strategy"] == "multi_worker"
    _assert_same_weights(_weights(model_dir), _weights(reference_dir))
    np.testing.assert_allclose(
        summary["tasks"]["semseg"]["final_loss"],
        reference["tasks"]["semseg"]["final_loss"], rtol=1e-5)


def test_bad_names_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"--strategy='horovod'.*"
                       r"'default', 'mirrored', 'multi_worker'"):
        _config(tmp_path, strategy="horovod")
    with pytest.raises(ValueError, match=r"--mixed_precision='float16'.*"
                       r"'mixed_float16'"):
        _config(tmp_path, mixed_precision="float16")
    with pytest.raises(ValueError, match="num_cpu_devices=2, "
                                         "strategy='default'"):
        _config(tmp_path, num_cpu_devices=2)
    with pytest.raises(ValueError, match="--batch_size=3 is the global "
                                         "batch.*2 replicas"):
        distribute.check_batch_size(
            type("Strategy", (), {"num_replicas_in_sync": 2})(), 3)


@pytest.mark.parametrize("value, message", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{cluster: 1}", r"not valid JSON.*TF_CONFIG='\{cluster: 1\}'"),
    ('{"task": {"type": "worker", "index": 0}}', "needs 'cluster'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": 1}}', r"needs 'task'.*\"index\": 1"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     r"\['ps'\] are not supported"),
])
def test_malformed_tf_config_is_a_clear_error(value, message):
    with pytest.raises(ValueError, match=message):
        strategies.parse_tf_config(value)


def test_valid_tf_config_parses():
    spec = strategies.parse_tf_config(json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]},
         "task": {"type": "worker", "index": 1}}))
    assert spec["task"]["index"] == 1


def test_cli_without_tf_config_names_the_problem(tmp_path):
    env = _env()
    env.pop("TF_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"),
         "--strategy=multi_worker", *_flags(tmp_path)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "error: --strategy=multi_worker needs the TF_CONFIG" in \
        proc.stderr
