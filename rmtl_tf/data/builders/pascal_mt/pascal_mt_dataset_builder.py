"""PASCAL-MT: PASCAL-Context with five dense tasks.

The multi-task packaging of PASCAL VOC 2010 by the RCM / ASTMT authors (ETH
Zurich): 4,998 training and 5,105 validation images with 21-way semantic
segmentation (PASCAL-Context labels of the 20 VOC classes and background),
7-way human parts (PASCAL-Part), saliency and surface normals (both
distilled from pretrained models) and edges (from the PASCAL-Context label
map).

Get it: download `PASCAL_MT.zip` from
https://data.vision.ee.ethz.ch/kanakism/PASCAL_MT.zip (the URL of the
authors' loader, github.com/menelaoskanakis/RCM,
`dataloaders/PascalContextMT.py`) and put it, or the `PASCAL_MT/` folder it
extracts to, into a folder of your choice, the manual_dir. Without a
manual copy, `--download` fetches the archive (the builder's default when
used directly with TFDS).

Build (once; writes `DATA_DIR/pascal_mt/1.0.0/`):

    python train.py --flagfile=configs/pascal_context.cfg \
        --manual_dir=MANUAL_DIR --data_dir=DATA_DIR
    # or only build:
    #   python -m rmtl_tf.cli.prepare --dataset=pascal_context \
    #       --manual_dir=MANUAL_DIR --data_dir=DATA_DIR

Layout read (`PASCAL_MT/`): `JPEGImages/<id>.jpg`,
`SemanticSegmentation/Context/<id>.png`, `PascalParts/<id>.mat` (key
'anno'), `SaliencyDistill/<id>.png`, `NormalsDistill/<id>.png`,
`Context/trainval/<id>.mat` (key 'LabelMap'),
`json/{nyu,context}_classes.json`, `ImageSets/Context/{train,val}.txt`.

Features, decoded as the authors' loader does:
- image: the original JPEG bytes;
- semseg: uint8 (H, W, 1), the PNG's values 0..20 (255 ignore);
- human_parts: uint8 (H, W, 1), 0..6, all 255 without a person;
- has_person: bool, whether the image has a person (the authors train
  human parts on those images only);
- saliency: uint8 (H, W, 1) in {0, 1}: PNG / 255 > 0.5;
- normals: uint8 (H, W, 3), the distilled normals PNG; a normal is
  2 * value / 255 - 1;
- normals_mask: uint8 (H, W, 1) in {0, 1}: 1 where the PASCAL-Context class
  is one normals are kept on (0 there makes the normal 0 = invalid);
- edge: uint8 (H, W, 1) in {0, 1}: thinned |Laplacian| of the label map;
- image_id.
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from rmtl_tf.data import dataset_specs, label_edges, raw_files
from rmtl_tf.data.builders import builder_lib
from rmtl_tf.data.builders.pascal_mt import pascal_labels

SPEC = dataset_specs.get_spec("pascal_context")
DESCRIPTION = ("PASCAL-Context multi-task (semseg, human parts, saliency, "
               "normals, edges), the RCM / ASTMT authors' PASCAL_MT.")
_INSTRUCTIONS = f"""\
Download {SPEC.archive} from {SPEC.url} and put it (or the {SPEC.folder}/
folder it extracts to) into the manual_dir."""


def _label(channels):
    return tfds.features.Image(shape=(None, None, channels))


class Builder(tfds.core.GeneratorBasedBuilder):
    """PASCAL-MT from the authors' `PASCAL_MT` folder (see the module doc)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The authors' PASCAL_MT archive, decoded as "
                              "their loader does."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

    def __init__(self, *, skip_bad_examples=False, allow_download=True,
                 **kwargs):
        self.skip_bad_examples = skip_bad_examples
        self.allow_download = allow_download
        self.skipper = builder_lib.ExampleSkipper("PASCAL-MT",
                                                  skip_bad_examples)
        super().__init__(**kwargs)

    def _info(self):
        return self.dataset_info_from_configs(
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "semseg": _label(1),
                "human_parts": _label(1),
                "has_person": tfds.features.Scalar(dtype=np.bool_),
                "saliency": _label(1),
                "normals": _label(3),
                "normals_mask": _label(1),
                "edge": _label(1),
                "image_id": tfds.features.Text(),
            }),
            homepage="https://github.com/menelaoskanakis/RCM",
        )

    def _split_generators(self, dl_manager):
        root = builder_lib.source_root(
            dl_manager, SPEC.folder, SPEC.marker, SPEC.url, _INSTRUCTIONS,
            allow_download=self.allow_download)
        normals_classes = pascal_labels.normals_classes(root)
        return {split: self._generate_examples(root, split, normals_classes)
                for split in builder_lib.SPLIT_FILES}

    def _generate_examples(self, root, split, normals_classes):
        ids = builder_lib.split_ids(root, os.path.join("ImageSets",
                                                       "Context"), split)
        return self.skipper.generate(
            split, ids, lambda i: read_example(root, i, normals_classes))


_FILES = {  # feature source -> (folder, extension)
    "image": ("JPEGImages", ".jpg"),
    "semseg": (os.path.join("SemanticSegmentation", "Context"), ".png"),
    "parts": ("PascalParts", ".mat"),
    "saliency": ("SaliencyDistill", ".png"),
    "normals": ("NormalsDistill", ".png"),
    "context": (os.path.join("Context", "trainval"), ".mat"),
}


def read_example(root, image_id, normals_classes):
    """One example's features from the authors' files, checked."""
    paths = {k: os.path.join(root, folder, image_id + ext)
             for k, (folder, ext) in _FILES.items()}
    image_bytes, image = raw_files.read_rgb_image(paths["image"])
    size = image.shape[:2]
    for key, path in paths.items():  # A missing label is named first.
        raw_files.require_file(path, f"{key} label")

    semseg = raw_files.read_png_label(paths["semseg"])
    semseg = raw_files.class_map(
        raw_files.check_size(semseg, size, paths["semseg"]),
        SPEC.num_classes["semseg"], paths["semseg"])

    anno = raw_files.read_mat(paths["parts"], "anno")
    parts, has_person = pascal_labels.human_parts(anno, size, paths["parts"])

    saliency = raw_files.read_png_label(paths["saliency"])
    raw_files.check_size(saliency, size, paths["saliency"])

    normals = raw_files.read_png_label(paths["normals"], channels=3)
    raw_files.check_size(normals, size, paths["normals"])

    label_map = raw_files.read_mat(paths["context"], "LabelMap")
    raw_files.check_size(label_map, size, paths["context"])
    if label_map.ndim != 2:
        raise raw_files.BadExampleError(
            f"Expected a 2-D label map in {paths['context']}; found shape "
            f"{label_map.shape}.")
    return {
        "image": image_bytes,
        "semseg": semseg,
        "human_parts": parts,
        "has_person": has_person,
        "saliency": (saliency.astype(np.float32) / 255.0 > 0.5).astype(
            np.uint8),
        "normals": normals,
        "normals_mask": np.isin(label_map, normals_classes).astype(
            np.uint8)[..., None],
        "edge": label_edges.label_map_edges(label_map).astype(
            np.uint8)[..., None],
        "image_id": image_id,
    }
