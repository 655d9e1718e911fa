"""Datasets by name: one entry point for train.py and evaluation.

Every dataset yields `(image, labels)` batches through the same pipeline
(`input_pipeline.build`): float32 RGB pixels in [0, 255] of shape
(B, H, W, 3) (the model normalizes inside its graph), and a dict keyed by
task of dense labels (class labels int32 (B, H, W), others float32
(B, H, W, C)); 255 marks ignored class / edge / saliency pixels, 0 invalid
depth and normals.

- `synthetic`: scenes rendered on the fly (`synthetic_dataset.py`).
- `nyud`, `pascal_context`: the TFDS builders `nyud_mt` and `pascal_mt`
  (`builders/`), prepared once into `data_dir` from the authors' archive in
  `manual_dir` (or downloaded), then read from `data_dir`.

`resolve` looks a dataset up, prepares it if needed and opens it once; the
`DataSource` it returns reads any number of splits:

    data = datasets.resolve("nyud", data_dir, manual_dir=manual_dir)
    train = data.split("train", ["semseg"], (425, 560), 8, None,
                       training=True)
"""

import dataclasses
import importlib
import logging
import os
from typing import Any, Optional

from rmtl_tf.data import (dataset_specs, decoders, input_pipeline,
                          synthetic_dataset)
from rmtl_tf.data.builders import builder_lib


class _TfdsPartialDecodingNotice(logging.Filter):
    """Drops the warning TFDS 4.9 logs from its own `PartialDecoding`
    (partial_decode.py reads the deprecated `FeatureConnector.dtype`);
    nothing in this project's code can change it."""

    def filter(self, record):
        return "`FeatureConnector.dtype` is deprecated" not in str(record.msg)


logging.getLogger("absl").addFilter(_TfdsPartialDecodingNotice())

# Encoded splits up to this size are cached in memory by the pipeline.
CACHE_BYTES = 256 * 2**20
SPLITS = ("train", "validation")


def _instructions(spec):
    return (f"Download {spec.archive} from {spec.url} (or extract it) into "
            f"a folder and pass it with --manual_dir, or pass --download "
            "(see docs/datasets.md).")


def builder(name, data_dir, **kwargs):
    """The TFDS builder of dataset `name`, reading/writing `data_dir`."""
    return _builder(dataset_specs.get_spec(name), data_dir, **kwargs)


def _builder(spec, data_dir, **kwargs):
    if spec.tfds_name is None:
        raise ValueError(f"The {spec.name} dataset has no TFDS builder.")
    module = importlib.import_module(
        f"rmtl_tf.data.builders.{spec.tfds_name}."
        f"{spec.tfds_name}_dataset_builder")
    return module.Builder(data_dir=data_dir, **kwargs)


def is_prepared(name, data_dir):
    """Whether `data_dir` holds the prepared TFDS dataset `name`."""
    return bool(data_dir) and os.path.isdir(data_dir) and builder(
        name, data_dir).is_prepared()


def prepare(name, data_dir, manual_dir=None, download=False,
            skip_bad_examples=False):
    """Builds the TFDS dataset `name` into `data_dir` (once).

    From the authors' archive or folder in `manual_dir`, else (with
    `download`) from their URL. Nothing half-written is left behind: TFDS
    writes into a temporary folder renamed at the end, so a failed prepare
    leaves no dataset that looks done. Bad examples raise, naming the file,
    or with `skip_bad_examples` are skipped and counted in a warning.
    """
    return _prepare(dataset_specs.get_spec(name), data_dir, manual_dir,
                    download, skip_bad_examples)


def _prepare(spec, data_dir, manual_dir, download, skip_bad_examples):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    where = (f"The {spec.name} dataset is not prepared in "
             f"data_dir={data_dir!r}")
    if manual_dir:
        if not os.path.isdir(manual_dir):
            raise FileNotFoundError(
                f"{where}, and manual_dir={manual_dir!r} does not exist. "
                + _instructions(spec))
        if builder_lib.find_source(manual_dir, spec.folder,
                                   spec.marker) is None:
            raise FileNotFoundError(
                f"{where}, and manual_dir={manual_dir!r} holds neither "
                f"{spec.folder}/ nor {spec.archive}. " + _instructions(spec))
    elif not download:
        raise FileNotFoundError(f"{where}, and no --manual_dir was given. "
                                + _instructions(spec))
    ds_builder = _builder(spec, data_dir,
                          skip_bad_examples=skip_bad_examples,
                          allow_download=download)
    ds_builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir, try_download_gcs=False))
    return ds_builder


