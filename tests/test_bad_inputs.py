"""A catalogue of bad inputs: each fails with a short message naming the bad
value, and leaves every existing file as it was.

The CLIs run as subprocesses (`python train.py ...`, `python export.py ...`,
`python -m rmtl_tf.evaluate ...`): a non-zero exit, no traceback, a few
lines of stderr. Library-level errors whose CLI path is already covered run
in-process (cheaper: a subprocess pays the TensorFlow import, ~3-5 s).
"""

import hashlib
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from rmtl_tf.data import datasets
from rmtl_tf.export import export_lib
from rmtl_tf.export.runners import SavedModelRunner
from rmtl_tf.training import callbacks, checkpoint, train_lib
from rmtl_tf.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "data", "fixtures"))
import write_fixtures  # pylint: disable=wrong-import-position

# The tiny run every fixture is made with (flags and the same as a config).
TINY = dict(backbone="resnet_tiny", head_channels=8, low_level_channels=4,
            image_size=(32, 32), batch_size=2, train_steps=4,
            checkpoint_every=2, bank="random", variant="rc_nff",
            train_examples=4, eval_examples=2, jit_compile=False)
TINY_FLAGS = ["--backbone=resnet_tiny", "--head_channels=8",
              "--low_level_channels=4", "--image_size=32,32",
              "--batch_size=2", "--train_steps=4", "--checkpoint_every=2",
              "--bank=random", "--variant=rc_nff", "--train_examples=4",
              "--eval_examples=2", "--nojit_compile"]
MAX_STDERR_LINES = 15


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300,
                          check=False)


def _assert_clean_failure(proc, needles):
    stderr = proc.stderr
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(stderr.strip().splitlines()) < MAX_STDERR_LINES, stderr
    for needle in needles:
        assert needle in stderr, stderr[-2000:]


def _tree_hash(path):
    """sha256 over every file's relative path and bytes (a missing or
    empty directory: None)."""
    if not os.path.exists(path):
        return None
    digest, found = hashlib.sha256(), False
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as f:
                digest.update(f.read())
            found = True
    return digest.hexdigest() if found else None


# -- Fixtures: a model directory with an interrupted task, one with a
#    trained task, and an export of it. ---------------------------------------

@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_inputs")
    interrupted, trained = base / "interrupted", base / "trained"
    original = callbacks.CheckpointCallback.on_epoch_end

    def crash_after_first_checkpoint(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt("simulated kill")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks.CheckpointCallback, "on_epoch_end",
                      crash_after_first_checkpoint)
        with pytest.raises(KeyboardInterrupt):
            train_lib.train(TrainConfig(model_dir=str(interrupted),
                                        tasks=("semseg",), **TINY),
                            log=lambda *_: None)
    train_lib.train(TrainConfig(model_dir=str(trained), tasks=("semseg",),
                                **TINY), log=lambda *_: None)
    export = base / "export"
    export_lib.export(train_lib.load_model(str(trained)), str(export),
                      tflite=False)
    flagfiles = base / "flagfiles"
    flagfiles.mkdir()
    (flagfiles / "unknown.cfg").write_text("--tasks=semseg\n--nosuchflag=1\n")
    (flagfiles / "garbage.cfg").write_text("--tasks=semseg\ngarbage\n")
    corrupt = base / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.keras").write_bytes(b"PK\x03\x04 half a zip")
    empty = base / "empty"
    empty.mkdir()
    return {"interrupted": str(interrupted), "trained": str(trained),
            "export": str(export), "flagfiles": str(flagfiles),
            "corrupt": str(corrupt), "empty": str(empty), "tmp": str(base),
            "new": str(base / "new")}


# -- CLI cases: (id, command, needles in stderr, directory left intact). -------
# "{x}" is replaced by the fixture directory x. "new" is a model_dir that
# does not exist: no file may be written into it.

