"""The files of one index generation: the append-only float32 vector file and its per-row side files.

Row `r` of generation `g` lives at byte `r * dimension * 4` of `vectors.<g>.f32`. Only the writer, holding
SQLite's write lock, appends (after truncating a crashed writer's uncommitted tail) and syncs before the
rows are committed, so a committed row is always on disk first.

Side files (`norms.<g>.f32`, `lists.<g>.i32`) hold one value per row that a reader could recompute from
the vectors but should not have to on open (squared norms, the ANN list of each row). They are caches:
written after the commit without a sync, read only up to their whole-value length, and recomputed in memory
for rows they do not cover. A wrong value there can cost recall, never correctness: a result row is always
re-scored from the vector file and checked against the live and filter masks.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from nova_mcp_server.durable import sync_file, write_at
from nova_mcp_server.stores.local.pools import ForkSafePool

O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def vector_path(directory: Path, gen: int) -> Path:
    return directory / f"vectors.{gen}.f32"


def columns_path(directory: Path, gen: int) -> Path:
    """The metadata column cache of a generation (rows never change within one)."""
    return directory / f"columns.{gen}.npz"


def norms_path(directory: Path, gen: int) -> Path:
    return directory / f"norms.{gen}.f32"


def lists_path(directory: Path, gen: int) -> Path:
    return directory / f"lists.{gen}.i32"


def ann_path(directory: Path, gen: int) -> Path:
    return directory / f"ann.{gen}.npz"


GENERATION_FILES = ("vectors.*.f32", "columns.*.npz", "norms.*.f32", "lists.*.i32", "ann.*.npz")


def remove_stale(directory: Path, gen: int) -> None:
    """Delete every generation file but `gen`'s (writer only). A file another process still maps stays
    valid on POSIX; on Windows it cannot be removed yet and is retried at the next writer's start."""
    for pattern in GENERATION_FILES:
        for path in directory.glob(pattern):
            if path.name.split(".")[1] != str(gen):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)


def map_rows(path: Path, rows: int, dimension: int) -> np.ndarray:
    """Rows 0..rows-1 of a vector file, memory-mapped read-only (never past `rows`: those may be a writer's
    uncommitted tail)."""
    if rows == 0:
        return np.empty((0, dimension), dtype=np.float32)
    return np.asarray(np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dimension)))


_SYNCER = ForkSafePool(2, "nova-store-sync")


def _sync(fd: int) -> None:
    sync_file(fd)  # looked up at call time (tests replace it)


class VectorWriter:
    """The writer's descriptor on the current generation's vector file."""

    def __init__(self, directory: Path, dimension: int) -> None:
        self.dir = directory
        self.row_bytes = dimension * 4
        self.fd: int | None = None
        self.gen = -1

    def _open(self, gen: int) -> int:
        if self.fd is None or self.gen != gen:
            self.close()
            self.fd = os.open(vector_path(self.dir, gen), os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
            self.gen = gen
        return self.fd

    def append(self, gen: int, committed_rows: int, matrix: np.ndarray) -> None:
        """Under the write lock: drop any uncommitted tail, write `matrix` after the committed rows, sync."""
        self.append_started(gen, committed_rows, matrix).result()

    def append_started(self, gen: int, committed_rows: int, matrix: np.ndarray) -> Future[None]:
        """`append` whose sync runs on a helper thread (fsync releases the GIL): the caller does its SQLite
        work meanwhile and must wait on the future -- which re-raises a failed sync -- before committing."""
        fd = self._open(gen)
        committed = committed_rows * self.row_bytes
        if os.fstat(fd).st_size != committed:
            os.ftruncate(fd, committed)
        write_at(fd, np.ascontiguousarray(matrix, dtype=np.float32).data, committed)
        return _SYNCER.get().submit(_sync, fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def write_generation(path: Path, source: np.ndarray, order: np.ndarray) -> None:
    """A new generation's vector file: `source[order]`, in blocks, synced (the caller then syncs the directory
    and commits the generation in SQLite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o644)
    try:
        offset = 0
        for start in range(0, len(order), 8192):
            block = np.ascontiguousarray(source[order[start : start + 8192]], dtype=np.float32)
            write_at(fd, block.data, offset)
            offset += block.nbytes
        sync_file(fd)
    finally:
        os.close(fd)


class RowCache:
    """A side file of one `dtype` value per row, starting at row `first` of the generation."""

    def __init__(self, path: Path, dtype: type, first: int = 0) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.first = first

    def read(self, stop: int) -> np.ndarray:
        """Values of rows first..stop-1 as far as the file holds them (possibly fewer)."""
        count = stop - self.first
        if count <= 0:
            return np.empty(0, self.dtype)
        try:
            with open(self.path, "rb") as f:
                return np.fromfile(f, dtype=self.dtype, count=count)
        except (FileNotFoundError, ValueError):
            return np.empty(0, self.dtype)

    def write(self, start: int, values: np.ndarray) -> None:
        """Store values for rows start.. (best effort, no sync: a cache). Only the writer calls this, and
        only where the file already ends at `start` (or before it: the gap is left to be recomputed)."""
        offset = (start - self.first) * self.dtype.itemsize
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            size -= size % self.dtype.itemsize
            if size < offset:
                return
            write_at(fd, np.ascontiguousarray(values, dtype=self.dtype).data, offset)
        except OSError:
            pass
        finally:
            os.close(fd)

    def holds(self) -> int:
        """How many rows the file covers."""
        try:
            return self.path.stat().st_size // self.dtype.itemsize
        except OSError:
            return 0
