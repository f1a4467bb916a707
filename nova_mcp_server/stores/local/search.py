"""The query planner: exact scan or IVF probe per query, always finished by an exact float64 re-rank.

Per query, with `count` = live rows that pass the filter:
- no ANN for this generation, or scanning the `count` matching rows costs no more than the probe would:
  exact (score all rows, or gather the matching ones when they are few);
- otherwise probe the nearest lists, the filter mask applied to each list's scores, and keep probing
  (widening) until `top_k + RERANK_EXTRA` candidates are in hand -- `FILTERED_CANDIDATES * top_k` matching
  ones under a filter, whose nearest matches may lie beyond the query's own lists (measured: 42 matching
  candidates gave recall@10 0.91 on a 2.6 % filter, 400 gave 0.993 at 100k; at 1M a 7.5 % filter reached
  0.990 with 400, so 600). The cost model counts the rows a probe
  must scan to find that many matches, so narrow filters go exact; so does any filter matching under 5 % of
  the rows (at 1M x 1024 a 2.5 % filter probed 41 lists and reached recall@10 0.76: its nearest matches lie
  in many far lists at almost equal distance). When the lists run out the
  probe has scored every row, so `top_k` hits come back whenever that many rows match.
Candidates are re-scored in float64 from the vector file and sorted by (distance, row): identical inputs give
identical answers, and a deleted or uncommitted row can never appear (the live mask and the view's row
count bound every candidate).

Speed: every product is a single-threaded BLAS call (`single_threaded_blas`), which releases the GIL, so
concurrent searchers overlap; the Python work per query is a few dozen whole-array steps. A scan too wide
for that -- the gathered rows of a narrow filter at 1M rows, a full exact scan -- is split across the
cores instead (`products`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading

import numpy as np
from threadpoolctl import threadpool_limits

from nova_mcp_server.stores.local.index import View
from nova_mcp_server.stores.local.pools import ForkSafePool

RERANK_EXTRA = 32  # float32 candidates re-scored in float64 beyond top_k
GATHER_BELOW = 0.15  # below this match fraction, gather the matching rows instead of scoring all
NPROBE = 12  # lists probed first: with 2 sqrt(n) lists, 1.9 % of the rows at 100k, 0.6 % at 1M
EMPTY = (np.empty(0, np.int64), np.empty(0))
FILTERED_CANDIDATES = 60  # a filtered probe goes on until it holds this many matching rows per hit asked for
FILTERED_EXACT_BELOW = 0.05  # filters matching fewer live rows than this go exact (see the module docstring)
GATHER_BLOCK = 512  # matching rows gathered and scored per block: 2 MB at 1024-d stays in cache (measured at
# 1M rows, 25k of them: 39 ms in blocks of 256, 91 ms in blocks of 16k, 99 ms in one gather)

PARALLEL_ROWS = 8192  # scans of more rows than this are split across the cores


def cpu_cores() -> int:
    """Cores this process may run on (its affinity where the OS says, else the machine's count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0)) if affinity is not None else (os.cpu_count() or 1))


_CORES = min(4, cpu_cores())
_SCANNER = ForkSafePool(_CORES - 1, "nova-store-scan")
_blas_lock = threading.Lock()
_blas_limited = False


def single_threaded_blas() -> None:
    """Pin BLAS (OpenBLAS, MKL, Accelerate) to one thread in this process, once. Measured on this 2-core
    machine: a 2,000 x 1024 `gemv` on OpenBLAS's default pool ran 0.08x as fast with 8 concurrent searchers
    as with one (its threads spin against each other), single-threaded 1.85x -- and `@` then beats numpy's
    `einsum` loop by ~1.3x. Searches run in parallel across requests instead, each product GIL-free: with
    `np.dot`, which releases the GIL around the BLAS call (`np.matmul` on a 160 x 1024 slice scaled 1.2x on
    two threads, `np.dot` 1.9x, measured on the idle machine).
    `maintenance.many_threads` lifts the limit for a rewrite's k-means."""
    global _blas_limited
    with _blas_lock:
        if not _blas_limited:
            with contextlib.suppress(Exception):  # no BLAS threadpool found: nothing to pin
                threadpool_limits(limits=1, user_api="blas")
            _blas_limited = True


def search(
    view: View, query: np.ndarray, top_k: int, mask: np.ndarray, count: int, nprobe: int = NPROBE
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and distances of the `top_k` nearest rows of `view` among `mask` (live rows that pass the
    filter, `count` of them: `Handle.matching`)."""
    n = view.rows
    if count == 0 or n == 0:
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
            rows, scores = probe(view, query, mask, need, first)
            return rerank(view, query, rows, scores, top_k)
    rows, scores = exact(view, query, mask, count)
    return rerank(view, query, rows, scores, top_k)


def _scale(view: View, dots: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """Higher = nearer. cosine: x.q/|x| (|q| is constant); euclidean: 2 x.q - |x|^2."""
    if view.cosine:
        dots *= view.inv_norms[rows]
        return dots
    return 2 * dots - view.sqnorms[rows]


def exact(view: View, query: np.ndarray, mask: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidates by scanning: every row when most match, else only the matching rows, gathered."""
    n = view.rows
    if count < GATHER_BELOW * n:
        rows = np.flatnonzero(mask)
        return rows, _scale(view, products(view.matrix, rows, query), rows)
    scores = _scale(view, products(view.matrix, None, query), slice(None))
    if count < n:
        scores[~mask] = -np.inf
    return np.arange(n), scores


def products(matrix: np.ndarray, rows: np.ndarray | None, query: np.ndarray) -> np.ndarray:
    """`matrix[rows] @ query` (all rows when `rows` is None) in float32. Rows are gathered a block at a time
    (a block's copy stays in cache for its product); a scan of more than `PARALLEL_ROWS` rows is split
    between this thread and helper threads, one part per core (gathering and BLAS both release the GIL), so
    one wide query on an idle machine uses every core while BLAS itself stays single-threaded."""
    total = len(matrix) if rows is None else len(rows)
    out = np.empty(total, np.float32)
    parts = min(_CORES, total // PARALLEL_ROWS)
    if parts <= 1:
        _fill(matrix, rows, query, out, 0, total)
        return out
    bounds = [total * i // parts for i in range(parts + 1)]
    helpers = [
        _SCANNER.get().submit(_fill, matrix, rows, query, out, a, b)
        for a, b in zip(bounds[1:-1], bounds[2:], strict=True)
    ]
    _fill(matrix, rows, query, out, bounds[0], bounds[1])
    for done in helpers:
        done.result()
    return out


def _fill(matrix: np.ndarray, rows: np.ndarray | None, query: np.ndarray, out: np.ndarray, a: int, b: int) -> None:
    if rows is None:
        np.dot(matrix[a:b], query, out=out[a:b])
        return
    for start in range(a, b, GATHER_BLOCK):
        part = rows[start : min(b, start + GATHER_BLOCK)]
        np.dot(matrix[part], query, out=out[start : start + len(part)])


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The rows start..stop-1 of every (start, stop), concatenated, in one vectorised step."""
    lengths = stops - starts
    total = int(lengths.sum())
    firsts = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.arange(total, dtype=np.int64) + np.repeat(starts - firsts, lengths)


def probe(view: View, query: np.ndarray, mask: np.ndarray, want: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidates from the nearest IVF lists: their sorted slices (one product each, written into one
    array) plus their tail rows, then masked and scaled in a few whole-array steps -- few GIL-holding
    calls per query, so concurrent searchers overlap."""
    ivf = view.ivf
    assert ivf is not None
    distance = -ivf.centroid_scores(query)
    if nprobe < ivf.lists:  # the first round's lists by a partial sort; the rest sorted only when widening
        order = np.argpartition(distance, nprobe - 1)[:nprobe]
    else:
        order = np.argsort(distance, kind="stable")
    clustered = min(ivf.clustered, view.rows)
    tail_rows = np.arange(clustered, clustered + len(view.tail_lists))
    rows_parts: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    found, done, step = 0, 0, nprobe
    while done < ivf.lists:
        if done >= len(order):  # widening past the first round: every list not yet probed, nearest first
            rest = np.ones(ivf.lists, dtype=bool)
            rest[order] = False
            others = np.flatnonzero(rest)
            order = np.concatenate([order, others[np.argsort(distance[others], kind="stable")]])
        lists = order[done : done + step]
        done += len(lists)
        starts = np.minimum(ivf.offsets[lists], clustered)
        stops = np.maximum(np.minimum(ivf.offsets[lists + 1], clustered), starts)
        rows = _ranges(starts, stops)
        dots = np.empty(len(rows), np.float32)
        at = 0
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            if b > a:
                np.dot(view.matrix[a:b], query, out=dots[at : at + b - a])
                at += b - a
        if len(tail_rows):
            chosen = np.zeros(ivf.lists, dtype=bool)
            chosen[lists] = True
            extra = tail_rows[chosen[view.tail_lists]]
            if len(extra):
                rows = np.concatenate([rows, extra])
                dots = np.concatenate([dots, np.dot(view.matrix[extra], query)])
        keep = mask[rows]
        rows = rows[keep]
        rows_parts.append(rows)
        score_parts.append(_scale(view, dots[keep], rows))
        found += len(rows)
        if found >= want:
            break
        step = max(nprobe, done // 2)  # widen by half of what was probed (x1.5 per round)
    if not rows_parts:
        return EMPTY
    if len(rows_parts) == 1:
        return rows_parts[0], score_parts[0]
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
    if view.cosine:  # sqrt(einsum) rather than np.linalg.norm: 2x faster on 42 rows, the same float64 values
        norms = np.sqrt(np.einsum("ij,ij->i", exact_rows, exact_rows)) * math.sqrt(float(q @ q))
        distances = 1.0 - np.dot(exact_rows, q) / norms
    else:
        diff = exact_rows - q
        distances = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    order = np.lexsort((rows, distances))[:top_k]
    return rows[order], distances[order]
