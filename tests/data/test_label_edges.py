"""PASCAL edges: the Laplacian as OpenCV computes it, thinning as
scikit-image documents it."""

import cv2
import numpy as np

from rmtl_tf.data import label_edges


def test_laplacian_matches_opencv():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (23, 31)).astype(np.uint16)
    labels[5:15, 8:20] = 459
    expected = cv2.Laplacian(labels.astype(np.float64), cv2.CV_64F) != 0
    np.testing.assert_array_equal(label_edges.laplacian_edges(labels),
                                  expected)


def test_thin_matches_scikit_image_docstring_example():
    # skimage.morphology.thin's docstring: a 5x3 block and a stray pixel.
    square = np.zeros((7, 7), bool)
    square[1:-1, 2:-2] = True
    square[0, 1] = True
    expected = np.zeros((7, 7), bool)
    expected[0, 1] = expected[1, 2] = True
    expected[2:5, 3] = True
    np.testing.assert_array_equal(label_edges.thin(square), expected)


def test_thin_matches_scikit_image_test_case():
    # skimage's test_thin.py `test_noiter` input and expected output.
    image = np.array([[0, 0, 0, 0, 0, 0, 0],
                      [0, 1, 1, 1, 1, 1, 0],
                      [0, 1, 0, 1, 1, 1, 0],
                      [0, 1, 1, 1, 1, 1, 0],
                      [0, 1, 1, 1, 1, 1, 0],
                      [0, 1, 1, 1, 1, 1, 0],
                      [0, 0, 0, 0, 0, 0, 0]], bool)
    expected = np.array([[0, 0, 0, 0, 0, 0, 0],
                         [0, 0, 1, 0, 0, 0, 0],
                         [0, 1, 0, 1, 0, 0, 0],
                         [0, 0, 1, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(label_edges.thin(image), expected)
    # One iteration only (skimage's `test_iter_1`).
    once = np.array([[0, 0, 0, 0, 0, 0, 0],
                     [0, 0, 1, 0, 0, 0, 0],
                     [0, 1, 0, 1, 1, 0, 0],
                     [0, 0, 1, 1, 1, 0, 0],
                     [0, 0, 1, 1, 1, 0, 0],
                     [0, 0, 0, 0, 0, 0, 0],
                     [0, 0, 0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(label_edges.thin(image, 1), once)


def test_label_map_edges_are_thin_boundaries():
    labels = np.zeros((20, 30), np.uint16)
    labels[:, 15:] = 7
    edges = label_edges.label_map_edges(labels)
    # The Laplacian marks both sides of the boundary; thinning keeps one.
    both = label_edges.laplacian_edges(labels)
    assert both[:, 14].all() and both[:, 15].all()
    assert np.all(edges <= both)
    assert edges.sum(axis=1).max() == 1  # One pixel wide,
    assert edges.sum() >= 18  # and (but for an end) along the boundary.
