"""Stand-ins of NYUD-MT / PASCAL-MT (`rmtl_tf.data.standins`; the command
`python -m rmtl_tf.cli.standins`): the real TFDS builders prepare them, and
what they decode is the synthetic scenes with the documented class
mapping; reruns resume or keep a complete copy."""

import os

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from absl import flags
from PIL import Image

from rmtl_tf.cli import standins as standins_cli
from rmtl_tf.cli.errors import run_cli
from rmtl_tf.data import (datasets, decoders, label_edges, standin_plan,
                          standins)
from rmtl_tf.data.builders.pascal_mt import pascal_labels
from rmtl_tf.data.synthetic_scenes import make_scene

NYUD_SIZE = (48, 64)
PASCAL_SIZES = ((40, 56), (56, 40))
# Scene class (wall, floor, sphere, box, cylinder, pyramid) -> stored id,
# restated from the module doc.
NYU40 = np.array([1, 2, 40, 29, 35, 39])
VOC = np.array([0, 0, 16, 20, 5, 9])
CONTEXT = np.array([440, 158, 308, 427, 34, 72])
SPHERE = 2  # pottedplant in PASCAL: not an NYU class, no normals there.
# The authors' HUMAN_PART groups of the part names the stand-in uses.
PART_GROUPS = {"head": 1, "neck": 2, "torso": 2, "luarm": 3, "ruarm": 3,
               "llarm": 4, "rlarm": 4, "lhand": 4, "rhand": 4, "luleg": 5,
               "ruleg": 5, "llleg": 6, "rlleg": 6, "lfoot": 6, "rfoot": 6}


def _examples(name, data_dir):
    """{image_id: features} of both splits, images decoded as Pillow."""
    builder = datasets.builder(name, data_dir)
    out = {}
    for split in ("train", "validation"):
        ds = builder.as_dataset(split=split, decoders={
            "image": tfds.decode.SkipDecoding()})
        for ex in ds:
            ex = dict(ex)
            ex["image"] = decoders.decode_image_bytes(ex["image"], 3)
            ex = tfds.as_numpy(ex)
            out[ex["image_id"].decode()] = dict(ex, split=split)
    return out


def _scene(item):
    return make_scene(item.scene_seed, *item.size)


