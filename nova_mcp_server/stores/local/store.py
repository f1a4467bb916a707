"""The embedded default store: S3 Vectors semantics on numpy + SQLite, crash-safe, exact or IVF search.

Layout, one directory per index under `root`:

- `index.json`     the immutable spec (dimension, metric, non-filterable keys, embedder stamp), written once
                   through a temporary directory that is renamed into place, so an index exists completely
                   or not at all.
- `index.sqlite`   WAL-mode SQLite, the source of truth: `vectors(row, key, meta, dead)` and `state(gen, rows,
                   dead, version)`. A row is visible only once its transaction commits; overwrites and deletes
                   set `dead` (tombstones), they never rewrite a row.
- `vectors.<gen>.f32` and its caches (`vectorfile.py`): append-only float32 rows; squared norms, the ANN
                   structure (`ann.py`) and the filter columns, all rebuildable from SQLite and the vectors.

Writes (one writer at a time, `BEGIN IMMEDIATE`): append the batch past the committed row count, sync, then
insert the rows and bump `state` in one transaction. A crash before the commit leaves only an uncommitted
tail, which the next writer -- and only a writer, under the lock -- truncates. Readers (any number of threads
and processes) work from a snapshot (`index.py`) and never look past its rows; the planner (`search.py`)
decides per query between an exact scan and an IVF probe, and re-ranks exactly. Compaction and ANN
(re)organisation are one rewrite into a new generation (`maintenance.py`).

Open indexes live in a small LRU (`max_open`, and closed after `idle_seconds` unused), so a server with
thousands of indexes holds a bounded number of files open.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson

from nova_mcp_server.durable import sync_dir, write_file
from nova_mcp_server.errors import IndexDamaged, IndexNotFound, InvalidInput
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
from nova_mcp_server.stores.filters import validate_filter
from nova_mcp_server.stores.local import keywords, maintenance
from nova_mcp_server.stores.local.ann import ANN_MIN_ROWS
from nova_mcp_server.stores.local.index import DB_FILE, Handle, View, connect, read_state
from nova_mcp_server.stores.local.search import NPROBE, cpu_cores, search, single_threaded_blas
from nova_mcp_server.stores.local.vectorfile import vector_path

log = logging.getLogger(__name__)
FORMAT = 1
SPEC_FILE = "index.json"
# Windows reserves these file names in every folder (with any extension), so an index folder named so could not
# be created, copied or opened there: refused on every system, so a data folder moves between them.
WINDOWS_DEVICE_NAMES = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
)
# Searches running at once in this process: one per core. More threads than cores fighting for the GIL cost
# more than they overlap (measured, 100k x 1024 on 2 cores: 2 searchers 1.85x one, 8 searchers 1.18x; 8
# searchers through 2 slots 1.79x); the rest wait in the semaphore, blocked in C, not contending. A slot
# covers the whole query (a slot around the scan alone measured no better than none), so a query that first
# loads a cold filter cache (once per index generation; ~0.2-0.7 s at 1M rows) holds its slot meanwhile.
SEARCH_SLOTS = threading.BoundedSemaphore(cpu_cores())
MAX_OPEN = 16  # open indexes kept (each holds a handful of file descriptors)
IDLE_SECONDS = 300.0

SCHEMA = """
CREATE TABLE vectors (row INTEGER PRIMARY KEY, key TEXT NOT NULL, meta TEXT, dead INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX vectors_live_key ON vectors(key) WHERE dead = 0;
CREATE INDEX vectors_dead ON vectors(dead) WHERE dead = 1;
CREATE TABLE state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO state VALUES ('gen', 0), ('rows', 0), ('dead', 0), ('version', 0);
"""


def parse_metadata(text: str) -> dict[str, Any]:
    """A row's stored metadata JSON (written by `metadata_json`): orjson, ~5x faster; the standard parser
    for what orjson refuses (integers beyond 64 bits, which the metadata check admits)."""
    try:
        return cast(dict[str, Any], orjson.loads(text))
    except orjson.JSONDecodeError:
        return cast(dict[str, Any], json.loads(text))


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


class LocalVectorStore:
    """A directory of indexes with S3 Vectors semantics. Safe for many reader threads and processes and one
    writer; `ann=False` keeps every query an exact scan, `auto_maintain=False` leaves compaction and ANN
    building to explicit `compact` / `optimize` calls (the benchmark times them apart)."""

    backend = "local"

    def __init__(
        self,
        root: Path,
        *,
        compact_min_dead: int = 1000,
        compact_ratio: float = 0.5,
        ann: bool = True,
        ann_min_rows: int = ANN_MIN_ROWS,
        auto_maintain: bool = True,
        nprobe: int = NPROBE,
        max_open: int = MAX_OPEN,
        idle_seconds: float = IDLE_SECONDS,
        keyword_fields: Sequence[str] = keywords.DEFAULT_FIELDS,
    ) -> None:
        self.root = Path(root)
        self.keyword_fields = tuple(keyword_fields)  # metadata holding a record's words, first present wins
        self.root.mkdir(parents=True, exist_ok=True)
        single_threaded_blas()
        self.policy = maintenance.Policy(
            ann=ann, ann_min_rows=ann_min_rows, compact_min_dead=compact_min_dead, compact_ratio=compact_ratio
        )
        self.auto_maintain = auto_maintain
        self.nprobe = nprobe
        self.max_open = max(1, max_open)
        self.idle_seconds = idle_seconds
        self._open: OrderedDict[str, Handle] = OrderedDict()
        self._lock = threading.Lock()

    # ---- open handles (a small LRU) ---------------------------------------------------------------------

    def _read_info(self, directory: Path) -> IndexInfo:
        try:
            raw = json.loads((directory / SPEC_FILE).read_text())
            return IndexInfo.model_validate({k: v for k, v in raw.items() if k != "format"})
        except (ValueError, AttributeError, TypeError) as exc:  # not JSON, not an object, not our spec
            raise IndexDamaged(directory.name, f"{SPEC_FILE} is not an index description") from exc

    @contextmanager
    def _use(self, name: str) -> Iterator[Handle]:
        """The open handle of index `name`, kept open while in use; least recently used idle ones close."""
        check_index_name(name)
        directory = self.root / name
        try:  # one stat per call: a deleted (or recreated) index has no (or another) spec file
            ino: int | None = (directory / SPEC_FILE).stat().st_ino
        except FileNotFoundError:
            ino = None
        to_close: list[Handle] = []
        with self._lock:
            handle = self._open.get(name)
            if handle is not None and handle.ino != ino:  # deleted (and maybe recreated) elsewhere
                self._open.pop(name)
                if handle.users == 0:
                    to_close.append(handle)
                handle = None
            if ino is None:
                self._close_all(to_close)
                raise IndexNotFound(name)
            if handle is None:
                handle = self._open[name] = Handle(directory, self._read_info(directory), ino)
            self._open.move_to_end(name)
            handle.users += 1
            to_close += self._evict()
        self._close_all(to_close)
        try:
            yield handle
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, busy, out of disk: not damage
                raise
            raise IndexDamaged(name, f"its database: {exc}") from exc
        finally:
            with self._lock:
                handle.users -= 1
                handle.last_used = time.monotonic()
                orphan = handle.users == 0 and self._open.get(name) is not handle
            if orphan:
                handle.close()

    def _evict(self) -> list[Handle]:
        """Idle handles beyond `max_open` or unused for `idle_seconds` (caller holds `_lock`)."""
        now = time.monotonic()
        out = []
        for name, handle in list(self._open.items()):
            if handle.users:
                continue
            if len(self._open) > self.max_open or now - handle.last_used > self.idle_seconds:
                out.append(self._open.pop(name))
        return out

    @staticmethod
    def _close_all(handles: list[Handle]) -> None:
        for handle in handles:
            with handle.write_lock:
                handle.close()

    def open_handles(self) -> int:
        """How many indexes this store holds open now (for tests and `doctor`)."""
        with self._lock:
            return len(self._open)

    # ---- indexes ----------------------------------------------------------------------------------------

    def create_index(self, spec: IndexSpec) -> IndexInfo:
        check_index_spec(spec)
        if spec.name.split(".")[0] in WINDOWS_DEVICE_NAMES:
            raise InvalidInput(
                f"Index name '{spec.name}' is a device name on Windows, where its folder cannot exist.",
                "Choose another name (for example 'con-docs').",
            )
        final = self.root / spec.name
        if (final / SPEC_FILE).exists():
            raise index_exists_error(spec.name)
        info = IndexInfo(**spec.model_dump(), vector_count=0, created_at=time.time())
        tmp = self.root / f".tmp-{spec.name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            db = sqlite3.connect(tmp / DB_FILE, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
            finally:
                db.close()
            vector_path(tmp, 0).touch()
            spec_text = json.dumps({"format": FORMAT, **info.model_dump(exclude={"vector_count"})}, indent=1)
            write_file(tmp / SPEC_FILE, spec_text.encode())
            sync_dir(tmp)
            if final.exists() and not (final / SPEC_FILE).exists():  # leftover of a crashed delete
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                raise index_exists_error(spec.name) from exc
            sync_dir(self.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return info

    def get_index(self, name: str) -> IndexInfo:
        with self._use(name) as handle, handle.snapshot() as (db, _):
            st = read_state(db)
        return handle.info.model_copy(update={"vector_count": st["rows"] - st["dead"]})

    def list_indexes(self) -> list[IndexInfo]:
        infos = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not (entry / SPEC_FILE).exists():
                continue
            try:
                infos.append(self.get_index(entry.name))
            except (IndexNotFound, InvalidInput):
                continue
            except IndexDamaged as exc:  # one broken index must not hide the others
                log.warning("%s", exc.text)
        return infos

    def delete_index(self, name: str) -> None:
        try:
            self._delete_index(name)
        except IndexDamaged:  # what cannot be read can still be removed: that is the way out
            self._delete_damaged(name)

    def _delete_damaged(self, name: str) -> None:
        with self._lock:
            handle = self._open.pop(name, None)
        if handle is not None:
            with handle.write_lock:
                handle.close(save=False)
        trash = self.root / f".trash-{name}-{uuid.uuid4().hex}"
        try:
            os.rename(self.root / name, trash)
        except FileNotFoundError as exc:
            raise IndexNotFound(name) from exc
        sync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    def _delete_index(self, name: str) -> None:
        with self._use(name) as handle:
            with self._lock:
                if self._open.get(name) is handle:
                    self._open.pop(name)
            with handle.write_lock:
                handle.close(save=False)
                trash = self.root / f".trash-{name}-{uuid.uuid4().hex}"
                try:
                    os.rename(handle.dir, trash)
                except FileNotFoundError as exc:
                    raise IndexNotFound(name) from exc
                sync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    # ---- vectors ----------------------------------------------------------------------------------------

    def put_vectors(self, index: str, vectors: Sequence[VectorRecord]) -> None:
        """Records' `data` may be float lists or float32 numpy rows (build them with `model_construct` to skip
        pydantic's per-float validation); everything is checked here either way."""
        with self._use(index) as handle:
            info = handle.info
            check_put_batch(vectors)
            matrix = check_vectors(vectors, info.dimension, info.metric)
            checked = [check_metadata_json(v.metadata, info.non_filterable_keys, key=v.key) for v in vectors]
            with handle.write_lock:
                with handle.write() as st:
                    first = st["rows"]
                    synced = handle.vectors.append_started(st["gen"], first, matrix)
                    try:
                        replaced = self._insert_rows(handle.writer, first, vectors, checked)
                    finally:
                        synced.result()  # the rows' vectors are on disk before the commit names them
                    st["rows"] += len(vectors)
                    st["dead"] += replaced
                    handle.save_state(st)
                # after the commit: caches only
                handle.extend_columns(st["gen"], first, [clean for clean, _ in checked])
                handle.after_append(st["gen"], first, matrix)
                self._maybe_maintain(handle, st)

    def _insert_rows(
        self,
        db: sqlite3.Connection,
        first: int,
        vectors: Sequence[VectorRecord],
        checked: Sequence[tuple[dict[str, Any] | None, str | None]],
    ) -> int:
        """Inside the write transaction: tombstone the keys' live rows, insert the new rows and their keyword
        rows; returns how many rows were replaced. One look-up for the whole batch, not one UPDATE per key
        (most keys of a batch are new)."""
        keys = [v.key for v in vectors]
        marks = ",".join("?" * len(keys))
        old = [r for (r,) in db.execute(f"SELECT row FROM vectors WHERE dead = 0 AND key IN ({marks})", keys)]
        if old:
            db.execute(f"UPDATE vectors SET dead = 1 WHERE row IN ({','.join('?' * len(old))})", old)
        db.executemany(
            "INSERT INTO vectors(row, key, meta) VALUES (?, ?, ?)",
            [(first + i, k, c[1]) for i, (k, c) in enumerate(zip(keys, checked, strict=True))],
        )
        keywords.write(db, [(k, c[0]) for k, c in zip(keys, checked, strict=True)], self.keyword_fields)
        return len(old)

    def delete_vectors(self, index: str, keys: Sequence[str]) -> None:
        unique = check_keys("delete_vectors", keys, MAX_DELETE)
        with self._use(index) as handle, handle.write_lock:
            with handle.write() as st:
                cur = handle.writer.executemany(
                    "UPDATE vectors SET dead = 1 WHERE key = ? AND dead = 0", [(k,) for k in unique]
                )
                if cur.rowcount <= 0:
                    return
                keywords.remove(handle.writer, unique)
                st["dead"] += cur.rowcount
                handle.save_state(st)
            self._maybe_maintain(handle, st)

    def _maybe_maintain(self, handle: Handle, st: dict[str, int]) -> None:
        if self.auto_maintain and maintenance.due(handle, st, self.policy):
            maintenance.rewrite(handle, self.policy)

    @staticmethod
    def _record(view: View, row: int, key: str, meta: str | None, data: bool, metadata: bool) -> VectorRecord:
        return VectorRecord(
            key=key,
            data=view.matrix[row].tolist() if data else None,
            metadata=(parse_metadata(meta) if meta else {}) if metadata else None,
        )

    def get_vectors(
        self, index: str, keys: Sequence[str], *, return_data: bool = False, return_metadata: bool = True
    ) -> list[VectorRecord]:
        unique = check_keys("get_vectors", keys, MAX_GET)
        with self._use(index) as handle, handle.snapshot() as (db, view):
            marks = ",".join("?" * len(unique))
            found = {
                key: (row, meta)
                for row, key, meta in db.execute(
                    f"SELECT row, key, meta FROM vectors WHERE dead = 0 AND key IN ({marks})", unique
                )
                if row < view.rows
            }
            return [
                self._record(view, found[k][0], k, found[k][1], return_data, return_metadata)
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
        check_max_results(max_results)
        after = _decode_token(next_token) if next_token is not None else None
        with self._use(index) as handle, handle.snapshot() as (db, view):
            rows = db.execute(
                "SELECT row, key, meta FROM vectors WHERE dead = 0 AND key > ? ORDER BY key LIMIT ?",
                (after or "", max_results + 1),  # keys are non-empty, so `key > ''` lists all
            ).fetchall()
            page = [self._record(view, r, k, m, return_data, return_metadata) for r, k, m in rows[:max_results]]
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
        check_top_k(top_k)
        with SEARCH_SLOTS, self._use(index) as handle, handle.snapshot() as (db, view):
            info = handle.info
            query = check_vector(vector, info.dimension, info.metric)
            compiled = validate_filter(filter, info.non_filterable_keys)
            mask, count = handle.matching(db, view, compiled)
            rows, distances = search(view, query, top_k, mask, count, self.nprobe)
            if not len(rows):
                return []
            marks = ",".join("?" * len(rows))
            found = {
                row: (key, meta)
                for row, key, meta in db.execute(
                    f"SELECT row, key, meta FROM vectors WHERE row IN ({marks})", [int(r) for r in rows]
                )
            }
        out = []
        for r, d in zip(rows.tolist(), distances.tolist(), strict=True):
            key, meta = found[r]
            out.append(
                QueryHit(  # validating is faster than `model_construct` here (5 vs 9 us)
                    key=key,
                    distance=d if return_distance else None,
                    metadata=(parse_metadata(meta) if meta else {}) if return_metadata else None,
                )
            )
        return out

    def keyword_query(
        self, index: str, text: str, *, top_k: int, filter: dict[str, Any] | None = None
    ) -> list[QueryHit]:
        """Hits by bm25 over the records' words (FTS5), best first, with the same filter language; distance None."""
        check_top_k(top_k)
        with self._use(index) as handle:
            with handle.snapshot() as (db, _):
                ready = keywords.exists(db)
            if not ready:  # an index from before the keyword table: build it once, under the write lock
                with handle.write_lock, handle.write():
                    keywords.backfill(handle.writer, self.keyword_fields)
            with handle.snapshot() as (db, view):
                compiled = validate_filter(filter, handle.info.non_filterable_keys)
                ranked = keywords.candidates(db, text, top_k)
                if not ranked:
                    return []
                marks = ",".join("?" * len(ranked))
                live = {
                    key: (row, meta)
                    for row, key, meta in db.execute(
                        f"SELECT row, key, meta FROM vectors WHERE dead = 0 AND key IN ({marks})",
                        [k for k, _ in ranked],
                    )
                    if row < view.rows
                }
                mask = handle.matching(db, view, compiled)[0] if compiled.root is not None else None
        hits = []
        for key, _score in ranked:
            if key in live and (mask is None or bool(mask[live[key][0]])):
                meta = live[key][1]
                hits.append(QueryHit(key=key, distance=None, metadata=parse_metadata(meta) if meta else {}))
            if len(hits) == top_k:
                break
        return hits

    # ---- maintenance ------------------------------------------------------------------------------------

    def compact(self, index: str) -> int:
        """Rewrite the live rows into a new generation; returns how many dead rows were dropped."""
        with self._use(index) as handle, handle.write_lock:
            return int(maintenance.rewrite(handle, self.policy)["dropped"])

    def optimize(self, index: str) -> dict[str, float]:
        """Compact and bring the ANN up to date now (sort every row into its list); what `auto_maintain`
        does in steps. Returns what was done: rows, dropped, trained (0/1), seconds."""
        with self._use(index) as handle, handle.write_lock:
            return maintenance.rewrite(handle, self.policy, force_ann=True)

    def integrity_check(self, index: str) -> list[str]:
        """Problems found in one index (empty when it is sound): SQLite, state, vector file, metadata."""
        with self._use(index) as handle:
            db = connect(handle.dir / DB_FILE)
            try:
                db.execute("BEGIN")
                return self._check(handle, db)
            finally:
                db.close()

    @staticmethod
    def _check(handle: Handle, db: sqlite3.Connection) -> list[str]:
        problems: list[str] = []
        result = [r for (r,) in db.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            problems.append(f"SQLite integrity_check: {'; '.join(result)}")
        st = read_state(db)
        count, dead, lo, hi = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(dead), 0), MIN(row), MAX(row) FROM vectors"
        ).fetchone()
        if count != st["rows"] or (count and (lo != 0 or hi != count - 1)):
            problems.append(f"state says {st['rows']} rows but the table holds {count} (rows {lo}..{hi}).")
        if dead != st["dead"]:
            problems.append(f"state says {st['dead']} dead rows but the table marks {dead}.")
        path = vector_path(handle.dir, st["gen"])
        size = path.stat().st_size if path.exists() else -1
        if size < st["rows"] * handle.dim * 4:
            problems.append(f"{path.name} holds {size} bytes, fewer than {st['rows']} committed rows need.")
            return problems
        with handle.lock:
            view = handle.build_view(db, st)
        for start in range(0, view.rows, 16384):
            block = view.matrix[start : start + 16384][view.live[start : start + 16384]]
            if not np.isfinite(block).all():
                problems.append(f"live vectors in rows {start}.. contain NaN or infinity.")
            if handle.cosine and len(block) and not block.any(axis=1).all():
                problems.append(f"live vectors in rows {start}.. are all zeros under the cosine metric.")
        for row, key, meta in db.execute("SELECT row, key, meta FROM vectors WHERE dead = 0"):
            try:
                if meta is not None and not isinstance(json.loads(meta), dict):
                    raise ValueError
            except ValueError:
                problems.append(f"row {row} ({key!r}) has unreadable metadata.")
        return problems

    def close(self) -> None:
        with self._lock:
            handles = list(self._open.values())
            self._open.clear()
        self._close_all(handles)
