"""Maximum-cardinality matching of a sparse bipartite graph, fast on the
graphs boundary evaluation builds.

Why not `scipy.sparse.csgraph.maximum_bipartite_matching`: its
Hopcroft-Karp depth-first search never marks dead ends, so it takes time
exponential in the depth of ladder-like graphs (scipy issue #26147, open in
SciPy 1.17) - and two parallel boundary lines a pixel apart are exactly a
ladder: one 425x560 threshold took 79 s.

Here, in three steps, all exact:
1. greedy rounds (numpy): every free row proposes its first (nearest)
   free neighbour, every column accepts its first proposal; repeated until
   no proposal is left, a maximal matching;
2. connected components (scipy): a component whose matching already has
   min(rows, columns) pairs is optimal and is left alone;
3. Hopcroft-Karp phases (pure Python, with dead-end marking and a current
   edge per row, so each phase is linear) on the other components only.
"""

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components


def greedy_matching(rows, cols, num_rows, num_cols):
    """A maximal matching; edges earlier in the list are preferred.

    Returns `(match_row, match_col)`: the column of each row and the row of
    each column, -1 when free.
    """
    match_row = np.full(num_rows, -1, np.int64)
    match_col = np.full(num_cols, -1, np.int64)
    order = np.arange(rows.size)
    while order.size:
        free = (match_row[rows[order]] < 0) & (match_col[cols[order]] < 0)
        order = order[free]
        if not order.size:
            break
        # First edge of each row (the row's proposal), then the first
        # proposal each column receives.
        _, first = np.unique(rows[order], return_index=True)
        proposals = np.sort(order[first])
        _, accepted = np.unique(cols[proposals], return_index=True)
        accepted = proposals[accepted]
        match_row[rows[accepted]] = cols[accepted]
        match_col[cols[accepted]] = rows[accepted]
    return match_row, match_col


def _hopcroft_karp(indptr, indices, match_row, match_col):
    """Augments `match_row` / `match_col` (lists) to a maximum matching."""
    num_rows = len(indptr) - 1
    ends = indptr[1:]
    while True:
        dist = [-1] * num_rows
        queue = [r for r in range(num_rows) if match_row[r] < 0]
        for r in queue:
            dist[r] = 0
        found, head = False, 0
        while head < len(queue):
            r = queue[head]
            head += 1
            for c in indices[indptr[r]:ends[r]]:
                r2 = match_col[c]
                if r2 < 0:
                    found = True
                elif dist[r2] < 0:
                    dist[r2] = dist[r] + 1
                    queue.append(r2)
        if not found:
            return
        pointer = list(indptr[:-1])
        chosen = [-1] * num_rows
        for root in range(num_rows):
            if match_row[root] >= 0 or dist[root] != 0:
                continue
            stack = [root]
            while stack:
                r = stack[-1]
                descended = False
                while pointer[r] < ends[r]:
                    c = indices[pointer[r]]
                    pointer[r] += 1
                    r2 = match_col[c]
                    if r2 < 0:
                        chosen[r] = c
                        for s in stack:  # Augment along the stack.
                            match_row[s] = chosen[s]
                            match_col[chosen[s]] = s
                            dist[s] = -1
                        stack = []
                        descended = True
                        break
                    if dist[r2] == dist[r] + 1:
                        chosen[r] = c
                        stack.append(r2)
                        descended = True
                        break
                if not descended:
                    dist[r] = -1  # Dead end: never explored again.
                    stack.pop()


def maximum_matching(rows, cols, num_rows, num_cols):
    """Maximum-cardinality matching of the bipartite graph with edges
    `(rows[i], cols[i])`; earlier edges are preferred by the greedy start.

    Returns `(match_row, match_col)` as `greedy_matching`.
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    match_row, match_col = greedy_matching(rows, cols, num_rows, num_cols)
    if not rows.size:
        return match_row, match_col
    # Components of the graph over rows 0..R-1 and columns R..R+C-1.
    n = num_rows + num_cols
    graph = coo_matrix((np.ones(rows.size, np.int8),
                        (rows, cols + num_rows)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    row_label, col_label = label[:num_rows], label[num_rows:]
    size = label.max() + 1
    count_rows = np.bincount(row_label, minlength=size)
    count_cols = np.bincount(col_label, minlength=size)
    matched = np.bincount(row_label[match_row >= 0], minlength=size)
    open_components = matched < np.minimum(count_rows, count_cols)
    if not open_components.any():
        return match_row, match_col
    # Hopcroft-Karp on the components greedy did not settle.
    sub_rows = np.flatnonzero(open_components[row_label])
    sub_cols = np.flatnonzero(open_components[col_label])
    row_id = np.full(num_rows, -1, np.int64)
    col_id = np.full(num_cols, -1, np.int64)
    row_id[sub_rows] = np.arange(sub_rows.size)
    col_id[sub_cols] = np.arange(sub_cols.size)
    keep = row_id[rows] >= 0
    sub_r, sub_c = row_id[rows[keep]], col_id[cols[keep]]
    sub_match_row = np.where(match_row[sub_rows] >= 0,
                             col_id[match_row[sub_rows]], -1)
    sub_match_col = np.where(match_col[sub_cols] >= 0,
                             row_id[match_col[sub_cols]], -1)
    # Phases search from the free vertices of the row side: make it the
    # side with fewer of them.
    swap = (sub_match_col < 0).sum() < (sub_match_row < 0).sum()
    if swap:
        sub_r, sub_c = sub_c, sub_r
        sub_match_row, sub_match_col = sub_match_col, sub_match_row
    adjacency = csr_matrix(
        (np.ones(sub_r.size, np.int8), (sub_r, sub_c)),
        shape=(sub_match_row.size, sub_match_col.size))
    adjacency.sort_indices()
    sub_match_row, sub_match_col = (sub_match_row.tolist(),
                                    sub_match_col.tolist())
    _hopcroft_karp(adjacency.indptr.tolist(), adjacency.indices.tolist(),
                   sub_match_row, sub_match_col)
    if swap:
        sub_match_row, sub_match_col = sub_match_col, sub_match_row
    sub_match_row = np.asarray(sub_match_row, np.int64)
    has = sub_match_row >= 0
    match_row[sub_rows] = -1
    match_col[sub_cols] = -1
    match_row[sub_rows[has]] = sub_cols[sub_match_row[has]]
    match_col[sub_cols[sub_match_row[has]]] = sub_rows[has]
    return match_row, match_col
