"""train_lib in-process: incremental training, resume after an interruption,
architecture checks."""

import os

import numpy as np
import pytest

from rmtl_tf.training import train_lib
from rmtl_tf.training.config import TrainConfig


def _config(model_dir, tasks, **overrides):
    args = dict(model_dir=str(model_dir), tasks=tasks,
                backbone="resnet_tiny", head_channels=8,
                low_level_channels=4, image_size=(32, 32), batch_size=2,
                train_steps=4, checkpoint_every=2, pretrain_steps=1,
                train_examples=4, eval_examples=2, jit_compile=False)
    args.update(overrides)
    return TrainConfig(**args)


def test_killed_run_resumes_from_its_checkpoint(tmp_path,
                                                kill_after_checkpoint):
    revive = kill_after_checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_lib.train(_config(tmp_path, ("semseg",)), log=lambda *_: None)
    ckpt = tmp_path / "checkpoints" / "semseg" / "checkpoint.json"
    assert ckpt.is_file()
    assert not (tmp_path / "model.keras").exists()

    revive()
    lines = []
    summary = train_lib.train(_config(tmp_path, ("semseg",)),
                              log=lines.append)
    assert "Resuming task 'semseg' from step 2." in lines
    assert summary["tasks"]["semseg"]["steps"] == 4
    assert 0 < summary["tasks"]["semseg"]["median_step_seconds"] < 60
    assert (tmp_path / "model.keras").is_file()
    # A finished task leaves no checkpoints behind.
    assert not (tmp_path / "checkpoints" / "semseg").exists()


def test_add_task_keeps_old_outputs_and_rejects_other_architecture(tmp_path):
    lines = []
    train_lib.train(_config(tmp_path, ("semseg",)), log=lines.append)
    model = train_lib.load_model(str(tmp_path))
    images = np.random.default_rng(0).uniform(
        0, 255, (2, 32, 32, 3)).astype(np.float32)
    before = model.predict(images, verbose=0)["semseg"]

    summary = train_lib.train(_config(tmp_path, ("semseg", "depth")),
                              log=lines.append)
    assert "Task 'semseg' is already trained: its variables stay frozen." \
        in lines
    assert summary["tasks"]["depth"]["old_tasks_bit_identical"] is True
    model = train_lib.load_model(str(tmp_path))
    assert model.tasks == ["semseg", "depth"]
    after = model.predict(images, verbose=0)
    assert np.array_equal(before, after["semseg"])
    assert set(summary["evaluation"]) == {"semseg", "depth"}

    with pytest.raises(ValueError, match="head_channels: model has 8, "
                                         "flags say 16"):
        train_lib.train(_config(tmp_path, ("normals",), head_channels=16))


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No trained model in "
                                                "model_dir="):
        train_lib.load_model(os.path.join(str(tmp_path), "nothing"))


def test_authors_decompositions_initialize_the_run(tmp_path):
    """--ri_decompositions: the model starts from their PCA (kept in
    ri.npz), banks W U; the wrong size of model is refused by name."""
    from rmtl_tf.models import bank, response_init  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    layers = {"conv1": 8, "layer1_0_conv1": 8, "layer1_0_conv2": 8,
              "layer2_0_conv1": 16, "layer2_0_conv2": 16,
              "layer3_0_conv1": 16, "layer3_0_conv2": 16,
              "layer4_0_conv1": 32, "layer4_0_conv2": 32}
    written = {}
    for name, channels in layers.items():
        folder = tmp_path / "RI" / name
        folder.mkdir(parents=True)
        u, _ = np.linalg.qr(rng.normal(size=(channels, channels)))
        np.save(folder / "components.npy", u)
        np.save(folder / "mean.npy", rng.normal(size=channels))
        written[name] = u
    model_dir = tmp_path / "model"
    lines = []
    train_lib.train(_config(model_dir, ("semseg",), variant="rc_ri_nff",
                            ri_decompositions=str(tmp_path / "RI"),
                            train_steps=1, checkpoint_every=1),
                    log=lines.append)
    assert any("decompositions of 9 layers" in line for line in lines)
    ri = bank.load_npz(str(model_dir / "ri.npz"))
    pretrained = bank.load_npz(str(model_dir / "bank.npz"))
    model = train_lib.load_model(str(model_dir))
    for name, u in written.items():
        np.testing.assert_allclose(ri[f"{name}/components"], u, atol=1e-7)
        layer = model.get_layer(name)
        np.testing.assert_allclose(
            layer.bank.numpy(),
            np.tensordot(pretrained[f"{name}/kernel"], u, axes=[[3], [0]]),
            atol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="rc_ri_"):
        _config(tmp_path / "other", ("semseg",), variant="rc_nff",
                ri_decompositions=str(tmp_path / "RI"))
    with pytest.raises(ValueError, match="'conv1'.*16 filters.*another"):
        train_lib.train(_config(tmp_path / "wide", ("semseg",),
                                variant="rc_ri_nff", width_multiplier=2.0,
                                ri_decompositions=str(tmp_path / "RI")),
                        log=lambda *_: None)


