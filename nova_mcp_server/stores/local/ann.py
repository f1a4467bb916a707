"""The approximate path: an inverted-file (IVF) index over the generation's own vector file.

Why IVF and not HNSW (measured on this 2-core machine, 100k x 1024, see benchmarks/store.py and the README):
an HNSW graph (usearch, faiss) takes minutes to build, about 1k inserts/s to maintain, and a copy of every
vector; an IVF list needs one small matrix product per inserted batch, and when the store rewrites a
generation (compaction) it writes the rows *sorted by list*, so each list is a contiguous slice of the
vector file the exact path already maps. A query scores its nearest lists' slices (float32, BLAS) plus the
not-yet-sorted tail rows of those lists, then the exact re-rank of `search.py` takes over. Nothing is stored
twice; the structure is a few centroids and offsets (`ann.<gen>.npz`) plus one int32 per tail row
(`lists.<gen>.i32`), all rebuildable from the vectors, so SQLite stays the only source of truth.

Layout of a generation with an ANN: rows `0..clustered-1` are sorted by list (`offsets[l]..offsets[l+1]`
is list `l`), rows `clustered..` arrived later in any order and carry their list in `lists.<gen>.i32`.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ANN_MIN_ROWS = 20_000  # below this an exact scan is as fast as any index
TRAIN_ITERATIONS = 10
TRAIN_SAMPLE_PER_LIST = 32
ASSIGN_BLOCK = 4096
_FORMAT = 1


def lists_for(rows: int) -> int:
    """Number of lists for `rows` vectors: about 2 sqrt(rows) (632 at 100k, 2,000 at 1M), so a probe of a
    dozen lists reads 0.6-2 % of the rows and scoring the centroids stays a small part of a query."""
    return int(min(4096, max(16, round(2 * math.sqrt(rows)))))


@dataclass(frozen=True)
class Ivf:
    centroids: np.ndarray  # (lists, dimension) float32
    offsets: np.ndarray  # (lists + 1,) int64 over the clustered prefix
    trained_rows: int  # live rows when the centroids were trained (retrain when the index has grown 4x)
    cosine: bool
    _sqnorms: np.ndarray = field(init=False, repr=False, compare=False)

    @property
    def clustered(self) -> int:
        return int(self.offsets[-1])

    @property
    def lists(self) -> int:
        return len(self.centroids)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sqnorms", np.einsum("ij,ij->i", self.centroids, self.centroids))

    def centroid_scores(self, query: np.ndarray) -> np.ndarray:
        """Higher = nearer, in the same sense as the row scores (cosine: direction; euclidean: distance)."""
        dots = np.dot(self.centroids, query)  # single-threaded BLAS, GIL released: search.single_threaded_blas
        return dots if self.cosine else 2 * dots - self._sqnorms

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """The list of each vector (int32)."""
        out = np.empty(len(vectors), dtype=np.int32)
        bias = None if self.cosine else self._sqnorms
        for start in range(0, len(vectors), ASSIGN_BLOCK):
            block = np.asarray(vectors[start : start + ASSIGN_BLOCK], dtype=np.float32)
            scores = block @ self.centroids.T
            if bias is not None:
                scores = 2 * scores - bias
            out[start : start + len(block)] = np.argmax(scores, axis=1)
        return out

    def save(self, path: Path, tag: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        header = {"format": _FORMAT, "tag": tag, "trained_rows": self.trained_rows, "cosine": self.cosine}
        with open(tmp, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), centroids=self.centroids, offsets=self.offsets)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, tag: dict[str, Any]) -> Ivf | None:
        """The saved structure for this tag, or None (missing, damaged, or another index's)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("format") != _FORMAT or header.get("tag") != tag:
                    return None
                centroids = np.asarray(z["centroids"], dtype=np.float32)
                offsets = np.asarray(z["offsets"], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
            return None
        if centroids.ndim != 2 or offsets.shape != (len(centroids) + 1,) or (np.diff(offsets) < 0).any():
            return None
        return cls(centroids, offsets, int(header["trained_rows"]), bool(header["cosine"]))


def train(vectors: np.ndarray, rows: np.ndarray, cosine: bool, seed: int = 0) -> np.ndarray:
    """k-means centroids for the live `rows` of `vectors` (spherical k-means for cosine), trained on a
    sample of about 32 rows per list. Deterministic for a seed."""
    lists = lists_for(len(rows))
    rng = np.random.default_rng(seed)
    size = min(len(rows), lists * TRAIN_SAMPLE_PER_LIST)
    sample = np.asarray(vectors[np.sort(rng.choice(rows, size, replace=False))], dtype=np.float32)
    if cosine:
        sample = sample / np.linalg.norm(sample, axis=1, keepdims=True)
    centroids = sample[rng.choice(size, lists, replace=False)].copy()
    for _ in range(TRAIN_ITERATIONS):
        ivf = Ivf(centroids, np.zeros(lists + 1, np.int64), 0, cosine)
        nearest = ivf.assign(sample)
        counts = np.bincount(nearest, minlength=lists)
        sums = np.zeros_like(centroids)
        by_list = np.argsort(nearest, kind="stable")  # reduceat over sorted rows: np.add.at is 50x slower
        used = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[used]
        sums[used] = np.add.reduceat(sample[by_list], starts, axis=0)
        empty = counts == 0
        if empty.any():  # re-seed empty lists on random sample points
            sums[empty] = sample[rng.choice(size, int(empty.sum()), replace=False)]
            counts[empty] = 1
        centroids = (sums / counts[:, None]).astype(np.float32)
        if cosine:
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids


def sorted_layout(assigned: np.ndarray, lists: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows with lists `assigned`: the order that sorts them by list (stable) and the list offsets."""
    order = np.argsort(assigned, kind="stable")
    offsets = np.searchsorted(assigned[order], np.arange(lists + 1)).astype(np.int64)
    return order, offsets