TRAIN = ["train.py", "--model_dir={new}", "--tasks=semseg", *TINY_FLAGS]
CLI_CASES = [
    # Flags.
    ("zero_batch", TRAIN + ["--batch_size=0"], ["batch_size=0"], "new"),
    ("negative_steps", TRAIN + ["--train_steps=-5"], ["train_steps=-5"],
     "new"),
    ("non_integer_batch", TRAIN + ["--batch_size=abc"], ["'abc'"], "new"),
    ("image_size_format", TRAIN + ["--image_size=64x64"], ["['64x64']",
                                                         "H,W"], "new"),
    ("image_size_too_small", TRAIN + ["--image_size=16,16"],
     ["image_size=(16, 16)", ">= 32"], "new"),
    ("unknown_task", TRAIN + ["--tasks=sky"], ["'sky'", "semseg"], "new"),
    ("unknown_backbone", TRAIN + ["--backbone=resnet99"],
     ["'resnet99'", "resnet18"], "new"),
    ("unknown_variant", TRAIN + ["--variant=foo"], ["--variant=foo",
                                                    "rc_ri_nff"], "new"),
    ("unknown_dataset", TRAIN + ["--dataset=imagenet"],
     ["--dataset=imagenet", "synthetic"], "new"),
    ("data_dir_with_synthetic", TRAIN + ["--data_dir={tmp}/data"],
     ["data_dir='", "synthetic"], "new"),
    ("task_not_in_dataset", TRAIN + ["--dataset=nyud",
                                     "--tasks=human_parts"],
     ["'human_parts'", "nyud"], "new"),
    ("unknown_flag", TRAIN + ["--batchsize=2"], ["'batchsize'"], "new"),
    ("positional_argument", TRAIN + ["semseg"], ["['semseg']"], "new"),
    ("missing_model_dir", ["train.py", "--tasks=semseg"], ["--model_dir"],
     "new"),
    # Flagfiles.
    ("missing_flagfile", TRAIN + ["--flagfile={tmp}/nope.cfg"],
     ["nope.cfg"], "new"),
    ("flagfile_unknown_flag", TRAIN + ["--flagfile={flagfiles}/unknown.cfg"],
     ["'nosuchflag'"], "new"),
    ("flagfile_garbage_line", TRAIN + ["--flagfile={flagfiles}/garbage.cfg"],
     ["'garbage'"], "new"),
    # Options that contradict the model directory or each other.
    ("response_init_without_bank", TRAIN + ["--variant=rc_ri_nff"],
     ["--bank=random", "rc_ri_nff"], "new"),
    ("missing_bank_file", TRAIN + ["--bank=npz:{tmp}/missing.npz"],
     ["missing.npz"], "new"),
    ("other_architecture_than_model", [
        "train.py", "--model_dir={trained}", "--tasks=semseg,depth",
        *TINY_FLAGS, "--head_channels=16"],
     ["head_channels: model has 8, flags say 16"], "trained"),
    ("other_bank_than_model", [
        "train.py", "--model_dir={trained}", "--tasks=semseg,depth",
        *TINY_FLAGS, "--bank=pretrain"],
     ["--bank=pretrain conflicts", "'semseg' was trained on --bank=random"],
     "trained"),
    # Checkpoints.
    ("checkpoint_of_other_architecture", [
        "train.py", "--model_dir={interrupted}", "--tasks=semseg",
        *TINY_FLAGS, "--low_level_channels=8"],
     ["low_level_channels: checkpoint has 4, model has 8", "step 2"],
     "interrupted"),
    ("checkpoint_of_other_run_settings", [
        "train.py", "--model_dir={interrupted}", "--tasks=semseg",
        *TINY_FLAGS, "--learning_rate=0.1"],
     ["learning_rate: checkpoint has 0.005, this run has 0.1",
      "--overwrite"], "interrupted"),
    # Data.
    ("real_dataset_without_data_dir", TRAIN + ["--dataset=nyud"],
     ["--data_dir", "data_dir=None"], "new"),
    ("missing_manual_dir", TRAIN + ["--dataset=nyud", "--data_dir={tmp}/d",
                                    "--manual_dir={tmp}/no_such_dir"],
     ["manual_dir='", "no_such_dir' does not exist"], "new"),
    ("manual_dir_without_archive", TRAIN + [
        "--dataset=nyud", "--data_dir={tmp}/d", "--manual_dir={empty}"],
     ["holds neither NYUD_MT/ nor NYUD_MT.zip"], "empty"),
    # Exports.
    ("export_damaged_model", ["export.py", "--model_dir={corrupt}",
                              "--export_dir={tmp}/e"],
     ["model.keras", "not a .keras file"], "corrupt"),
    ("export_version_zero", ["export.py", "--model_dir={trained}",
                             "--export_dir={export}", "--version=0"],
     ["version=0"], "export"),
    ("export_existing_version", ["export.py", "--model_dir={trained}",
                                 "--export_dir={export}", "--version=1",
                                 "--notflite"],
     ["Version 1 already exists", "--overwrite"], "export"),
    ("export_unknown_fold_task", ["export.py", "--model_dir={trained}",
                                  "--export_dir={export}",
                                  "--fold_task=sky"], ["'sky'"], "export"),
    ("export_bad_model_name", ["export.py", "--model_dir={trained}",
                               "--export_dir={export}", "--model_name=.."],
     ["model_name='..'"], "export"),
    # Evaluation.
    ("evaluate_missing_saved_model", [
        "-m", "rmtl_tf.evaluate", "--saved_model={tmp}/nothing"],
     ["nothing", "saved_model.pb"], "export"),
    ("evaluate_missing_model_dir", [
        "-m", "rmtl_tf.evaluate", "--model_dir={tmp}/nothing"],
     ["model_dir='", "nothing'"], "trained"),
    ("evaluate_unknown_split", [
        "-m", "rmtl_tf.evaluate", "--model_dir={trained}", "--split=train"],
     ["--split=train"], "trained"),
]