def test_ri_images_computes_the_pca_on_the_folder(tmp_path):
    """--ri_images: RI's response mean of conv1 is that of the folder's
    centre crops (computed here with numpy from the stored bank), not of
    the training scenes; and the two RI sources exclude each other."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import bank  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import resnet_backbone  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(1)
    crops = []
    for i in range(3):  # Short side 256: the crop is plain slicing.
        pixels = rng.integers(0, 256, (256, 256 + 8 * i, 3), dtype=np.uint8)
        (tmp_path / "imgs" / f"c{i}").mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "imgs" / f"c{i}" / "a.png")
        left = int(round(8 * i / 2 + 16))
        crops.append(pixels[16:240, left:left + 224].astype(np.float64))
    model_dir = tmp_path / "model"
    lines = []
    train_lib.train(_config(model_dir, ("semseg",), variant="rc_ri_nff",
                            ri_images=str(tmp_path / "imgs"),
                            train_steps=1, checkpoint_every=1),
                    log=lines.append)
    assert any("PCA of 9 layers on 3 images" in line for line in lines)
    ri = bank.load_npz(str(model_dir / "ri.npz"))
    kernel = bank.load_npz(str(model_dir / "bank.npz"))["conv1/kernel"]
    # conv1 (7x7, stride 2, pad 3) of the normalized crops, in numpy.
    x = (np.stack(crops) - np.array(resnet_backbone.IMAGENET_MEAN)) / \
        np.array(resnet_backbone.IMAGENET_STD)
    x = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    responses = sum(
        np.einsum("nhwc,co->nhwo", x[:, i:i + 224:2, j:j + 224:2],
                  kernel[i, j].astype(np.float64))
        for i in range(7) for j in range(7))
    np.testing.assert_allclose(ri["conv1/mean"],
                               responses.mean(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="pass one"):
        _config(tmp_path / "both", ("semseg",), variant="rc_ri_nff",
                ri_images=str(tmp_path / "imgs"), ri_decompositions="RI")
    with pytest.raises(ValueError, match="--ri_images.*rc_ri_"):
        _config(tmp_path / "other", ("semseg",), variant="rc_nff",
                ri_images=str(tmp_path / "imgs"))


def test_schedule_is_exact_when_not_a_multiple_of_the_interval(
        tmp_path, monkeypatch):
    """train_steps=5, checkpoint_every=2: checkpoints at 2, 4, 5 and the
    optimizer takes exactly 5 steps (the last interval is shorter), the
    learning rate decays over 5; a run resumed at 4 trains 1 step."""
    from rmtl_tf.training import checkpoint  # pylint: disable=import-outside-toplevel
    saved = []
    original = checkpoint.save

    def record(directory, model, optimizer, step, run=None):
        saved.append((step, int(optimizer.iterations.numpy()),
                      float(optimizer.learning_rate.numpy())))
        return original(directory, model, optimizer, step, run=run)

    monkeypatch.setattr(checkpoint, "save", record)
    summary = train_lib.train(_config(tmp_path / "a", ("depth",),
                                      train_steps=5),
                              log=lambda *_: None)
    assert [s[:2] for s in saved] == [(2, 2), (4, 4), (5, 5)]
    assert saved[-1][2] == 0.0  # Poly decay over exactly 5 steps ends at 0.
    assert summary["tasks"]["depth"]["steps"] == 5

    # Killed after the checkpoint at step 4, then resumed: one more step,
    # and the weights of the uninterrupted run.
    from rmtl_tf.training import callbacks  # pylint: disable=import-outside-toplevel
    first = callbacks.CheckpointCallback.on_epoch_end

    def kill_at_four(self, epoch, logs=None):
        first(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(callbacks.CheckpointCallback, "on_epoch_end",
                        kill_at_four)
    saved.clear()
    with pytest.raises(KeyboardInterrupt):
        train_lib.train(_config(tmp_path / "b", ("depth",), train_steps=5),
                        log=lambda *_: None)
    monkeypatch.setattr(callbacks.CheckpointCallback, "on_epoch_end", first)
    train_lib.train(_config(tmp_path / "b", ("depth",), train_steps=5),
                    log=lambda *_: None)
    assert [s[:2] for s in saved] == [(2, 2), (4, 4), (5, 5)]
    uninterrupted = train_lib.load_model(str(tmp_path / "a"))
    resumed = train_lib.load_model(str(tmp_path / "b"))
    for a, b in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
