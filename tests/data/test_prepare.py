"""`python -m rmtl_tf.data.prepare`: builds once, errors name the folders."""

import write_fixtures

from rmtl_tf.data import datasets, prepare


def test_prepare_cli(tmp_path, capsys):
    manual_dir, data_dir = str(tmp_path / "manual"), str(tmp_path / "tfds")
    write_fixtures.write_nyud_mt(manual_dir)
    args = ["--dataset=nyud", f"--data_dir={data_dir}"]
    assert prepare.main(args + [f"--manual_dir={tmp_path}/none"]) == 2
    assert f"manual_dir='{tmp_path}/none' does not exist" in (
        capsys.readouterr().err)
    assert prepare.main(args + [f"--manual_dir={manual_dir}"]) == 0
    assert "(train 3, validation 2)" in capsys.readouterr().out
    assert datasets.is_prepared("nyud", data_dir)
    assert prepare.main(args) == 0
    assert "already prepared" in capsys.readouterr().out
