"""Distributed and mixed-precision training, for real: MirroredStrategy on
two logical CPU devices and two multi-worker processes on 127.0.0.1, each
compared with a single-device run on the same global batch.

BatchNorm uses per-replica batch statistics, so a 2-replica step equals a
1-device step only when each replica's half of the global batch has the
statistics of the whole batch. The runs here use 2 training scenes and a
global batch of 4: the scenes are shuffled, then repeated, then batched,
so each half of every batch is one permutation of the 2 scenes, whose
mean and (biased) variance are those of the full batch. The loss is a
masked mean per replica; with equal halves the mean of the two replicas'
means is the mean over the batch. Then the weights after N steps must agree
to float rounding (summation order differs; measured 4e-7). The learning
rate is small (0.02) so that 3 steps do not amplify rounding: at 0.1 the
same runs differed by 1.6e-4."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from rmtl_tf.training import distribute, train_lib
from rmtl_tf.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# The same run as flags (train.py) and as TrainConfig arguments.
RUN = dict(tasks="semseg", backbone="resnet_tiny", head_channels=8,
           low_level_channels=4, image_size="32,32", batch_size=4,
           train_steps=3, checkpoint_every=3, bank="random",
           train_examples=2, eval_examples=2, momentum=0.0,
           weight_decay=0.0, learning_rate=0.02, seed=3)
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


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    """The reference: the default strategy (one device), in this process."""
    model_dir = tmp_path_factory.mktemp("single")
    summary = train_lib.train(_config(model_dir), log=lambda *_: None)
    return model_dir, summary


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


def test_mirrored_two_cpu_devices_equals_one_device(tmp_path,
                                                    single_device):
    reference_dir, reference = single_device
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
    assert result["replicas"] == 2
    # The reported loss is the global-batch mean, as on one device.
    np.testing.assert_allclose(
        result["loss"], reference["tasks"]["semseg"]["final_loss"],
        rtol=1e-5)
    want = _weights(reference_dir)
    _assert_same_weights(_weights(tmp_path / "mirrored"), want)
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


def test_two_workers_equal_one_worker_and_only_chief_writes(tmp_path,
                                                            single_device):
    """Two train.py processes (TF_CONFIG each), training then evaluating
    and exporting: the chief's model equals the single-device one."""
    reference_dir, reference = single_device
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
    np.testing.assert_allclose(
        summary["tasks"]["semseg"]["final_loss"],
        reference["tasks"]["semseg"]["final_loss"], rtol=1e-5)
    _assert_same_weights(_weights(model_dir), _weights(reference_dir))


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
        distribute.parse_tf_config(value)


def test_valid_tf_config_parses():
    spec = distribute.parse_tf_config(json.dumps(
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
