"""What the NYUD-MT and PASCAL-MT builders share: finding the authors'
folder (extracted, zipped, or downloaded), reading set files, and examples
that fail with a clear error or are skipped and counted."""

import os

from absl import logging

from rmtl_tf.data.raw_files import BadExampleError, read_split_ids

# TFDS split name -> the authors' set file name.
SPLIT_FILES = {"train": "train", "validation": "val"}


def find_source(directory, folder, marker):
    """Where the authors' `folder` is under `directory`, or None.

    Accepts `directory/folder/`, `directory` itself when it is that folder
    (it holds `marker`), and returns `directory/folder.zip` when only the
    archive is there.
    """
    if not directory or not os.path.isdir(directory):
        return None
    candidates = (os.path.join(directory, folder), directory)
    for path in candidates:
        if os.path.exists(os.path.join(path, marker)):
            return path
    archive = os.path.join(directory, folder + ".zip")
    return archive if os.path.isfile(archive) else None


def source_root(dl_manager, folder, marker, url, instructions,
                allow_download=True):
    """The extracted `folder` to build from: manual_dir first, else `url`.

    A zip in manual_dir is extracted by `dl_manager`. Raises
    `FileNotFoundError` (with `instructions`) when manual_dir has no copy
    and downloading is not allowed or fails.
    """
    manual_dir = None
    try:
        manual_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # manual_dir missing or empty.
        pass
    found = find_source(manual_dir, folder, marker)
    if found is None and manual_dir is not None:
        raise FileNotFoundError(
            f"manual_dir={manual_dir!r} holds neither {folder}/ nor "
            f"{folder}.zip.\n{instructions}")
    if found is None:
        if not allow_download:
            raise FileNotFoundError(
                f"No manual_dir with {folder}/ or {folder}.zip, and "
                f"downloading is off.\n{instructions}")
        try:
            found = os.fspath(dl_manager.download_and_extract(url))
        except Exception as e:  # pylint: disable=broad-except
            raise FileNotFoundError(
                f"Could not download {url}: {e}\n{instructions}") from e
        found = find_source(found, folder, marker)
        if found is None or found.endswith(".zip"):
            raise FileNotFoundError(f"The archive {url} holds no {folder}/.")
    if found.endswith(".zip"):
        extracted = os.fspath(dl_manager.extract(found))
        found = find_source(extracted, folder, marker)
        if found is None or found.endswith(".zip"):
            raise FileNotFoundError(f"The archive holds no {folder}/ with "
                                    f"{marker}.")
    return found


def split_ids(root, sets_dir, split):
    """Image ids of TFDS `split` from `root/sets_dir/<train|val>.txt`."""
    return read_split_ids(os.path.join(root, sets_dir,
                                       SPLIT_FILES[split] + ".txt"))


class ExampleSkipper:
    """Runs `make_example(image_id)` per id; bad examples raise, or are
    skipped and counted when `skip` is set (one warning per split)."""

    def __init__(self, dataset, skip=False):
        self.dataset = dataset
        self.skip = skip
        self.skipped = {}  # split -> ["<id>: <reason>", ...]

    def generate(self, split, ids, make_example):
        skipped = self.skipped.setdefault(split, [])
        kept = 0
        for image_id in ids:
            try:
                example = make_example(image_id)
            except BadExampleError as e:
                if not self.skip:
                    raise BadExampleError(
                        f"{self.dataset} {split} example {image_id!r}: {e} "
                        "(pass skip_bad_examples=True / "
                        "--skip_bad_examples to skip such examples)") from e
                skipped.append(f"{image_id}: {e}")
                continue
            kept += 1
            yield image_id, example
        if skipped:
            logging.warning(
                "%s %s: skipped %d bad example(s) of %d; kept %d. First: %s",
                self.dataset, split, len(skipped), len(ids), kept,
                "; ".join(skipped[:5]))
        if not kept:
            raise ValueError(f"{self.dataset} {split}: every example was "
                             f"bad ({len(skipped)} skipped).")
