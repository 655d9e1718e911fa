"""NYUD-MT: NYUD-v2 with semantic segmentation, depth, normals and edges.

The multi-task packaging of NYUD-v2 by the RCM / ASTMT authors (ETH
Zurich): 795 training and 654 validation images of indoor scenes, with
41-way semantic segmentation (40 classes and background 0), metric depth,
surface normals and edges.

Get it: download `NYUD_MT.zip` from
https://data.vision.ee.ethz.ch/kanakism/NYUD_MT.zip (the URL of the
authors' loader, github.com/menelaoskanakis/RCM, `dataloaders/NYUDMT.py`)
and put it, or the `NYUD_MT/` folder it extracts to, into a folder of your
choice, the manual_dir.

Build (once; writes `DATA_DIR/nyud_mt/1.0.0/`):

    python train.py --flagfile=configs/nyud.cfg --manual_dir=MANUAL_DIR \
        --data_dir=DATA_DIR        # builds first, then trains
    # or only build: python -m rmtl_tf.cli.prepare --dataset=nyud \
    #         --manual_dir=MANUAL_DIR --data_dir=DATA_DIR

Without a manual copy, `--download` fetches the archive (the builder's
default when used directly with TFDS).

Load:

    from rmtl_tf.data import datasets
    data = datasets.resolve("nyud", DATA_DIR)
    ds = data.split("train", ["semseg", "depth"], (425, 560), 8, None,
                    training=True)

Layout read (`NYUD_MT/`): `images/<id>.jpg`, `segmentation/<id>.mat` (key
'segmentation'), `depth/<id>.mat` (key 'depth'), `normals/<id>.jpg`,
`edge/<id>.png`, `gt_sets/{train,val}.txt`.

Features, decoded as the authors' loader does:
- image: the original JPEG bytes (uint8 RGB when loaded);
- semseg: uint8 (H, W, 1), ids 0..40 as stored in the .mat (0 is the
  background, kept: 41-way, as the authors), 255 ignore;
- depth: float32 (H, W, 1), metres as stored, 0 = invalid;
- normals: uint8 (H, W, 3), the original JPEG bytes; a normal is
  2 * value / 255 - 1 (x, y, z; see `decoders.py`);
- edge: uint8 (H, W, 1) in {0, 1}: the PNG divided by 255 and binarized at
  0.5, as the authors' edge loss does;
- image_id: the id of the set files.
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from rmtl_tf.data import dataset_specs, raw_files
from rmtl_tf.data.builders import builder_lib

SPEC = dataset_specs.get_spec("nyud")
NUM_CLASSES = SPEC.num_classes["semseg"]
DESCRIPTION = ("NYUD-v2 multi-task (semseg, depth, normals, edges), the "
               "RCM / ASTMT authors' NYUD_MT.")
_INSTRUCTIONS = f"""\
Download {SPEC.archive} from {SPEC.url} and put it (or the {SPEC.folder}/
folder it extracts to) into the manual_dir."""


class Builder(tfds.core.GeneratorBasedBuilder):
    """NYUD-MT from the authors' `NYUD_MT` folder (see the module doc)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The authors' NYUD_MT archive, decoded as "
                              "their loader does."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

    def __init__(self, *, skip_bad_examples=False, allow_download=True,
                 **kwargs):
        self.skip_bad_examples = skip_bad_examples
        self.allow_download = allow_download
        self.skipper = builder_lib.ExampleSkipper("NYUD-MT",
                                                  skip_bad_examples)
        super().__init__(**kwargs)

    def _info(self):
        return self.dataset_info_from_configs(
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "semseg": tfds.features.Image(shape=(None, None, 1)),
                "depth": tfds.features.Tensor(shape=(None, None, 1),
                                              dtype=np.float32,
                                              encoding="zlib"),
                "normals": tfds.features.Image(shape=(None, None, 3),
                                               encoding_format="jpeg"),
                "edge": tfds.features.Image(shape=(None, None, 1)),
                "image_id": tfds.features.Text(),
            }),
            homepage="https://github.com/menelaoskanakis/RCM",
        )

    def _split_generators(self, dl_manager):
        root = builder_lib.source_root(
            dl_manager, SPEC.folder, SPEC.marker, SPEC.url, _INSTRUCTIONS,
            allow_download=self.allow_download)
        return {split: self._generate_examples(root, split)
                for split in builder_lib.SPLIT_FILES}

    def _generate_examples(self, root, split):
        ids = builder_lib.split_ids(root, "gt_sets", split)
        return self.skipper.generate(split, ids,
                                     lambda i: read_example(root, i))


def read_example(root, image_id):
    """One example's features from the authors' files, checked."""
    def path(folder, ext):
        return os.path.join(root, folder, image_id + ext)

    image_bytes, image = raw_files.read_rgb_image(path("images", ".jpg"))
    size = image.shape[:2]
    # Every label must exist before any is decoded: a missing one is named.
    for folder, ext in (("segmentation", ".mat"), ("depth", ".mat"),
                        ("normals", ".jpg"), ("edge", ".png")):
        raw_files.require_file(path(folder, ext), f"{folder} label")

    semseg_path = path("segmentation", ".mat")
    semseg = raw_files.read_mat(semseg_path, "segmentation")
    semseg = raw_files.class_map(
        raw_files.check_size(semseg, size, semseg_path), NUM_CLASSES,
        semseg_path)

    depth_path = path("depth", ".mat")
    depth = np.asarray(raw_files.read_mat(depth_path, "depth"), np.float32)
    raw_files.check_size(depth, size, depth_path)
    if depth.ndim == 2:
        depth = depth[..., None]
    if depth.ndim != 3 or depth.shape[-1] != 1:
        raise raw_files.BadExampleError(
            f"Expected a 2-D depth map in {depth_path}; found shape "
            f"{depth.shape}.")
    if not np.all(np.isfinite(depth)) or depth.min() < 0:
        raise raw_files.BadExampleError(
            f"The depth map {depth_path} has negative or non-finite values.")

    normals_path = path("normals", ".jpg")
    normals_bytes, normals = raw_files.read_rgb_image(normals_path)
    raw_files.check_size(normals, size, normals_path)

    edge_path = path("edge", ".png")
    edge = raw_files.check_size(raw_files.read_png_label(edge_path), size,
                                edge_path)
    return {
        "image": image_bytes,
        "semseg": semseg,
        "depth": depth,
        "normals": normals_bytes,
        "edge": (edge >= 128).astype(np.uint8),
        "image_id": image_id,
    }