def resolve(name, data_dir=None, *, manual_dir=None, download=False,
            skip_bad_examples=False):
    """The `DataSource` of dataset `name`, with a clear error if unreadable.

    A real dataset not prepared yet in `data_dir` is prepared first (see
    `prepare`); then one TFDS builder reads it, for every split.
    """
    spec = dataset_specs.get_spec(name)
    if spec.tfds_name is None:
        return DataSource(spec)
    if not data_dir:
        raise FileNotFoundError(
            f"The {name} dataset needs --data_dir: the folder its TFDS "
            f"dataset is prepared in (data_dir={data_dir!r}).")
    reader = _builder(spec, data_dir) if os.path.isdir(data_dir) else None
    if reader is None or not reader.is_prepared():
        _prepare(spec, data_dir, manual_dir, download, skip_bad_examples)
        reader = _builder(spec, data_dir)
    return DataSource(spec, data_dir, reader)


def _check_split(name, split):
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} of the {name} dataset. "
                         f"Expected one of {SPLITS}.")


def _check_request(spec, split, tasks, training, start_batch):
    """The errors of a split request that need no data."""
    spec.check_tasks(tasks)
    if start_batch < 0 or (start_batch and not training):
        raise ValueError("start_batch must be >= 0, and only a training "
                         f"split resumes. Received: start_batch={start_batch}"
                         f", training={training}")
    if spec.tfds_name is not None:
        _check_split(spec.name, split)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A dataset resolved once (`resolve`): what it holds, and its splits.

    Attributes:
        spec: its `dataset_specs.DatasetSpec`.
        data_dir: the folder its TFDS dataset is prepared in (None:
            synthetic).
        builder: the TFDS builder that reads `data_dir` (None: synthetic).
    """

    spec: dataset_specs.DatasetSpec
    data_dir: Optional[str] = None
    builder: Any = None

    @property
    def name(self):
        return self.spec.name

    @property
    def tasks(self):
        return self.spec.tasks

    @property
    def num_classes(self):
        """{task: classes} of the class tasks (a copy)."""
        return dict(self.spec.num_classes)

    @property
    def eval_size(self):
        return self.spec.eval_size

    @property
    def info(self):
        """The TFDS `DatasetInfo` (None: synthetic)."""
        return None if self.builder is None else self.builder.info

    def check_tasks(self, tasks):
        """Raises when the dataset has no labels for one of `tasks`."""
        self.spec.check_tasks(tasks)

    def split(self, split, tasks, image_size, batch_size, num_examples, *,
              seed=0, training=False, augment=None, cache=None,
              start_batch=0, full_resolution=False):
        """A batched `tf.data.Dataset` of `split` (see the module doc).

        Args:
            split: "train" or "validation".
            tasks: label keys of each batch.
            image_size: (height, width): training crop; in evaluation the
                size images are padded (centred) to, and (without
                `full_resolution`) cropped to.
            num_examples: synthetic scenes to render; for real datasets the
                first `num_examples` of the split (None: all).
            training: shuffle and repeat.
            augment: the paper's augmentation; defaults to `training`.
            cache: keep the encoded split in memory; by default when it is
                under `CACHE_BYTES`.
            start_batch: the first batch to yield, for a run resumed at
                that step: batch `k` is the same whether or not the run was
                interrupted before it (`input_pipeline.build`, `skip`).
            full_resolution: the authors' evaluation input (scoring):
                images padded to at least `image_size`, never cropped;
                labels at their original size; batches of one original size
                (`input_pipeline.build`). The synthetic scenes are rendered
                at `image_size`, so for them this changes nothing.
        """
        tasks = list(tasks)
        _check_request(self.spec, split, tasks, training, start_batch)
        augment = training if augment is None else augment
        if self.builder is None:
            return synthetic_dataset.synthetic_dataset(
                split, num_examples, tuple(image_size), batch_size,
                seed=seed, shuffle=training, repeat=training, tasks=tasks,
                augment=augment, start_batch=start_batch)
        examples, decode_fn, nbytes, count = self.examples(
            split, tasks, num_examples, training, seed)
        # The shuffle buffer holds encoded examples: at most CACHE_BYTES.
        per_example = max(nbytes // max(count, 1), 1)
        return input_pipeline.build(
            examples, tasks, image_size, batch_size, augment=augment,
            shuffle=training, repeat=training, seed=seed,
            cache=nbytes <= CACHE_BYTES if cache is None else cache,
            decode_fn=decode_fn,
            shuffle_buffer=int(min(count,
                                   max(64, CACHE_BYTES // per_example))),
            skip=start_batch * batch_size,
            full_resolution=full_resolution and not training)

    def examples(self, split, tasks, num_examples=None, shuffle_files=False,
                 seed=0):
        """(encoded examples, decode_fn, approximate bytes, count) of a split.

        Only the features `tasks` need are read, and left encoded (small in
        shuffle buffers and caches) until `decode_fn` runs in the pipeline's
        parallel map. For human parts alone, only images with a person are
        kept, as the authors train and evaluate it.
        """
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
        _check_split(self.name, split)
        if self.builder is None:
            raise ValueError(f"The {self.name} dataset has no TFDS builder.")
        features = self.builder.info.features
        keys = decoders.feature_keys(tasks, features.keys())
        selected = list(keys)
        filter_person = tuple(tasks) == ("human_parts",)
        if filter_person:
            selected.append("has_person")
        examples = self.builder.as_dataset(
            split=split, shuffle_files=shuffle_files,
            read_config=tfds.ReadConfig(shuffle_seed=seed,
                                        try_autocache=False),
            decoders=tfds.decode.PartialDecoding(
                {k: True for k in selected},
                decoders={k: tfds.decode.SkipDecoding() for k in keys}))
        if filter_person:
            examples = examples.filter(lambda ex: ex["has_person"])
            examples = examples.map(lambda ex: {k: ex[k] for k in keys})
        info = self.builder.info.splits[split]
        count = info.num_examples
        if num_examples:
            examples = examples.take(num_examples)
            count = min(num_examples, count)
        nbytes = info.num_bytes * count // max(info.num_examples, 1)

        def decode_fn(example):
            stored = {}
            for key in keys:
                feature = features[key]
                if isinstance(feature, tfds.features.Image):
                    stored[key] = decoders.decode_image_bytes(
                        example[key], feature.shape[-1])
                else:
                    stored[key] = feature.decode_example(example[key])
            return decoders.decode_example(stored, tasks)

        return examples, decode_fn, nbytes, count


def check_available(name, data_dir=None, manual_dir=None, download=False,
                    skip_bad_examples=False):
    """Raises a clear error when dataset `name` cannot be read.

    A real dataset not prepared yet in `data_dir` is prepared first (see
    `prepare`). Returns its `DataSource` (see `resolve`).
    """
    return resolve(name, data_dir, manual_dir=manual_dir, download=download,
                   skip_bad_examples=skip_bad_examples)


def dataset_info(name):
    """{"num_classes": {task: classes}} for the dataset's class tasks."""
    return {"num_classes": dict(dataset_specs.get_spec(name).num_classes)}


def load_split(name, split, tasks, image_size, batch_size, num_examples,
               seed=0, data_dir=None, training=False, augment=None,
               cache=None, start_batch=0, full_resolution=False):
    """`resolve(name, data_dir).split(...)`: see `DataSource.split`.

    A bad request (tasks, split, start_batch) raises before `data_dir` is
    looked at. Reading several splits, resolve once instead.
    """
    tasks = list(tasks)
    _check_request(dataset_specs.get_spec(name), split, tasks, training,
                   start_batch)
    return resolve(name, data_dir).split(
        split, tasks, image_size, batch_size, num_examples, seed=seed,
        training=training, augment=augment, cache=cache,
        start_batch=start_batch, full_resolution=full_resolution)


def tfds_examples(name, split, tasks, data_dir, num_examples=None,
                  shuffle_files=False, seed=0):
    """`resolve(name, data_dir).examples(...)`: see `DataSource.examples`."""
    _check_split(name, split)
    return resolve(name, data_dir).examples(split, tasks, num_examples,
                                            shuffle_files, seed)
