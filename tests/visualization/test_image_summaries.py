"""Panels (input | truth | prediction) and their TensorBoard summaries."""

import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.visualization.image_summaries import (SEPARATOR, task_panels,
                                                   write_task_images)


def test_panel_layout():
    images = np.full((2, 4, 5, 3), 300.0)  # Clipped to 255.
    labels = np.zeros((2, 4, 5), np.int32)
    scores = np.zeros((2, 4, 5, 6), np.float32)
    scores[..., 1] = 1.0
    panels = task_panels("semseg", images, labels, scores)
    assert panels.shape == (2, 4, 3 * 5 + 2 * SEPARATOR, 3)
    assert panels.dtype == np.uint8
    np.testing.assert_array_equal(panels[0, 0, :5], 255)  # The input.
    np.testing.assert_array_equal(panels[0, 0, 7:12], 0)  # Class 0 black.
    np.testing.assert_array_equal(panels[0, 0, 14:], [[128, 0, 0]] * 5)
    with pytest.raises(ValueError, match="sizes differ"):
        task_panels("depth", images, np.ones((2, 4, 4, 1)),
                    np.ones((2, 4, 5, 1)))


def test_write_task_images(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    images = np.zeros((2, 8, 8, 3), np.float32)
    labels = {"depth": np.ones((2, 8, 8, 1)), "edge": np.zeros((2, 8, 8, 1))}
    write_task_images(writer, 3, images, labels, labels, ["depth", "edge"])
    tags = set()
    for path in tmp_path.iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags |= {v.tag for v in event.summary.value}
    assert tags == {"depth/input_truth_prediction",
                    "edge/input_truth_prediction"}
