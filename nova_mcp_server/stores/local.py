"""The embedded default store: S3 Vectors semantics on numpy + SQLite, exact search, crash-safe.

Layout, one directory per index under `root`:

- `index.json`     the immutable spec (dimension, metric, non-filterable keys, embedder stamp), written once
                   through a temporary directory that is renamed into place, so an index exists completely
                   or not at all.
- `index.sqlite`   WAL-mode SQLite, the source of truth: `vectors(row, key, meta, dead)` and `state(gen, rows,
                   dead, version)`. A row is visible only once its transaction commits; overwrites and deletes
                   set `dead` (tombstones), they never rewrite a row.
- `vectors.<gen>.f32`  append-only float32 rows, row `r` at byte `r * dimension * 4`.

Writes (one writer at a time, `BEGIN IMMEDIATE`): append the batch past the committed row count, fsync,
then insert the rows and bump `state` in one transaction. A crash before commit leaves only an uncommitted
tail, which the next writer -- and only a writer, under the lock -- truncates. Readers (any number of
processes) read `state` and the rows they need in one read transaction, map exactly `state.rows` rows and
never look past them.

`compact` writes the live rows to `vectors.<gen+1>.f32` and commits the renumbered table with the new
generation in one transaction; the old file is deleted after the commit (readers that still map it keep a
valid mapping). The generation number rather than `os.replace` on a fixed name is deliberate: a rename and a
SQLite commit cannot be made atomic together, a generation committed in SQLite can.

Search is exact: one float32 matrix-vector product over the mapped file (norms cached per row), a boolean
mask for tombstones and filters (`filters.MetadataColumns`, built lazily and grown as rows are appended),
`argpartition` for the top candidates, then float64 distances for those. A filtered query returns k hits
whenever k vectors match.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from nova_mcp_server.errors import IndexNotFound, InvalidInput
from nova_mcp_server.stores.base import (
    MAX_DELETE,
    MAX_GET,
    IndexInfo,
    IndexSpec,
    QueryHit,
    VectorPage,
    VectorRecord,
    check_index_name,
    check_index_spec,
    check_keys,
    check_max_results,
    check_metadata_json,
    check_put_batch,
    check_top_k,
    check_vector,
    check_vectors,
    index_exists_error,
)
from nova_mcp_server.stores.filters import CompiledFilter, MetadataColumns, validate_filter

FORMAT = 1
SPEC_FILE = "index.json"
DB_FILE = "index.sqlite"
RERANK_EXTRA = 32  # float32 candidates re-scored in float64 beyond top_k
SAVE_COLUMNS_MIN = 20_000  # rows parsed since the cache file was written before it is rewritten
GATHER_BELOW = 0.15  # below this match fraction, gather the matching rows instead of scoring all

SCHEMA = """
CREATE TABLE vectors (row INTEGER PRIMARY KEY, key TEXT NOT NULL, meta TEXT, dead INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX vectors_live_key ON vectors(key) WHERE dead = 0;
CREATE INDEX vectors_dead ON vectors(dead) WHERE dead = 1;
CREATE TABLE state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO state VALUES ('gen', 0), ('rows', 0), ('dead', 0), ('version', 0);
"""


def _vector_file(directory: Path, gen: int) -> Path:
    return directory / f"vectors.{gen}.f32"


def _columns_file(directory: Path, gen: int) -> Path:
    """The metadata column cache of a generation: a pure cache (rows never change within a generation),
    rebuilt from SQLite when missing, damaged or behind."""
    return directory / f"columns.{gen}.npz"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_key}).encode()).decode()


def _decode_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
        if isinstance(after, str):
            return after
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    raise InvalidInput("next_token is not a token this store issued.", "Pass the next_token of the previous page.")


class _Index:
    """One open index in this process: a SQLite connection plus the reader cache, guarded by a lock."""

    def __init__(self, directory: Path, info: IndexInfo) -> None:
        self.dir = directory
        self.info = info
        self.ino = os.stat(directory).st_ino
        self.lock = threading.RLock()
        self.db = sqlite3.connect(directory / DB_FILE, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA synchronous=FULL")
        self.row_bytes = info.dimension * 4
        self.cosine = info.metric == "cosine"
        self.nonfilterable = frozenset(info.non_filterable_keys)
        self.cleaned = False
        self.cache_tag: dict[str, Any] = {"created": info.created_at}
        self._reset(-1)
        self._writer_fd: int | None = None
        self._writer_gen = -1

    # -- cache ---------------------------------------------------------------------------------------------

    def _reset(self, gen: int) -> None:
        self.gen = gen
        self.cache_tag = {**self.cache_tag, "gen": gen}
        self.rows = 0
        self.version = -1
        self.matrix = np.empty((0, self.info.dimension), dtype=np.float32)
        self.sqnorms = np.empty(0, dtype=np.float32)
        self.live = np.empty(0, dtype=bool)
        self.columns = MetadataColumns(self.info.non_filterable_keys)
        self.columns_loaded = False  # tried the cache file of this generation
        self.columns_saved = 0  # rows the cache file holds (as far as this process knows)

    def close(self, *, save: bool = True) -> None:
        if save:
            self.save_columns()
        if self._writer_fd is not None:
            os.close(self._writer_fd)
            self._writer_fd = None
        self.db.close()

    def state(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, value FROM state").fetchall())

    @contextmanager
    def read(self) -> Iterator[None]:
        """A consistent snapshot: state, mapped rows and SQL lookups all from one read transaction."""
        for attempt in range(3):
            self.db.execute("BEGIN")
            try:
                self.refresh()
                break
            except FileNotFoundError:  # a compaction removed the generation our snapshot names: retry
                self.db.execute("ROLLBACK")
                if attempt == 2:
                    raise
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        try:
            yield
        finally:
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def refresh(self) -> None:
        st = self.state()
        gen, rows, version = st["gen"], st["rows"], st["version"]
        if gen != self.gen:
            self._reset(gen)
        if rows != self.rows:
            if rows < self.rows:  # cannot happen within a generation; be safe
                self._reset(gen)
            old = self.rows
            if rows:
                mapped = np.memmap(
                    _vector_file(self.dir, gen), dtype=np.float32, mode="r", shape=(rows, self.info.dimension)
                )
                self.matrix = np.asarray(mapped)
            new = self.matrix[old:rows]
            self.sqnorms = np.concatenate([self.sqnorms, np.einsum("ij,ij->i", new, new)])
            self.rows = rows
        if version != self.version:
            live = np.ones(rows, dtype=bool)
            dead = np.fromiter((r for (r,) in self.db.execute("SELECT row FROM vectors WHERE dead = 1")), np.int64)
            live[dead[dead < rows]] = False  # clamp to what we mapped
            self.live = live
            self.version = version

    def filter_mask(self, compiled: CompiledFilter) -> np.ndarray:
        if not self.columns_loaded:
            self.columns_loaded = True
            cached = MetadataColumns.load(_columns_file(self.dir, self.gen), self.cache_tag, self.nonfilterable)
            if cached is not None and self.columns.n < cached.n <= self.rows:
                self.columns, self.columns_saved = cached, cached.n
        if self.columns.n < self.rows:
            cur = self.db.execute(
                "SELECT meta FROM vectors WHERE row >= ? AND row < ? ORDER BY row", (self.columns.n, self.rows)
            )
            self.columns.extend(json.loads(m) if m else None for (m,) in cur)
            if self.columns.n - self.columns_saved >= max(SAVE_COLUMNS_MIN, self.columns.n // 4):
                self.save_columns()
        mask = self.columns.mask(compiled)
        return mask if len(mask) == self.rows else mask[: self.rows]

    def extend_columns(self, gen: int, first: int, metadatas: Sequence[dict[str, Any] | None]) -> None:
        """After committing rows `first..` of `gen`: when the cache holds exactly the rows before them, add
        these from the checked metadata in hand instead of re-reading them later. A new generation's
        cache starts here (from row 0), so it never has to be built from SQLite after a bulk ingest."""
        if first == 0 and self.gen != gen:
            self._reset(gen)  # what the next read would do; this handle had not mapped `gen` yet
        if self.gen == gen and self.columns.n == first:
            if first == 0:
                self.columns_loaded = True  # nothing earlier to load
            self.columns.extend(metadatas)

    def save_columns(self) -> None:
        """Persist the column cache when it holds rows the file does not (best effort: it is a cache)."""
        if self.gen < 0 or self.columns.n <= self.columns_saved:
            return
        try:
            self.columns.save(_columns_file(self.dir, self.gen), self.cache_tag)
            self.columns_saved = self.columns.n
        except OSError:
            pass

    # -- writer --------------------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[dict[str, int]]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            st = self.state()
            if not self.cleaned:
                self._remove_stale_files(st["gen"])
                self.cleaned = True
            yield st
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _remove_stale_files(self, gen: int) -> None:
        for path in self.dir.glob("vectors.*.f32"):
            if path != _vector_file(self.dir, gen):
                path.unlink(missing_ok=True)
        for path in self.dir.glob("columns.*.npz"):
            if path != _columns_file(self.dir, gen):
                path.unlink(missing_ok=True)

    def writer_fd(self, gen: int) -> int:
        if self._writer_gen != gen or self._writer_fd is None:
            if self._writer_fd is not None:
                os.close(self._writer_fd)
            self._writer_fd = os.open(_vector_file(self.dir, gen), os.O_RDWR | os.O_CREAT, 0o644)
            self._writer_gen = gen
        return self._writer_fd

    def append(self, st: dict[str, int], matrix: np.ndarray) -> int:
        """Under the write lock: drop any uncommitted tail, append `matrix`, fsync; return its first row."""
        fd = self.writer_fd(st["gen"])
        committed = st["rows"] * self.row_bytes
        if os.fstat(fd).st_size != committed:
            os.ftruncate(fd, committed)
        data = np.ascontiguousarray(matrix, dtype=np.float32).tobytes()
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], committed + written)
        os.fdatasync(fd)
        return st["rows"]


class LocalVectorStore:
    """A directory of indexes with S3 Vectors semantics. Safe for many reader processes and one writer."""

    backend = "local"

    def __init__(self, root: Path, *, compact_min_dead: int = 1000, compact_ratio: float = 0.5) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.compact_min_dead = compact_min_dead
        self.compact_ratio = compact_ratio
        self._open: dict[str, _Index] = {}
        self._lock = threading.Lock()

    # ---- indexes ----------------------------------------------------------------------------------------

    def _read_info(self, directory: Path) -> IndexInfo:
        raw = json.loads((directory / SPEC_FILE).read_text())
        return IndexInfo.model_validate({k: v for k, v in raw.items() if k != "format"})

    def _index(self, name: str) -> _Index:
        check_index_name(name)
        directory = self.root / name
        try:
            (directory / SPEC_FILE).stat()
            ino: int | None = directory.stat().st_ino
        except FileNotFoundError:
            ino = None
        with self._lock:
            handle = self._open.get(name)
            if handle is not None and handle.ino != ino:  # deleted (and maybe recreated) elsewhere
                self._open.pop(name).close(save=False)
                handle = None
            if ino is None:
                raise IndexNotFound(name)
            if handle is None:
                handle = self._open[name] = _Index(directory, self._read_info(directory))
            return handle

    def create_index(self, spec: IndexSpec) -> IndexInfo:
        check_index_spec(spec)
        final = self.root / spec.name
        if (final / SPEC_FILE).exists():
            raise index_exists_error(spec.name)
        info = IndexInfo(**spec.model_dump(), vector_count=0, created_at=time.time())
        tmp = self.root / f".tmp-{spec.name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            db = sqlite3.connect(tmp / DB_FILE, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.close()
            _vector_file(tmp, 0).touch()
            with open(tmp / SPEC_FILE, "w") as f:
                json.dump({"format": FORMAT, **info.model_dump(exclude={"vector_count"})}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            if final.exists() and not (final / SPEC_FILE).exists():  # leftover of a crashed delete
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                raise index_exists_error(spec.name) from exc
            _fsync_dir(self.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return info

    def get_index(self, name: str) -> IndexInfo:
        index = self._index(name)
        with index.lock:
            st = index.state()
        return index.info.model_copy(update={"vector_count": st["rows"] - st["dead"]})

    def list_indexes(self) -> list[IndexInfo]:
        infos = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not (entry / SPEC_FILE).exists():
                continue
            try:
                infos.append(self.get_index(entry.name))
            except (IndexNotFound, InvalidInput):
                continue
        return infos

    def delete_index(self, name: str) -> None:
        index = self._index(name)
        with self._lock:
            self._open.pop(name, None)
        with index.lock:
            index.close(save=False)
            trash = self.root / f".trash-{name}-{uuid.uuid4().hex}"
            try:
                os.rename(index.dir, trash)
            except FileNotFoundError as exc:
                raise IndexNotFound(name) from exc
            _fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    # ---- vectors ----------------------------------------------------------------------------------------

    def put_vectors(self, index: str, vectors: Sequence[VectorRecord]) -> None:
        handle = self._index(index)
        info = handle.info
        check_put_batch(vectors)
        matrix = check_vectors(vectors, info.dimension, info.metric)
        checked = [check_metadata_json(v.metadata, info.non_filterable_keys, key=v.key) for v in vectors]
        encoded = [text for _, text in checked]
        with handle.lock:
            with handle.write() as st:
                first = handle.append(st, matrix)
                keys = [(v.key,) for v in vectors]
                cur = handle.db.executemany("UPDATE vectors SET dead = 1 WHERE key = ? AND dead = 0", keys)
                replaced = max(cur.rowcount, 0)
                handle.db.executemany(
                    "INSERT INTO vectors(row, key, meta) VALUES (?, ?, ?)",
                    [(first + i, v.key, m) for i, (v, m) in enumerate(zip(vectors, encoded, strict=True))],
                )
                st["rows"] += len(vectors)
                st["dead"] += replaced
                self._save_state(handle, st)
            handle.extend_columns(st["gen"], first, [clean for clean, _ in checked])  # after the commit
            self._maybe_compact(handle, st)

    def delete_vectors(self, index: str, keys: Sequence[str]) -> None:
        handle = self._index(index)
        unique = check_keys("delete_vectors", keys, MAX_DELETE)
        with handle.lock:
            with handle.write() as st:
                cur = handle.db.executemany(
                    "UPDATE vectors SET dead = 1 WHERE key = ? AND dead = 0", [(k,) for k in unique]
                )
                if cur.rowcount <= 0:
                    return
                st["dead"] += cur.rowcount
                self._save_state(handle, st)
            self._maybe_compact(handle, st)

    @staticmethod
    def _save_state(handle: _Index, st: dict[str, int]) -> None:
        st["version"] += 1
        handle.db.executemany("UPDATE state SET value = ? WHERE name = ?", [(v, k) for k, v in st.items()])

    def _maybe_compact(self, handle: _Index, st: dict[str, int]) -> None:
        if st["dead"] >= self.compact_min_dead and st["dead"] > self.compact_ratio * st["rows"]:
            self._compact(handle)

    def _record(self, handle: _Index, row: int, key: str, meta: str | None, data: bool, metadata: bool) -> VectorRecord:
        return VectorRecord(
            key=key,
            data=handle.matrix[row].tolist() if data else None,
            metadata=(json.loads(meta) if meta else {}) if metadata else None,
        )

    def get_vectors(
        self, index: str, keys: Sequence[str], *, return_data: bool = False, return_metadata: bool = True
    ) -> list[VectorRecord]:
        handle = self._index(index)
        unique = check_keys("get_vectors", keys, MAX_GET)
        with handle.lock, handle.read():
            marks = ",".join("?" * len(unique))
            found = {
                key: (row, meta)
                for row, key, meta in handle.db.execute(
                    f"SELECT row, key, meta FROM vectors WHERE dead = 0 AND key IN ({marks})", unique
                )
                if row < handle.rows
            }
            return [
                self._record(handle, found[k][0], k, found[k][1], return_data, return_metadata)
                for k in unique
                if k in found
            ]

    def list_vectors(
        self,
        index: str,
        *,
        max_results: int = 500,
        next_token: str | None = None,
        return_data: bool = False,
        return_metadata: bool = False,
    ) -> VectorPage:
        handle = self._index(index)
        check_max_results(max_results)
        after = _decode_token(next_token) if next_token is not None else None
        with handle.lock, handle.read():
            rows = handle.db.execute(
                "SELECT row, key, meta FROM vectors WHERE dead = 0 AND key > ? ORDER BY key LIMIT ?",
                (after or "", max_results + 1),  # keys are non-empty, so `key > ''` lists all
            ).fetchall()
            page = [self._record(handle, r, k, m, return_data, return_metadata) for r, k, m in rows[:max_results]]
        token = _encode_token(page[-1].key) if len(rows) > max_results else None
        return VectorPage(vectors=page, next_token=token)

    def query_vectors(
        self,
        index: str,
        vector: Sequence[float],
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        return_metadata: bool = True,
        return_distance: bool = True,
    ) -> list[QueryHit]:
        handle = self._index(index)
        info = handle.info
        check_top_k(top_k)
        query = check_vector(vector, info.dimension, info.metric)
        compiled = validate_filter(filter, info.non_filterable_keys)
        with handle.lock, handle.read():
            rows, distances = self._search(handle, query, top_k, compiled)
            if not len(rows):
                return []
            marks = ",".join("?" * len(rows))
            found = {
                row: (key, meta)
                for row, key, meta in handle.db.execute(
                    f"SELECT row, key, meta FROM vectors WHERE row IN ({marks})", [int(r) for r in rows]
                )
            }
        return [
            QueryHit(
                key=found[int(r)][0],
                distance=float(d) if return_distance else None,
                metadata=(json.loads(found[int(r)][1]) if found[int(r)][1] else {}) if return_metadata else None,
            )
            for r, d in zip(rows, distances, strict=True)
        ]

    @staticmethod
    def _search(
        handle: _Index, query: np.ndarray, top_k: int, compiled: CompiledFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        n = handle.rows
        if n == 0:
            return np.empty(0, np.int64), np.empty(0)
        mask = handle.live
        if compiled.root is not None:
            mask = mask & handle.filter_mask(compiled)
        count = int(np.count_nonzero(mask))
        if count == 0:
            return np.empty(0, np.int64), np.empty(0)
        matrix, sqnorms = handle.matrix, handle.sqnorms
        if count < GATHER_BELOW * n:
            candidates = np.flatnonzero(mask)
            dots = matrix[candidates] @ query
            norms = sqnorms[candidates]
        else:
            candidates = None
            dots = matrix @ query
            norms = sqnorms
        # Higher score = nearer. cosine: x.q/|x| (|q| is constant); euclidean: 2 x.q - |x|^2.
        scores = dots / np.sqrt(norms) if handle.cosine else 2 * dots - norms
        if count < len(scores):
            scores[~mask] = -np.inf
        m = min(count, top_k + RERANK_EXTRA)
        best = np.argpartition(-scores, m - 1)[:m] if m < len(scores) else np.arange(len(scores))
        best = best[np.isfinite(scores[best])]
        rows = candidates[best] if candidates is not None else best
        exact = handle.matrix[rows].astype(np.float64)
        q = query.astype(np.float64)
        if handle.cosine:
            distances = 1.0 - (exact @ q) / (np.linalg.norm(exact, axis=1) * np.linalg.norm(q))
        else:
            distances = np.linalg.norm(exact - q, axis=1)
        order = np.lexsort((rows, distances))[:top_k]
        return rows[order], distances[order]

    # ---- maintenance ------------------------------------------------------------------------------------

    def compact(self, index: str) -> int:
        """Rewrite the live rows into a new generation; returns how many dead rows were dropped."""
        handle = self._index(index)
        with handle.lock:
            return self._compact(handle)

    def _compact(self, handle: _Index) -> int:
        dim = handle.info.dimension
        with handle.write() as st:
            old_gen, old_rows = st["gen"], st["rows"]
            if st["dead"] == 0:
                return 0
            live = np.fromiter(
                (r for (r,) in handle.db.execute("SELECT row FROM vectors WHERE dead = 0 ORDER BY row")), np.int64
            )
            new_gen = old_gen + 1
            path = _vector_file(handle.dir, new_gen)
            source = (
                np.memmap(_vector_file(handle.dir, old_gen), dtype=np.float32, mode="r", shape=(old_rows, dim))
                if old_rows
                else np.empty((0, dim), np.float32)
            )
            with open(path, "wb") as f:
                for start in range(0, len(live), 8192):
                    f.write(np.ascontiguousarray(source[live[start : start + 8192]]).tobytes())
                f.flush()
                os.fsync(f.fileno())
            del source
            _fsync_dir(handle.dir)
            db = handle.db
            db.execute(
                "CREATE TABLE vectors_new (row INTEGER PRIMARY KEY, key TEXT NOT NULL, meta TEXT, dead INTEGER NOT NULL DEFAULT 0)"
            )
            db.execute(
                "INSERT INTO vectors_new(row, key, meta) "
                "SELECT ROW_NUMBER() OVER (ORDER BY row) - 1, key, meta FROM vectors WHERE dead = 0 ORDER BY row"
            )
            db.execute("DROP TABLE vectors")
            db.execute("ALTER TABLE vectors_new RENAME TO vectors")
            db.execute("CREATE UNIQUE INDEX vectors_live_key ON vectors(key) WHERE dead = 0")
            db.execute("CREATE INDEX vectors_dead ON vectors(dead) WHERE dead = 1")
            dropped = st["dead"]
            st.update(gen=new_gen, rows=len(live), dead=0)
            self._save_state(handle, st)
        handle.cleaned = False  # the next write (or now) removes the old generation
        _vector_file(handle.dir, old_gen).unlink(missing_ok=True)
        _columns_file(handle.dir, old_gen).unlink(missing_ok=True)
        return dropped

    def integrity_check(self, index: str) -> list[str]:
        """Problems found in one index (empty when it is sound): SQLite, state, vector file, metadata."""
        handle = self._index(index)
        with handle.lock:
            handle.db.execute("BEGIN")
            try:
                return self._check(handle)
            finally:
                handle.db.execute("COMMIT")

    @staticmethod
    def _check(handle: _Index) -> list[str]:
        problems: list[str] = []
        result = [r for (r,) in handle.db.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            problems.append(f"SQLite integrity_check: {'; '.join(result)}")
        st = handle.state()
        count, dead, lo, hi = handle.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(dead), 0), MIN(row), MAX(row) FROM vectors"
        ).fetchone()
        if count != st["rows"] or (count and (lo != 0 or hi != count - 1)):
            problems.append(f"state says {st['rows']} rows but the table holds {count} (rows {lo}..{hi}).")
        if dead != st["dead"]:
            problems.append(f"state says {st['dead']} dead rows but the table marks {dead}.")
        path = _vector_file(handle.dir, st["gen"])
        size = path.stat().st_size if path.exists() else -1
        if size < st["rows"] * handle.row_bytes:
            problems.append(f"{path.name} holds {size} bytes, fewer than {st['rows']} committed rows need.")
            return problems
        handle.refresh()
        for start in range(0, handle.rows, 16384):
            block = handle.matrix[start : start + 16384][handle.live[start : start + 16384]]
            if not np.isfinite(block).all():
                problems.append(f"live vectors in rows {start}.. contain NaN or infinity.")
            if handle.cosine and len(block) and not block.any(axis=1).all():
                problems.append(f"live vectors in rows {start}.. are all zeros under the cosine metric.")
        for row, key, meta in handle.db.execute("SELECT row, key, meta FROM vectors WHERE dead = 0"):
            try:
                if meta is not None and not isinstance(json.loads(meta), dict):
                    raise ValueError
            except ValueError:
                problems.append(f"row {row} ({key!r}) has unreadable metadata.")
        return problems

    def close(self) -> None:
        with self._lock:
            for handle in self._open.values():
                with handle.lock:
                    handle.close()
            self._open.clear()