@pytest.mark.parametrize("command,needles,intact",
                         [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(dirs, command, needles, intact):
    command = [a.format(**dirs) for a in command]
    needles = [n.format(**dirs) for n in needles]
    before = _tree_hash(dirs[intact])
    proc = _cli(*command)
    _assert_clean_failure(proc, needles)
    assert _tree_hash(dirs[intact]) == before, f"{intact} changed"


def test_cli_truncated_checkpoint(dirs, tmp_path):
    model_dir = str(tmp_path / "m")
    shutil.copytree(dirs["interrupted"], model_dir)
    path = os.path.join(model_dir, "checkpoints", "semseg",
                        "ckpt-2.weights.npz")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 3])
    before = _tree_hash(model_dir)
    proc = _cli("train.py", f"--model_dir={model_dir}", "--tasks=semseg",
                *TINY_FLAGS)
    _assert_clean_failure(proc, [path, "is damaged", "--overwrite"])
    assert _tree_hash(model_dir) == before


def test_cli_nan_loss_names_task_and_step(tmp_path):
    """A real NaN: a learning rate that blows the weights up."""
    proc = _cli("train.py", f"--model_dir={tmp_path}/m", "--tasks=semseg",
                *TINY_FLAGS, "--learning_rate=1e30")
    _assert_clean_failure(proc, ["Loss of task 'semseg' is nan at step 2",
                                 "--learning_rate"])


def test_cli_corrupt_image_is_named(tmp_path):
    manual_dir = str(tmp_path / "manual")
    write_fixtures.write_nyud_mt(manual_dir, num_train=2, num_val=1)
    image = os.path.join(manual_dir, "NYUD_MT", "images", "train_000001.jpg")
    with open(image, "wb") as f:
        f.write(b"not an image at all" * 10)
    before = _tree_hash(manual_dir)
    proc = _cli("train.py", f"--model_dir={tmp_path}/m", "--tasks=semseg",
                "--dataset=nyud", f"--data_dir={tmp_path}/tfds",
                f"--manual_dir={manual_dir}", *TINY_FLAGS)
    _assert_clean_failure(proc, [image, "--skip_bad_examples"])
    assert _tree_hash(manual_dir) == before


# -- In-process cases (their CLI path is one of the above). -------------------

FLAG_CASES = {  # The same validation as zero_batch / negative_steps above.
    "negative_checkpoint_every": ("--checkpoint_every=-1",
                                  "checkpoint_every=-1"),
    "image_size_three_values": ("--image_size=32,32,32", "(32, 32, 32)"),
    "negative_learning_rate": ("--learning_rate=-1", "learning_rate=-1.0"),
    "zero_width": ("--width_multiplier=0", "width_multiplier=0.0"),
    "momentum_above_one": ("--momentum=1.5", "momentum=1.5"),
    "negative_weight_decay": ("--weight_decay=-0.1", "weight_decay=-0.1"),
}