def _angles(normals, truth):
    cos = (normals * truth).sum(-1) / np.linalg.norm(normals, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    manual = str(tmp_path_factory.mktemp("standins"))
    data_dir = str(tmp_path_factory.mktemp("standins_tfds"))
    nyud = standins.write_nyud_mt(manual, 3, 2, size=NYUD_SIZE, seed=7)
    pascal = standins.write_pascal_mt(manual, 4, 2, sizes=PASCAL_SIZES,
                                      seed=7)
    assert (nyud.status, nyud.written) == ("written", 5)
    assert (pascal.status, pascal.written) == ("written", 6)
    datasets.prepare("nyud", data_dir, manual)
    datasets.prepare("pascal_context", data_dir, manual)
    return manual, data_dir


def test_nyud_decodes_to_the_scenes(prepared):
    manual, data_dir = prepared
    plan = standin_plan.nyud_plan(3, 2, NYUD_SIZE, seed=7)
    examples = _examples("nyud", data_dir)
    assert sorted(examples) == sorted(item.image_id for item in plan)
    for item in plan:
        ex, scene = examples[item.image_id], _scene(item)
        assert ex["split"] == {"train": "train", "val": "validation"}[
            item.split]
        assert ex["image"].shape == (*NYUD_SIZE, 3)
        assert np.abs(ex["image"] - scene["image"].astype(float)).mean() < 6
        np.testing.assert_array_equal(ex["semseg"][..., 0],
                                      NYU40[scene["semseg"]])
        assert ex["depth"].dtype == np.float32
        np.testing.assert_array_equal(ex["depth"], scene["depth"])
        assert ex["depth"].min() > 0.5 and ex["depth"].max() < 10.5
        np.testing.assert_array_equal(ex["edge"], scene["edge"] > 0.5)
        normals = decoders.decode_normals(ex["normals"]).numpy()
        assert np.median(_angles(normals, scene["normals"])) < 3  # JPEG.
    with open(os.path.join(manual, "NYUD_MT", "gt_sets", "val.txt"),
              encoding="utf-8") as f:
        assert f.read().split() == [item.image_id for item in plan[3:]]


def test_pascal_decodes_to_the_scenes(prepared):
    manual, data_dir = prepared
    root = os.path.join(manual, "PASCAL_MT")
    plan = standin_plan.pascal_plan(4, 2, PASCAL_SIZES, seed=7)
    examples = _examples("pascal_context", data_dir)
    assert sorted(examples) == sorted(item.image_id for item in plan)
    assert [item.person for item in plan] == [True, False, False] * 2
    for item in plan:
        ex, scene = examples[item.image_id], _scene(item)
        classes = scene["semseg"]
        assert ex["image"].shape == (*item.size, 3)
        assert np.abs(ex["image"] - scene["image"].astype(float)).mean() < 6
        person = ex["semseg"][..., 0] == 15
        assert ex["has_person"] == item.person == person.any()
        # The person is one object of the scene; elsewhere the VOC ids.
        assert np.isin(classes[person], (2, 3, 4, 5)).all()
        assert len(np.unique(classes[person])) <= 1
        np.testing.assert_array_equal(ex["semseg"][..., 0][~person],
                                      VOC[classes][~person])
        label_map = np.where(person, 284, CONTEXT[classes])
        np.testing.assert_array_equal(
            ex["edge"][..., 0], label_edges.label_map_edges(label_map))
        np.testing.assert_array_equal(ex["normals_mask"][..., 0],
                                      (classes != SPHERE) | person)
        np.testing.assert_array_equal(  # PNG: lossless.
            ex["normals"],
            np.round((scene["normals"] + 1) / 2 * 255).astype(np.uint8))
        saliency = np.asarray(Image.open(os.path.join(
            root, "SaliencyDistill", item.image_id + ".png")))
        np.testing.assert_array_equal(
            saliency, np.round(255 * scene["saliency"][..., 0]))
        np.testing.assert_array_equal(ex["saliency"],
                                      scene["saliency"] > 0.5)
        parts = ex["human_parts"][..., 0]
        if item.person:  # All six groups, on the person only.
            groups = set(np.unique(parts[person]).tolist())
            assert groups <= set(range(7)) and len(groups - {0}) >= 4
            assert (parts[~person] == 0).all()
        else:
            assert (parts == 255).all()


def test_pascal_part_names_and_json_are_the_authors(prepared):
    manual, _ = prepared
    root = os.path.join(manual, "PASCAL_MT")
    item = standin_plan.pascal_plan(4, 2, PASCAL_SIZES, seed=7)[0]
    anno = scipy.io.loadmat(os.path.join(root, "PascalParts",
                                         item.image_id + ".mat"))["anno"]
    assert str(anno[0][0][0][0]) == item.image_id
    objects = anno[0][0][1][0]
    person = objects[0]
    assert int(person[1][0][0]) == 15 and str(person[0][0]) == "person"
    names = [str(part[0][0]) for part in person[3][0]]
    assert set(names) <= set(PART_GROUPS) and len(names) >= 6
    for obj in objects[1:]:
        assert int(obj[1][0][0]) in (5, 9, 16, 20) and obj[3].size == 0
    # Of the ids used, everything but pottedplant (308) keeps its normals.
    kept = set(pascal_labels.normals_classes(root))
    assert kept >= set(CONTEXT.tolist() + [284]) - {308}
    assert 308 not in kept
    for name in PART_GROUPS:
        assert pascal_labels.HUMAN_PART[name] == PART_GROUPS[name]


def _contents(root):
    """{relative path: bytes} of a copy; .mat without their dated header."""
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                data = f.read()
            out[os.path.relpath(path, root)] = (data[128:] if
                                                name.endswith(".mat")
                                                else data)
    return out


def test_killed_run_resumes_to_the_same_files(tmp_path):
    def killed(done, total, rate):
        if done == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        standins.write_pascal_mt(str(tmp_path / "a"), 2, 2,
                                 sizes=PASCAL_SIZES, progress=killed)
    partial = tmp_path / "a" / "PASCAL_MT.partial"
    assert partial.is_dir() and not (tmp_path / "a" / "PASCAL_MT").exists()
    (partial / "JPEGImages" / "x.jpg.tmp").write_bytes(b"half")
    resumed = standins.write_pascal_mt(str(tmp_path / "a"), 2, 2,
                                       sizes=PASCAL_SIZES)
    assert (resumed.status, resumed.written) == ("resumed", 2)
    assert not partial.exists()
    # Two processes write the same files as one.
    fresh = standins.write_pascal_mt(str(tmp_path / "b"), 2, 2,
                                     sizes=PASCAL_SIZES, workers=2)
    assert fresh.written == 4
    assert _contents(resumed.root) == _contents(fresh.root)
    # Complete: left as it is; other counts: refused unless overwrite.
    again = standins.write_pascal_mt(str(tmp_path / "a"), 2, 2,
                                     sizes=PASCAL_SIZES)
    assert (again.status, again.written) == ("exists", 0)
    with pytest.raises(FileExistsError, match="train 2 / val 2"):
        standins.write_pascal_mt(str(tmp_path / "a"), 3, 2,
                                 sizes=PASCAL_SIZES)
    other = standins.write_pascal_mt(str(tmp_path / "a"), 3, 1,
                                     sizes=PASCAL_SIZES, overwrite=True)
    assert (other.status, other.written) == ("written", 4)
    # A folder not written here is never replaced.
    (tmp_path / "c" / "NYUD_MT").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a stand-in"):
        standins.write_nyud_mt(str(tmp_path / "c"), 1, 1, size=(16, 16),
                               overwrite=True)


def test_cli(tmp_path, capsys):
    def run(*args):
        flag_values = flags.FlagValues()
        standins_cli.define_flags(flag_values)
        flag_values(["standins", *args])
        return run_cli(lambda argv: standins_cli.main(argv, flag_values),
                       ["standins"])
    args = ["--dataset=nyud", f"--out={tmp_path}", "--num_train=2",
            "--num_val=1", "--size=16,24", "--progress_every=2",
            "--workers=1"]
    assert run(*args) == 0
    out = capsys.readouterr().out
    assert "nyud: 2/3 images" in out and "nyud: 3/3 images" in out
    assert "images/s" in out and "Wrote" in out
    assert run(*args) == 0
    assert "already complete" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        run("--dataset=nyud", f"--out={tmp_path}/x", "--size=16")
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --size must be H,W (two integers). Received: --size=16")
