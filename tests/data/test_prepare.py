"""`python -m rmtl_tf.cli.prepare`: builds once, errors name the folders."""

import pytest
import write_fixtures
from absl import flags

from rmtl_tf.cli import prepare
from rmtl_tf.cli.errors import run_cli
from rmtl_tf.data import datasets


def _run(*args):
    flag_values = flags.FlagValues()
    prepare.define_flags(flag_values)
    flag_values(["prepare", *args])
    return run_cli(lambda argv: prepare.main(argv, flag_values), ["prepare"])


def test_prepare_cli(tmp_path, capsys):
    manual_dir, data_dir = str(tmp_path / "manual"), str(tmp_path / "tfds")
    write_fixtures.write_nyud_mt(manual_dir)
    args = ["--dataset=nyud", f"--data_dir={data_dir}"]
    with pytest.raises(SystemExit) as e:
        _run(*args, f"--manual_dir={tmp_path}/none")
    assert e.value.code == 2
    assert f"manual_dir='{tmp_path}/none' does not exist" in (
        capsys.readouterr().err)
    assert _run(*args, f"--manual_dir={manual_dir}") == 0
    assert "(train 3, validation 2)" in capsys.readouterr().out
    assert datasets.is_prepared("nyud", data_dir)
    assert _run(*args) == 0
    assert "already prepared" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    ([], "--dataset must be one of ['nyud', 'pascal_context']"),
    (["--dataset=nyud"], "--data_dir is required"),
])
def test_prepare_cli_needs_a_dataset_and_a_folder(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        _run(*args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
