"""The query planner: exact scan or IVF probe per query, always finished by an exact float64 re-rank.

Per query, with `count` = live rows that pass the filter:
- no ANN for this generation, or scanning the `count` matching rows costs no more than the probe would:
  exact (score all rows, or gather the matching ones when they are few);
- otherwise probe the nearest lists, the filter mask applied to each list's scores, and keep probing
  (widening) until `top_k + RERANK_EXTRA` candidates are in hand -- `FILTERED_CANDIDATES * top_k` matching
  ones under a filter, whose nearest matches may lie beyond the query's own lists (measured: 42 matching
  candidates gave recall@10 0.91 on a 2.6 % filter, 400 gave 0.993). The cost model counts the rows a probe
  must scan to find that many matches, so narrow filters go exact; so does any filter matching under 5 % of
  the rows (at 1M x 1024 a 2.5 % filter probed 41 lists and reached recall@10 0.76: its nearest matches lie
  in many far lists at almost equal distance). When the lists run out the
  probe has scored every row, so `top_k` hits come back whenever that many rows match.
Candidates are re-scored in float64 from the vector file and sorted by (distance, row): identical inputs give
identical answers, and a deleted or uncommitted row can never appear (the live mask and the view's row
count bound every candidate).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nova_mcp_server.stores.local.index import View

RERANK_EXTRA = 32  # float32 candidates re-scored in float64 beyond top_k
GATHER_BELOW = 0.15  # below this match fraction, gather the matching rows instead of scoring all
NPROBE = 12  # lists probed first: with 2 sqrt(n) lists, 1.9 % of the rows at 100k, 0.6 % at 1M
EMPTY = (np.empty(0, np.int64), np.empty(0))
FILTERED_CANDIDATES = 40  # a filtered probe goes on until it holds this many matching rows per hit asked for
FILTERED_EXACT_BELOW = 0.05  # filters matching fewer live rows than this go exact (see the module docstring)
BLAS_ROWS = 65_536  # matrix-vector products over more rows than this go to BLAS


def dot(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """matrix @ query. Small products use `einsum` (numpy's own single-threaded loop): OpenBLAS wakes its
    thread pool for every `gemv`, which cost 5-30x on this loaded 2-core machine (a 632 x 1024 product took
    13 ms instead of 0.2) and serialises concurrent searchers; only large scans gain from its threads."""
    return matrix @ query if len(matrix) > BLAS_ROWS else np.einsum("ij,j->i", matrix, query)


def search(
    view: View, query: np.ndarray, top_k: int, mask: np.ndarray | None, nprobe: int = NPROBE
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and distances of the `top_k` nearest rows of `view` that are live and pass `mask`."""
    n = view.rows
    if n == 0:
        return EMPTY
    if mask is None:
        mask, count = view.live, view.live_count
    else:
        mask = mask & view.live
        count = int(np.count_nonzero(mask))
    if count == 0:
        return EMPTY
    want = top_k + RERANK_EXTRA
    if view.ivf is not None and count > want:
        ivf = view.ivf
        filtered = count < view.live_count
        need = max(want, FILTERED_CANDIDATES * top_k) if filtered else want
        exact_cost = 2 * count if count < GATHER_BELOW * n else n  # gathering costs about twice a slice
        probe_cost = max(n * nprobe / ivf.lists, need * n / count)  # rows scanned to find `need` matches
        if probe_cost < exact_cost and (not filtered or count >= FILTERED_EXACT_BELOW * view.live_count):
            first = max(nprobe, math.ceil(1.25 * need * ivf.lists / count))  # lists expected to hold `need`
            rows, scores = probe(view, query, mask if filtered else None, need, first)
            return rerank(view, query, rows, scores, top_k)
    rows, scores = exact(view, query, mask, count)
    return rerank(view, query, rows, scores, top_k)


def _score_fn(view: View) -> Callable[[np.ndarray, np.ndarray | slice], np.ndarray]:
    """Higher = nearer. cosine: x.q/|x| (|q| is constant); euclidean: 2 x.q - |x|^2."""

    def score(dots: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
        norms = view.sqnorms[rows]
        return dots / np.sqrt(norms) if view.cosine else 2 * dots - norms

    return score


def exact(view: View, query: np.ndarray, mask: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidates by scanning: every row when most match, else only the matching rows (gathered)."""
    n = view.rows
    score = _score_fn(view)
    if count < GATHER_BELOW * n:
        rows = np.flatnonzero(mask)
        scores = score(dot(view.matrix[rows], query), rows)
    else:
        rows = np.arange(n)
        scores = score(dot(view.matrix, query), slice(None))
        if count < n:
            scores[~mask] = -np.inf
    return rows, scores


def probe(
    view: View, query: np.ndarray, mask: np.ndarray | None, want: int, nprobe: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates from the nearest IVF lists: their sorted slices plus their tail rows."""
    ivf = view.ivf
    assert ivf is not None
    score = _score_fn(view)
    order = np.argsort(-ivf.centroid_scores(query))
    clustered = min(ivf.clustered, view.rows)
    tail_rows = np.arange(clustered, clustered + len(view.tail_lists))
    rows_parts: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    found, done, step = 0, 0, nprobe
    while done < len(order):
        lists = order[done : done + step]
        done += len(lists)
        for lst in lists.tolist():
            a, b = int(ivf.offsets[lst]), min(int(ivf.offsets[lst + 1]), clustered)
            if b <= a:
                continue
            s = score(dot(view.matrix[a:b], query), slice(a, b))
            r = np.arange(a, b)
            keep = mask[a:b] if mask is not None else view.live[a:b]
            rows_parts.append(r[keep])
            score_parts.append(s[keep])
        if len(tail_rows):
            chosen = np.zeros(ivf.lists, dtype=bool)
            chosen[lists] = True
            r = tail_rows[chosen[view.tail_lists]]
            r = r[(mask if mask is not None else view.live)[r]]
            if len(r):
                rows_parts.append(r)
                score_parts.append(score(dot(view.matrix[r], query), r))
        found = sum(len(p) for p in rows_parts)
        if found >= want:
            break
        step = max(nprobe, done // 2)  # widen by half of what was probed (x1.5 per round)
    if not rows_parts:
        return EMPTY
    return np.concatenate(rows_parts), np.concatenate(score_parts)


def rerank(
    view: View, query: np.ndarray, rows: np.ndarray, scores: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best `top_k + RERANK_EXTRA` candidates re-scored in float64; `top_k` of them by (distance, row)."""
    m = min(len(rows), top_k + RERANK_EXTRA)
    if m == 0:
        return EMPTY
    best = np.argpartition(-scores, m - 1)[:m] if m < len(scores) else np.arange(len(scores))
    best = best[np.isfinite(scores[best])]
    rows = rows[best]
    exact_rows = view.matrix[rows].astype(np.float64)
    q = query.astype(np.float64)
    if view.cosine:
        distances = 1.0 - np.einsum("ij,j->i", exact_rows, q) / (np.linalg.norm(exact_rows, axis=1) * np.linalg.norm(q))
    else:
        distances = np.linalg.norm(exact_rows - q, axis=1)
    order = np.lexsort((rows, distances))[:top_k]
    return rows[order], distances[order]