@pytest.mark.parametrize("case", sorted(FLAG_CASES))
def test_bad_flag_value(case):
    from absl import flags  # pylint: disable=import-outside-toplevel
    from rmtl_tf.cli import train_flags  # pylint: disable=import-outside-toplevel
    flag, needle = FLAG_CASES[case]
    train_flags.define_flags(flags.FLAGS)
    flags.FLAGS(["train.py", "--model_dir=unused", "--tasks=semseg", flag])
    try:
        with pytest.raises(ValueError, match=needle.replace("(", r"\(")
                           .replace(")", r"\)")):
            train_flags.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()


def _wrong_size_png(path):
    Image.fromarray(np.zeros((20, 64), np.uint8), "L").save(path)


DATA_FAULTS = {
    "missing_label_file": ("segmentation/train_000001.mat", os.remove,
                           "train_000001"),
    "wrong_label_size": ("edge/train_000001.png", _wrong_size_png,
                         "train_000001"),
    "missing_split_file": ("gt_sets/val.txt", os.remove, "val.txt"),
}


@pytest.mark.parametrize("fault", sorted(DATA_FAULTS))
def test_bad_data_file_is_named(tmp_path, fault):
    manual_dir, data_dir = str(tmp_path / "manual"), str(tmp_path / "tfds")
    write_fixtures.write_nyud_mt(manual_dir, num_train=2, num_val=1)
    relative, breaks, needle = DATA_FAULTS[fault]
    breaks(os.path.join(manual_dir, "NYUD_MT", relative))
    with pytest.raises((ValueError, FileNotFoundError), match=needle):
        datasets.prepare("nyud", data_dir, manual_dir)
    assert not datasets.is_prepared("nyud", data_dir)


def _checkpoint_copy(dirs, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(dirs["interrupted"], model_dir)
    return model_dir / "checkpoints" / "semseg"


def _restore(ckpt_dir):
    config = TrainConfig(model_dir="unused", tasks=("semseg",), **TINY)
    model = train_lib.MultiTaskModel(
        tasks=["semseg"], image_size=(32, 32),
        num_classes=datasets.dataset_info("synthetic")["num_classes"],
        **config.model_kwargs())
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    return checkpoint.restore(str(ckpt_dir), model, optimizer)


def test_checkpoint_state_that_is_not_json(dirs, tmp_path):
    ckpt_dir = _checkpoint_copy(dirs, tmp_path)
    (ckpt_dir / "checkpoint.json").write_text('{"step": 2, "ste')
    with pytest.raises(ValueError, match="checkpoint.json' is not valid "
                                         "JSON"):
        _restore(ckpt_dir)


def test_checkpoint_file_that_is_missing(dirs, tmp_path):
    ckpt_dir = _checkpoint_copy(dirs, tmp_path)
    os.remove(ckpt_dir / "ckpt-2.optimizer.npz")
    with pytest.raises(FileNotFoundError, match="ckpt-2.optimizer.npz' is "
                                                "missing"):
        _restore(ckpt_dir)


@pytest.fixture(scope="module")
def runner(dirs):
    return SavedModelRunner(os.path.join(dirs["export"], "rmtl", "1"))


GOOD = np.zeros((1, 32, 32, 3), np.float32)
RUNNER_CASES = {
    "uint8_pixels": (GOOD.astype(np.uint8), "serving_default",
                     "received dtype uint8"),
    "float64_pixels": (GOOD.astype(np.float64), "serving_default",
                       "received dtype float64"),
    "wrong_size": (np.zeros((1, 64, 64, 3), np.float32), "semseg",
                   "received shape [1, 64, 64, 3]"),
    "no_batch_axis": (GOOD[0], "semseg", "received shape [32, 32, 3]"),
    "grey_image": (GOOD[..., :1], "semseg", "received shape [1, 32, 32, 1]"),
    "unknown_signature": (GOOD, "depth", "Unknown signature 'depth'"),
}


@pytest.mark.parametrize("case", sorted(RUNNER_CASES))
def test_export_runner_bad_input(runner, case):
    image, signature, needle = RUNNER_CASES[case]
    with pytest.raises(ValueError, match=needle.replace("[", r"\[")):
        runner(image, signature)


def test_good_input_runs(runner):
    # The reference for the cases above: the same runner accepts GOOD.
    out = runner(GOOD, "semseg")["semseg"]
    classes = datasets.dataset_info("synthetic")["num_classes"]["semseg"]
    assert out.shape == (1, 32, 32, classes)


def test_saved_files_hold_no_code_and_no_pickles(dirs):
    import zipfile  # pylint: disable=import-outside-toplevel
    model_dir = dirs["trained"]
    with zipfile.ZipFile(os.path.join(model_dir, "model.keras")) as archive:
        config = archive.read("config.json").decode()
    assert "MultiTaskModel" in config  # The grep can find something.
    assert "Lambda" not in config and "lambda" not in config
    for root, _, files in os.walk(model_dir):
        for name in files:
            if name.endswith(".npz"):
                with np.load(os.path.join(root, name),
                             allow_pickle=False) as data:
                    assert all(data[k].dtype != object for k in data.files)


def test_a_model_file_with_code_is_refused(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(str(tmp_path / "model.keras"))
    with pytest.raises(ValueError, match="safe_mode"):
        train_lib.load_model(str(tmp_path))


# -- Damaged or foreign files, read in-process (the CLIs print these
#    ValueErrors / FileNotFoundErrors as one line through run_cli). ----------

def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 3])


