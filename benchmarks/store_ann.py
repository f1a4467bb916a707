"""Plain ANN library baselines for `benchmarks/store.py`, plus the concurrent-searchers measurement.

usearch and faiss HNSW hold only vectors: no metadata, no filters, no keys beyond integer labels, no crash
safety (a whole-file save). They answer the unfiltered row only (`FILTERS_SUPPORTED`), so that row compares
our IVF path with a bare ANN index like for like. Both live in the peers venv (`requirements-peers.txt`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 64


def _dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class UsearchAdapter:
    """usearch `Index` (HNSW, cosine, f32), saved with `save()` and reopened memory-mapped with `view()`."""

    name = "usearch-hnsw"
    FIDELITY = (
        f"vectors only, no filters (HNSW M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}, ef={HNSW_EF_SEARCH})"
    )
    FILTERS_SUPPORTED = {"none"}

    def create(self, root: Path, dim: int) -> None:
        from usearch.index import Index

        self.root, self.dim = root, dim
        self.index = Index(ndim=dim, metric="cos", dtype="f32", connectivity=HNSW_M, expansion_add=HNSW_EF_CONSTRUCTION)
        self.index.expansion_search = HNSW_EF_SEARCH
        self.keys: list[str] = []

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        labels = np.arange(len(self.keys), len(self.keys) + len(keys), dtype=np.uint64)
        self.index.add(labels, np.ascontiguousarray(vectors, np.float32))
        self.keys.extend(keys)

    def finish(self) -> None:
        self.index.save(str(self.root / "index.usearch"))

    def reopen(self) -> None:
        from usearch.index import Index

        self.index = Index.restore(str(self.root / "index.usearch"), view=True)
        self.index.expansion_search = HNSW_EF_SEARCH

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        matches = self.index.search(vector, k)
        return [self.keys[int(label)] for label in matches.keys]

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        del self.index


class FaissHnswAdapter:
    """faiss `IndexHNSWFlat` over normalised vectors with inner product (= cosine), `write_index` to a file."""

    name = "faiss-hnsw"
    FIDELITY = (
        f"vectors only, no filters (HNSW M={HNSW_M}, efConstruction={HNSW_EF_CONSTRUCTION}, efSearch={HNSW_EF_SEARCH})"
    )
    FILTERS_SUPPORTED = {"none"}

    def create(self, root: Path, dim: int) -> None:
        import faiss

        self.root = root
        self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.index.hnsw.efSearch = HNSW_EF_SEARCH
        self.keys: list[str] = []

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        v = np.ascontiguousarray(vectors, np.float32)
        self.index.add(v / np.linalg.norm(v, axis=1, keepdims=True))
        self.keys.extend(keys)

    def finish(self) -> None:
        import faiss

        faiss.write_index(self.index, str(self.root / "index.faiss"))

    def reopen(self) -> None:
        import faiss

        self.index = faiss.read_index(str(self.root / "index.faiss"))
        self.index.hnsw.efSearch = HNSW_EF_SEARCH

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        q = np.ascontiguousarray(vector[None, :], np.float32)
        _, labels = self.index.search(q / np.linalg.norm(q), k)
        return [self.keys[int(i)] for i in labels[0] if i >= 0]

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        del self.index


def machine_scaling(rounds: int = 2000) -> dict[str, float]:
    """What a second thread adds right now to GIL-free work of two kinds: cache-resident CPU work (sha256 of
    64 KB; ~2.0 when two cores are free, ~1.0 when other jobs hold one) and a memory stream (summing 128 MB
    per thread; below 2.0 when memory bandwidth, not cores, is the limit -- as for a scan). Measured beside
    the searchers, they bound the speedup the machine could give at that moment."""
    import hashlib
    import os as _os

    data = _os.urandom(1 << 16)
    arrays = np.ones((2, 32_000_000), np.float32)

    def rate(n_threads: int, fn: Callable[[int], Any], reps: int) -> float:
        def work(i: int) -> None:
            for _ in range(reps):
                fn(i)

        pool = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
        began = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return n_threads * reps / (time.perf_counter() - began)

    def digest(_: int) -> None:
        hashlib.sha256(data).digest()

    def stream(i: int) -> None:
        arrays[i].sum()

    return {
        "cpu_scaling_x2": rate(2, digest, rounds) / rate(1, digest, rounds),
        "memory_scaling_x2": rate(2, stream, 8) / rate(1, stream, 8),
    }


def concurrency(
    query: Callable[[np.ndarray, int, dict[str, Any] | None], list[str]],
    queries: np.ndarray,
    k: int,
    threads: int = 8,
    rounds: int = 3,
) -> dict[str, float]:
    """Queries per second with 1 searcher and with `threads` searchers on one index (each searcher runs all
    `queries` `rounds` times; the threads start together at a barrier). Unfiltered and a 50 % filter; plus
    `machine_scaling`, what a second thread gives plain GIL-free work at the same time (the ceiling)."""
    out: dict[str, float] = {"threads": threads, **machine_scaling()}
    for label, flt in (("none", None), ("modality=TEXT", {"modality": "TEXT"})):
        for n_threads in (1, threads):
            start = threading.Barrier(n_threads + 1)
            errors: list[BaseException] = []

            def work(
                flt: dict[str, Any] | None = flt,
                start: threading.Barrier = start,
                errors: list[BaseException] = errors,
            ) -> None:
                start.wait()
                try:
                    for _ in range(rounds):
                        for q in queries:
                            query(q, k, flt)
                except BaseException as exc:  # reported, not swallowed
                    errors.append(exc)

            pool = [threading.Thread(target=work) for _ in range(n_threads)]
            for t in pool:
                t.start()
            start.wait()
            began = time.perf_counter()
            for t in pool:
                t.join()
            elapsed = time.perf_counter() - began
            if errors:
                raise errors[0]
            out[f"{label} qps x{n_threads}"] = n_threads * rounds * len(queries) / elapsed
        out[f"{label} speedup"] = out[f"{label} qps x{threads}"] / out[f"{label} qps x1"]
    return out
