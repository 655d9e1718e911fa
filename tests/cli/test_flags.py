"""The CLIs' flags: defined once per `FlagValues` (a second definition
skips), and turned into the config objects the libraries take."""

import os

import pytest
from absl import flags

from rmtl_tf.cli import eval_flags, export_flags, flag_groups, train_flags
from rmtl_tf.evaluation.evaluate_lib import EvalConfig
from rmtl_tf.export.config import ExportConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _parsed(define_flags, *args):
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    define_flags(flag_values)  # Idempotent.
    flag_values(["tool", *args])
    return flag_values


def test_groups_define_each_flag_once():
    flag_values = flags.FlagValues()
    flag_groups.define_dataset_flags(flag_values)
    flag_groups.define_dataset_flags(flag_values, prepare=True)
    flag_groups.define_split_flags(flag_values)
    flag_groups.define_read_flags(flag_values)
    flag_groups.define_model_flags(flag_values)
    flag_groups.define_eval_split_flag(flag_values)
    flag_values(["tool"])
    assert flag_values.tasks is None
    assert flag_values.dataset == "synthetic"
    assert flag_values.skip_bad_examples is False
    assert flag_values.image_size == ["256", "320"]


def test_parse_image_size():
    assert flag_groups.parse_image_size(["64", "96"]) == (64, 96)
    with pytest.raises(ValueError, match=r"--size must be two integers H,W\. "
                       r"Received: \['64x64'\]"):
        flag_groups.parse_image_size(["64x64"], "size")


def test_train_flags_need_a_model_dir():
    with pytest.raises(flags.IllegalFlagValueError, match="--model_dir"):
        _parsed(train_flags.define_flags, "--tasks=semseg")
    config = train_flags.config_from_flags(_parsed(
        train_flags.define_flags, "--model_dir=m", "--tasks=semseg,depth",
        "--image_size=64,96"))
    assert config.tasks == ("semseg", "depth")
    assert config.image_size == (64, 96)


def test_eval_flags_parse_a_training_flagfile(monkeypatch):
    monkeypatch.chdir(ROOT)
    flag_values = _parsed(eval_flags.define_flags,
                          "--flagfile=configs/demo.cfg", "--model_dir=m")
    config = eval_flags.config_from_flags(flag_values)
    assert isinstance(config, EvalConfig)
    assert config.model_dir == "m"
    assert config.output_dir == os.path.join("m", "eval_validation")
    assert list(config.tasks) == flag_values.tasks
    assert config.num_examples == flag_values.eval_examples


def test_eval_flags_defaults():
    flag_values = _parsed(eval_flags.define_flags, "--model_dir=m",
                          "--saved_model=export/rmtl/1")
    config = eval_flags.config_from_flags(flag_values)
    assert config.tasks is None  # Every task of the model or export.
    assert config.model_dir is None  # The export takes precedence.
    assert config.output_dir == os.path.join("export", "rmtl",
                                             "1_eval_validation")
    # The training size is no padding size: only a given --image_size.
    assert config.image_size is None
    assert config.edge_workers is None  # evaluate_lib.EDGE_WORKERS.
    config = eval_flags.config_from_flags(_parsed(
        eval_flags.define_flags, "--model_dir=m", "--image_size=64,96",
        "--edge_workers=0"))
    assert config.image_size == (64, 96)
    assert config.edge_workers == 0
    with pytest.raises(ValueError, match="edge_workers=-1"):
        eval_flags.config_from_flags(_parsed(
            eval_flags.define_flags, "--model_dir=m", "--edge_workers=-1"))


def test_export_flags():
    with pytest.raises(flags.IllegalFlagValueError, match="--export_dir"):
        _parsed(export_flags.define_flags, "--model_dir=m")
    config = export_flags.config_from_flags(_parsed(
        export_flags.define_flags, "--model_dir=m", "--export_dir=e",
        "--quantize=none,int8", "--fold_task=semseg"))
    assert isinstance(config, ExportConfig)
    assert config.quantize_modes == ("int8",)
    assert config.fold_tasks == ("semseg",)
    kwargs = config.export_kwargs()
    assert kwargs["export_dir"] == "e" and kwargs["quantize_modes"] == [
        "int8"]
    with pytest.raises(ValueError, match="version=0"):
        export_flags.config_from_flags(_parsed(
            export_flags.define_flags, "--model_dir=m", "--export_dir=e",
            "--version=0"))
    with pytest.raises(ValueError, match="model_name='..'"):
        ExportConfig("m", "e", model_name="..")