def _pickled_npz(path):
    np.savez(path, weights=np.array([{"not": "an array"}], dtype=object))


def test_truncated_bank_in_model_dir_is_named(dirs, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(dirs["trained"], model_dir)
    path = str(model_dir / "bank.npz")
    np.savez(path, **{"conv1/kernel": np.zeros((7, 7, 3, 8), np.float32)})
    _truncate(path)
    config = TrainConfig(model_dir=str(model_dir),
                         tasks=("semseg", "depth"), **TINY)
    with pytest.raises(ValueError, match=f"{path}.*damaged or truncated"):
        train_lib.train(config, log=lambda *_: None)


@pytest.mark.parametrize("reader", ["bank", "task_pack", "state_dict"])
def test_npz_loaders_refuse_pickles(tmp_path, reader):
    from rmtl_tf.export import task_pack  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import bank, weight_import  # pylint: disable=import-outside-toplevel
    path = str(tmp_path / "evil.npz")
    _pickled_npz(path)
    load = {"bank": bank.load_npz, "task_pack": task_pack.load_pack,
            "state_dict": weight_import.load_state_dict}[reader]
    with pytest.raises(ValueError, match=f"{path}.*pickled objects"):
        load(path)


def test_foreign_export_files_are_named(dirs, tmp_path):
    from rmtl_tf.export.runners import TFLiteRunner  # pylint: disable=import-outside-toplevel
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ValueError, match=f"{not_tflite}.*not a TFLite model"):
        TFLiteRunner(str(not_tflite))
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        TFLiteRunner(str(tmp_path / "missing.tflite"))
    with pytest.raises(FileNotFoundError,
                       match=f"{dirs['empty']}.*not a SavedModel"):
        SavedModelRunner(dirs["empty"])
    damaged = tmp_path / "damaged"
    shutil.copytree(os.path.join(dirs["export"], "rmtl", "1"), damaged)
    _truncate(damaged / "saved_model.pb")
    with pytest.raises(ValueError, match=f"{damaged}.*damaged"):
        SavedModelRunner(str(damaged))


@pytest.mark.parametrize("setting,value,recorded", [
    ("mixed_precision", "mixed_bfloat16", "'float32'"),
    ("deterministic", True, "False"),
    ("strategy", "mirrored", "'default'"),
])
def test_resume_refuses_other_precision_strategy_determinism(
        dirs, tmp_path, setting, value, recorded):
    model_dir = tmp_path / "m"
    shutil.copytree(dirs["interrupted"], model_dir)
    config = TrainConfig(model_dir=str(model_dir), tasks=("semseg",),
                         **{**TINY, setting: value})
    with pytest.raises(ValueError, match=(
            f"{setting}: checkpoint has {recorded}, this run has "
            f"{value!r}.*--overwrite")):
        train_lib.train(config, log=lambda *_: None)
