"""Every flagfile in configs/ parses into a valid TrainConfig."""

import glob
import os

import pytest
from absl import flags

from rmtl_tf.cli import train_flags
from rmtl_tf.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg")))


@pytest.fixture
def parsed_flags(monkeypatch):
    monkeypatch.chdir(ROOT)
    train_flags.define_flags(flags.FLAGS)  # Once: a second call skips all.
    yield flags.FLAGS
    flags.FLAGS.unparse_flags()


def test_configs_exist():
    names = {os.path.basename(c) for c in CONFIGS}
    assert {"base.cfg", "demo.cfg", "nyud.cfg",
            "pascal_context.cfg"} <= names


@pytest.mark.parametrize("path", [c for c in CONFIGS
                                  if not c.endswith("base.cfg")],
                         ids=os.path.basename)
def test_config_parses(parsed_flags, path):
    with open(path, encoding="utf-8") as f:
        assert f.readline().startswith("#"), "a config starts with a comment"
    parsed_flags(["train.py", f"--flagfile={path}", "--model_dir=unused"])
    config = train_flags.config_from_flags()
    assert isinstance(config, TrainConfig)
    assert config.tasks
    # The paper's recipe comes from base.cfg unless a config overrides it.
    assert config.momentum == 0.9 and config.poly_power == 0.9


def test_unknown_task_in_flags_is_rejected(parsed_flags):
    parsed_flags(["train.py", "--model_dir=unused", "--tasks=semseg,sky"])
    with pytest.raises(ValueError, match="Unknown task 'sky'"):
        train_flags.config_from_flags()


def test_bad_image_size_is_rejected(parsed_flags):
    parsed_flags(["train.py", "--model_dir=unused", "--tasks=semseg",
                  "--image_size=64,x"])
    with pytest.raises(ValueError, match="image_size"):
        train_flags.config_from_flags()
