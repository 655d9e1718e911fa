"""Maximum matching against an assignment solver, and on the ladder graphs
that make SciPy's Hopcroft-Karp exponential."""

import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from rmtl_tf.metrics.bipartite_matching import (greedy_matching,
                                                maximum_matching)


def _reference_size(adjacency):
    if not adjacency.size:
        return 0
    rows, cols = linear_sum_assignment(-adjacency.astype(float))
    return int(adjacency[rows, cols].sum())


def _check(adjacency, rows, cols):
    match_row, match_col = maximum_matching(rows, cols, *adjacency.shape)
    for r, c in enumerate(match_row):
        if c >= 0:
            assert adjacency[r, c] and match_col[c] == r
    assert (match_col >= 0).sum() == (match_row >= 0).sum()
    return int((match_row >= 0).sum())


def test_random_graphs_against_linear_sum_assignment():
    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = tuple(rng.integers(1, 25, 2))
        adjacency = rng.random(shape) < rng.uniform(0.02, 0.4)
        rows, cols = np.nonzero(adjacency)
        order = rng.permutation(rows.size)  # Any edge order.
        assert _check(adjacency, rows[order], cols[order]) == \
            _reference_size(adjacency)


def test_greedy_is_maximal_but_not_maximum():
    # Path r0-c0, r0-c1, r1-c0 listed with r0-c0 first: greedy takes it and
    # strands r1; the maximum matching has two pairs.
    rows, cols = np.array([0, 0, 1]), np.array([0, 1, 0])
    match_row, _ = greedy_matching(rows, cols, 2, 2)
    assert match_row.tolist() == [0, -1]
    adjacency = np.array([[1, 1], [1, 0]], bool)
    assert _check(adjacency, rows, cols) == 2


def test_ladders_are_fast_and_exact():
    # Level i: rows 2i, 2i+1 each adjacent to columns 2i, 2i+1 and to the
    # next level's columns, edges listed so the greedy start is poor.
    levels = 400
    rows, cols = [], []
    for i in range(levels):
        for r in (2 * i, 2 * i + 1):
            for c in range(2 * i + 2, min(2 * i + 4, 2 * levels)):
                rows.append(r)
                cols.append(c)
            for c in (2 * i, 2 * i + 1):
                rows.append(r)
                cols.append(c)
    rows, cols = np.array(rows), np.array(cols)
    adjacency = np.zeros((2 * levels, 2 * levels), bool)
    adjacency[rows, cols] = True
    greedy_rows, _ = greedy_matching(rows, cols, 2 * levels, 2 * levels)
    assert (greedy_rows >= 0).sum() < 2 * levels  # Augmenting paths needed.
    started = time.perf_counter()
    size = _check(adjacency, rows, cols)
    assert time.perf_counter() - started < 5.0
    assert size == 2 * levels == _reference_size(adjacency)


def test_empty_graph():
    match_row, match_col = maximum_matching([], [], 3, 2)
    assert match_row.tolist() == [-1, -1, -1] and match_col.tolist() == [-1,
                                                                        -1]
