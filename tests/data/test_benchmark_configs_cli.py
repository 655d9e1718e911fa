"""`train.py --flagfile=configs/{nyud,pascal_context}.cfg` for real, on the
tiny copies in the authors' layout: prepare from --manual_dir, train,
evaluate (tiny model and steps)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import write_fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# The configs' --bank=imagenet has no resnet_tiny checkpoint: the tiny runs
# pretrain theirs (tests/models/test_imagenet_bank.py covers imagenet).
TINY = ["--backbone=resnet_tiny", "--bank=pretrain", "--head_channels=16",
        "--low_level_channels=8", "--image_size=32,48", "--batch_size=2",
        "--train_steps=2", "--checkpoint_every=2", "--pretrain_steps=2",
        "--train_examples=3", "--eval_examples=2", "--nojit_compile"]


def _train(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), *args, *TINY],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        check=False)


@pytest.mark.parametrize("config,write,tasks", [
    ("nyud", write_fixtures.write_nyud_mt, "normals"),
    pytest.param("pascal_context", write_fixtures.write_pascal_mt,
                 "human_parts,saliency", marks=pytest.mark.slow),
])
def test_config_trains_on_the_authors_layout(tmp_path, config, write,
                                             tasks):
    manual_dir = str(tmp_path / "manual")
    write(manual_dir)
    proc = _train(f"--flagfile=configs/{config}.cfg",
                  f"--model_dir={tmp_path / 'model'}",
                  f"--manual_dir={manual_dir}",
                  f"--data_dir={tmp_path / 'tfds'}", f"--tasks={tasks}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for task in tasks.split(","):
        assert f"| {task} |" in proc.stdout
    assert os.path.isfile(tmp_path / "model" / "model.keras")
    # int8 calibration (export.py) reads the model's own training images.
    from PIL import Image  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import quantize  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import model_dir  # pylint: disable=import-outside-toplevel
    dataset, data_dir = model_dir.training_data(str(tmp_path / "model"))
    assert (dataset, data_dir) == (config, str(tmp_path / "tfds"))
    images = quantize.calibration_images((32, 48), 2, dataset=dataset,
                                         data_dir=data_dir)
    assert images.shape == (2, 32, 48, 3)
    folder = "NYUD_MT/images" if config == "nyud" else "PASCAL_MT/JPEGImages"
    train = {}
    for name in sorted(os.listdir(os.path.join(manual_dir, folder))):
        if name.startswith(("train", "2008", "2009")):
            full = np.asarray(Image.open(os.path.join(
                manual_dir, folder, name)).convert("RGB"), np.float32)
            h, w = full.shape[:2]
            top, left = (h - 32) // 2, (w - 48) // 2
            train[name] = full[top:top + 32, left:left + 48]
    for image in images:  # Central windows of training images.
        assert any(np.array_equal(image, t) for t in train.values())


def test_bad_file_stops_train_with_its_name(tmp_path):
    manual_dir = str(tmp_path / "manual")
    write_fixtures.write_nyud_mt(manual_dir)
    label = os.path.join(manual_dir, "NYUD_MT", "depth", "val_000001.mat")
    os.remove(label)
    proc = _train("--flagfile=configs/nyud.cfg",
                  f"--model_dir={tmp_path / 'model'}",
                  f"--manual_dir={manual_dir}",
                  f"--data_dir={tmp_path / 'tfds'}", "--tasks=semseg")
    assert proc.returncode == 2
    assert f"Missing depth label: {label}" in proc.stderr
    assert "--skip_bad_examples" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "tfds" / "nyud_mt" / "1.0.0")
