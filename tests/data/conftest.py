"""Tiny NYUD-MT / PASCAL-MT copies in the authors' layout, prepared once per
session with the TFDS builders."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
import write_fixtures  # pylint: disable=wrong-import-position

from rmtl_tf.data import datasets  # pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def nyud(tmp_path_factory):
    """(manual_dir, data_dir, {image_id: arrays written}) of NYUD-MT."""
    manual_dir = str(tmp_path_factory.mktemp("nyud_manual"))
    data_dir = str(tmp_path_factory.mktemp("nyud_tfds"))
    written = write_fixtures.write_nyud_mt(manual_dir)
    datasets.prepare("nyud", data_dir, manual_dir)
    return manual_dir, data_dir, written


@pytest.fixture(scope="session")
def pascal(tmp_path_factory):
    """(manual_dir, data_dir, {image_id: arrays written}) of PASCAL-MT."""
    manual_dir = str(tmp_path_factory.mktemp("pascal_manual"))
    data_dir = str(tmp_path_factory.mktemp("pascal_tfds"))
    written = write_fixtures.write_pascal_mt(manual_dir)
    datasets.prepare("pascal_context", data_dir, manual_dir)
    return manual_dir, data_dir, written
