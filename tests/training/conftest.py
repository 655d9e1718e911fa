"""Fixtures shared by the training tests."""

import pytest

from rmtl_tf.training import callbacks


@pytest.fixture
def kill_after_checkpoint(monkeypatch):
    """Makes training stop with `KeyboardInterrupt` right after its first
    checkpoint is written (a simulated kill). Returns `revive()`, which
    lets the following runs train normally again."""
    original = callbacks.CheckpointCallback.on_epoch_end

    def crash_after_first_checkpoint(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(callbacks.CheckpointCallback, "on_epoch_end",
                        crash_after_first_checkpoint)
    return lambda: monkeypatch.setattr(
        callbacks.CheckpointCallback, "on_epoch_end", original)
