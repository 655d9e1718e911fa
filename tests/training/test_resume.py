"""Exact resume and the NaN guard.

The real test: train.py is killed with SIGKILL once its first checkpoint
exists, restarted with the same command, and must end with the same weights,
bit for bit, as an uninterrupted run (--deterministic).
"""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.data import datasets
from rmtl_tf.training import callbacks, checkpoint, train_lib
from rmtl_tf.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TINY_CLI = ["--backbone=resnet_tiny", "--head_channels=8",
            "--low_level_channels=4", "--image_size=32,32", "--batch_size=2",
            "--train_steps=60", "--checkpoint_every=3", "--bank=random",
            "--variant=rc_nff", "--train_examples=8", "--eval_examples=2",
            "--nojit_compile", "--deterministic", "--tasks=semseg"]


def _train_cmd(model_dir, extra=()):
    return [sys.executable, os.path.join(ROOT, "train.py"),
            f"--model_dir={model_dir}", *TINY_CLI, *extra]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _weights(model_dir):
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    return {v.path: np.asarray(v) for v in model.weights}


def _kill_resume_and_compare(tmp_path, task, extra=()):
    """Runs train.py uninterrupted, and again killed (SIGKILL) once `task`
    has a checkpoint, then restarted; asserts bit-identical weights."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    proc = subprocess.run(_train_cmd(reference, extra), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    state = killed / "checkpoints" / task / "checkpoint.json"
    run = subprocess.Popen(_train_cmd(killed, extra), cwd=ROOT, env=_env(),
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not state.exists() and run.poll() is None \
            and time.time() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, "the run ended before the kill"
    killed_at = checkpoint.latest(str(state.parent))["step"]
    assert 0 < killed_at < 60
    with open(killed / "checkpoints" / task / f"ckpt-{killed_at}.weights.npz",
              "rb") as f:
        checkpointed = dict(np.load(f, allow_pickle=False))

    resumed = subprocess.run(_train_cmd(killed, extra), cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=600,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming task {task!r} from step" in resumed.stdout
    ref, got = _weights(reference), _weights(killed)
    assert ref.keys() == got.keys()
    trained = [k for k in ref if task in k]
    assert trained, "no task variables compared"
    for name in ref:
        assert np.array_equal(ref[name], got[name]), name
    # The comparison can fail: the task's variables moved after the
    # checkpoint the killed run resumed from.
    assert any(not np.array_equal(checkpointed[k], got[k]) for k in trained)
    assert not (killed / "checkpoints" / task).exists()


def test_sigkill_in_the_second_task_then_resume(tmp_path):
    """Killed while the second task trains (the first is in model.keras):
    the resumed run ends with the weights of an uninterrupted one."""
    _kill_resume_and_compare(tmp_path, "depth", ["--tasks=semseg,depth"])
    assert not (tmp_path / "killed" / "checkpoints").exists() or not list(
        (tmp_path / "killed" / "checkpoints").iterdir())


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(
        tmp_path):
    _kill_resume_and_compare(tmp_path, "semseg")


def test_resumed_pipeline_starts_at_the_batch_after_the_checkpoint():
    kwargs = dict(tasks=["semseg"], image_size=(32, 32), batch_size=2,
                  num_examples=3, seed=1, training=True, augment=True)
    full = [b for b in datasets.load_split("synthetic", "train", **kwargs)
            .take(6).as_numpy_iterator()]
    # 3 examples, batches of 2: batch 3 starts in the second pass over a
    # reshuffled split, and its augmentation draws continue too.
    resumed = [b for b in datasets.load_split(
        "synthetic", "train", start_batch=3, **kwargs)
        .take(3).as_numpy_iterator()]
    for (image, labels), (ref_image, ref_labels) in zip(resumed, full[3:]):
        assert np.array_equal(image, ref_image)
        assert np.array_equal(labels["semseg"], ref_labels["semseg"])
    assert not np.array_equal(resumed[0][0], full[0][0])
    with pytest.raises(ValueError, match="start_batch=-1"):
        datasets.load_split("synthetic", "train", start_batch=-1, **kwargs)


def _config(model_dir, **overrides):
    args = dict(model_dir=str(model_dir), tasks=("semseg",),
                backbone="resnet_tiny", head_channels=8, low_level_channels=4,
                image_size=(32, 32), batch_size=2, train_steps=8,
                checkpoint_every=2, bank="random", variant="rc_nff",
                train_examples=4, eval_examples=2, jit_compile=False)
    args.update(overrides)
    return TrainConfig(**args)


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    split = datasets.DataSource.split

    def poisoned(self, *args, **kwargs):
        ds = split(self, *args, **kwargs)
        if not kwargs.get("training"):
            return ds
        # Batch index 4 (step 5) carries a NaN pixel.
        return ds.enumerate().map(lambda i, batch: (
            tf.where(i == 4, batch[0] * np.nan, batch[0]), batch[1]))

    monkeypatch.setattr(datasets.DataSource, "split", poisoned)
    with pytest.raises(FloatingPointError) as error:
        train_lib.train(_config(tmp_path), log=lambda *_: None)
    message = str(error.value)
    # Either the loss or (when the forward pass swallows the NaN: the
    # stem's max pooling drops it) the updated weights are caught at step 5.
    assert ("Loss of task 'semseg' is nan at step 5;" in message
            or "Weights of task 'semseg' became NaN or Inf at step 5 "
            in message), message
    assert "last good checkpoint (step 4)" in message
    ckpt_dir = str(tmp_path / "checkpoints" / "semseg")
    assert checkpoint.latest(ckpt_dir)["step"] == 4
    with np.load(os.path.join(ckpt_dir, "ckpt-4.weights.npz"),
                 allow_pickle=False) as data:
        assert all(np.all(np.isfinite(data[k])) for k in data.files)
    assert not (tmp_path / "model.keras").exists()


def test_no_checkpoint_is_written_of_nan_weights(tmp_path):
    model = train_lib.MultiTaskModel(
        tasks=["semseg"], num_classes={"semseg": 4}, image_size=(32, 32),
        backbone="resnet_tiny", head_channels=8, low_level_channels=4)
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    callback = callbacks.CheckpointCallback(str(tmp_path), model, optimizer,
                                            2, task="semseg")
    callback.on_epoch_end(0)
    assert checkpoint.latest(str(tmp_path))["step"] == 2
    variable = model.task_variables("semseg")[0]
    variable.assign(np.full(variable.shape, np.inf, "float32"))
    with pytest.raises(FloatingPointError, match=(
            f"{variable.path!r} is NaN or Inf at step 4 of task 'semseg'")):
        callback.on_epoch_end(1)
    assert checkpoint.latest(str(tmp_path))["step"] == 2


def test_checkpoint_of_other_settings_needs_overwrite(tmp_path,
                                                      kill_after_checkpoint):
    revive = kill_after_checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_lib.train(_config(tmp_path), log=lambda *_: None)
    revive()
    with pytest.raises(ValueError, match=(
            r"other settings: batch_size: checkpoint has 2, this run has 4.*"
            r"--overwrite")):
        train_lib.train(_config(tmp_path, batch_size=4), log=lambda *_: None)
    lines = []
    summary = train_lib.train(_config(tmp_path, batch_size=4, overwrite=True),
                              log=lines.append)
    assert any(line.startswith("--overwrite: discarding") for line in lines)
    assert not any(line.startswith("Resuming") for line in lines)
    assert summary["tasks"]["semseg"]["steps"] == 8


def test_learning_rate_schedule_continues_from_the_restored_step(tmp_path):
    config = _config(tmp_path, learning_rate=0.1, train_steps=10)

    def setup():
        model = train_lib.MultiTaskModel(
            tasks=["semseg"], num_classes={"semseg": 4}, image_size=(32, 32),
            **config.model_kwargs())
        optimizer = train_lib._optimizer(config, 10)  # pylint: disable=protected-access
        optimizer.build(model.trainable_variables)
        return model, optimizer

    model, optimizer = setup()
    optimizer.iterations.assign(6)
    checkpoint.save(str(tmp_path), model, optimizer, 6)
    model, fresh = setup()
    assert int(fresh.iterations) == 0
    assert checkpoint.restore(str(tmp_path), model, fresh) == 6
    assert int(fresh.iterations) == 6
    # Poly decay, power 0.9: lr(6) = 0.1 * (1 - 6/10)^0.9, not lr(0).
    np.testing.assert_allclose(float(fresh.learning_rate),
                               0.1 * 0.4 ** 0.9, rtol=1e-6)


def test_killed_after_the_last_checkpoint_finishes_without_training(
        tmp_path, monkeypatch):
    """Killed between the last checkpoint and model.keras: the restart
    trains no step and saves the checkpoint's weights."""
    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before model.keras was written")

    monkeypatch.setattr(checkpoint, "atomic_save_model", crash)
    with pytest.raises(KeyboardInterrupt):
        train_lib.train(_config(tmp_path), log=lambda *_: None)
    ckpt_dir = str(tmp_path / "checkpoints" / "semseg")
    assert checkpoint.latest(ckpt_dir)["step"] == 8
    with np.load(os.path.join(ckpt_dir, "ckpt-8.weights.npz"),
                 allow_pickle=False) as data:
        saved = {k: data[k] for k in data.files}
    monkeypatch.undo()
    lines = []
    summary = train_lib.train(_config(tmp_path), log=lines.append)
    assert "Resuming task 'semseg' from step 8." in lines
    model = train_lib.load_model(str(tmp_path))
    assert {v.path: np.asarray(v) for v in model.weights}.keys() == \
        saved.keys()
    for variable in model.weights:
        assert np.array_equal(np.asarray(variable), saved[variable.path])
    assert summary["tasks"]["semseg"]["steps"] == 8
