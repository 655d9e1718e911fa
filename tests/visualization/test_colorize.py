"""Colour codes: shapes, dtypes and the colours themselves."""

import numpy as np
import pytest

from rmtl_tf.visualization.colorize import (IGNORE_COLOUR, colorize,
                                            colorize_depth, label_palette)


def test_labels_use_the_voc_palette_and_white_for_ignore():
    palette = label_palette()
    np.testing.assert_array_equal(palette[:3],
                                  [[0, 0, 0], [128, 0, 0], [0, 128, 0]])
    out = colorize("semseg", np.array([[[0, 1, 255]]]))
    assert out.shape == (1, 1, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0], [128, 0, 0],
                                              [255, 255, 255]])
    scores = np.eye(3)[np.array([[[2, 1]]])]  # (1, 1, 2, 3) scores.
    np.testing.assert_array_equal(colorize("human_parts", scores)[0, 0],
                                  palette[[2, 1]])


def test_depth_shares_a_range_and_blacks_out_invalid():
    truth = np.array([[[[0.0], [1.0], [3.0]]]])
    out = colorize_depth(truth)
    assert out.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(out[0, 0, 0], [0, 0, 0])
    # The same value in another map with the same range: the same colour.
    pred = colorize("depth", np.array([[[[3.0], [2.0], [1.0]]]]),
                    value_range=(1.0, 3.0))
    np.testing.assert_array_equal(pred[0, 0, 0], out[0, 0, 2])
    np.testing.assert_array_equal(pred[0, 0, 2], out[0, 0, 1])


def test_normals_edges_and_saliency():
    normals = np.array([[[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]]])
    out = colorize("normals", normals)
    np.testing.assert_array_equal(out[0, 0], [[127, 127, 255], [0, 0, 0]])
    edge = colorize("edge", np.array([[[[0.0], [1.0], [255.0]]]]))
    np.testing.assert_array_equal(edge[0, 0], [[0, 0, 0], [255, 255, 255],
                                               IGNORE_COLOUR])
    assert colorize("saliency", np.full((2, 4, 5, 1), 0.5)).shape == (
        2, 4, 5, 3)
    with pytest.raises(ValueError, match="Unknown task 'sky'"):
        colorize("sky", np.zeros((1, 2, 2)))
