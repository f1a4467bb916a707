"""Vector store benchmark: ingest rate, open + first query, query latency and recall, with S3 Vectors filters.

    python -m benchmarks.store --n 100000 --dims 512 1024     # the committed figures
    python -m benchmarks.store --smoke                        # seconds, for CI

Data: clustered unit-normalised float32 vectors; metadata shaped like ours (modality, source, page,
start_s/end_s, list-valued tags, a non-filterable text); 200 queries (noisy copies of stored vectors),
top-k 10, without a filter and with five filters from ~50 % to ~0.01 % selectivity. Ground truth is exact
brute force (float64 re-scoring) over the rows the reference filter evaluator accepts, so recall@10
measures the store, not the data. Results go to a table on stdout and JSON in `benchmarks/results/`.

Stores plug in as `Adapter`s (create / put / reopen / query / disk size); only the local store is wired
now. Peers (Chroma, Qdrant, LanceDB, sqlite-vec) can be added as adapters without touching the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks.store_ann import FaissHnswAdapter, UsearchAdapter, concurrency
from nova_mcp_server.stores.base import MAX_PUT, IndexSpec, VectorRecord, float32_record
from nova_mcp_server.stores.filters import matches, validate_filter

RESULTS = Path(__file__).parent / "results"
MODALITIES = ["TEXT", "IMAGE", "DOCUMENT", "AUDIO", "VIDEO"]
MODALITY_WEIGHTS = [0.5, 0.2, 0.15, 0.1, 0.05]
TAGS = ["red", "green", "blue", "amber", "violet", "teal", "grey", "pink"]
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "modality=TEXT": {"modality": "TEXT"},
    "tags=blue (list)": {"tags": "blue"},
    "av & start_s>=300": {"$and": [{"modality": {"$in": ["AUDIO", "VIDEO"]}}, {"start_s": {"$gte": 300}}]},
    "doc & page<2 & tags!=red": {"$and": [{"modality": "DOCUMENT"}, {"page": {"$lt": 2}}, {"tags": {"$ne": "red"}}]},
    "source=one file": {"source": "s3://bench/doc00042.pdf"},
}


# ---- data -----------------------------------------------------------------------------------------------


def make_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Clustered unit vectors: ~n/200 random centres plus Gaussian noise, normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 200, 8), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):
        stop = min(n, start + 10_000)
        block = centres[rng.integers(0, len(centres), stop - start)]
        block = block + rng.standard_normal(block.shape).astype(np.float32) * np.float32(0.6 / np.sqrt(dim))
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def make_metadata(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed + 1)
    modality = rng.choice(len(MODALITIES), size=n, p=MODALITY_WEIGHTS)
    tag_count = rng.integers(1, 3, size=n)
    tags = rng.integers(0, len(TAGS), size=(n, 2))
    out = []
    for i in range(n):
        m: dict[str, Any] = {
            "modality": MODALITIES[modality[i]],
            "source": f"s3://bench/doc{i // 10:05d}.pdf",
            "segment": i % 10,
            "tags": [TAGS[t] for t in dict.fromkeys(tags[i, : tag_count[i]].tolist())],
            "indexed_at": 1_790_000_000 + i,
            "text": f"chunk {i} " + "lorem ipsum " * 15,
        }
        if m["modality"] in ("DOCUMENT", "IMAGE"):
            m["page"] = int(i % 10)
        if m["modality"] in ("AUDIO", "VIDEO"):
            m["start_s"] = float((i % 120) * 5)
            m["end_s"] = m["start_s"] + 5.0
        out.append(m)
    return out


def make_queries(data: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 2)
    picked = data[rng.integers(0, len(data), count)]
    noisy = picked + rng.standard_normal(picked.shape).astype(np.float32) * np.float32(0.3 / np.sqrt(data.shape[1]))
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(data: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None, k: int) -> list[list[int]]:
    """Exact cosine top-k: float32 candidates, float64 re-scoring (BLAS on every core: the local store pins
    it to one thread in this process, which would only slow the ground truth down)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
        return _exact_top_k(data, queries, allowed, k)


def _exact_top_k(data: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None, k: int) -> list[list[int]]:
    rows = np.flatnonzero(allowed) if allowed is not None else np.arange(len(data))
    if len(rows) == 0:
        return [[] for _ in queries]
    subset = data[rows] if allowed is not None else data  # no 4 GB copy at 1M rows
    scores = queries @ subset.T
    out = []
    m = min(len(rows), k + 32)
    for qi, q in enumerate(queries):
        cand = np.argpartition(-scores[qi], m - 1)[:m] if m < len(rows) else np.arange(len(rows))
        exact = subset[cand].astype(np.float64) @ q.astype(np.float64)
        exact /= np.linalg.norm(subset[cand].astype(np.float64), axis=1)
        out.append(rows[cand[np.argsort(-exact, kind="stable")[:k]]].tolist())
    return out


# ---- adapters -------------------------------------------------------------------------------------------


class Adapter(Protocol):
    name: str

    def create(self, root: Path, dim: int) -> None: ...
    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None: ...
    def reopen(self) -> None: ...
    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]: ...
    def disk_bytes(self) -> int: ...
    def close(self) -> None: ...


SMALL: dict[str, Any] = {}  # --smoke: {"ann_min_rows": 1000}, so the IVF path runs at smoke size too


class LocalAdapter:
    """The embedded default as the core drives it: float32 rows in `VectorRecord`s (no float lists), the
    IVF built in one `optimize()` after the puts (`finish`, timed as build). `local-auto` maintains the ANN
    incrementally inside the puts instead (as the server does); `local-exact` has no ANN (every query a scan)."""

    name = "local"
    OPTIONS: dict[str, Any] = {"auto_maintain": False}

    def create(self, root: Path, dim: int) -> None:
        from nova_mcp_server.stores.local import LocalVectorStore

        self.root = root
        self.store = LocalVectorStore(root, **self.OPTIONS, **SMALL)
        self.store.create_index(IndexSpec(name="bench", dimension=dim, non_filterable_keys=["text"]))

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        self.put_records(self.prepare(keys, vectors, metadata))

    def put_records(self, records: list[VectorRecord]) -> None:
        self.store.put_vectors("bench", records)

    @staticmethod
    def prepare(keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> list[VectorRecord]:
        """What the core hands the store (`stores.base.float32_record`): float32 rows in unvalidated records."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        return [float32_record(k, rows[i], m) for i, (k, m) in enumerate(zip(keys, metadata, strict=True))]

    def finish(self) -> None:
        if not self.OPTIONS.get("auto_maintain", True) and self.OPTIONS.get("ann", True):
            self.store.optimize("bench")

    def attach(self, root: Path) -> None:
        """Use the store an earlier run built and kept under `root` (`--keep`)."""
        from nova_mcp_server.stores.local import LocalVectorStore

        self.root = root
        self.store = LocalVectorStore(root, **self.OPTIONS, **SMALL)

    def reopen(self) -> None:
        from nova_mcp_server.stores.local import LocalVectorStore

        self.store.close()
        self.store = LocalVectorStore(self.root, **self.OPTIONS, **SMALL)

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        hits = self.store.query_vectors("bench", vector, top_k=k, filter=filter, return_metadata=True)
        return [h.key for h in hits]

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        self.store.close()


class LocalAutoAdapter(LocalAdapter):
    name = "local-auto"
    OPTIONS: dict[str, Any] = {"auto_maintain": True}


class LocalExactAdapter(LocalAdapter):
    name = "local-exact"
    OPTIONS: dict[str, Any] = {"ann": False}


def _dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# Each peer stores the same vectors and metadata in its natural form and gets the same 5 filters in its
# natural filter syntax. Where the natural form differs from ours (no list values, no missing keys), the
# adapter says how in `FIDELITY`; every translation here is exact for this data set (checked: the peers
# return the ground-truth rows), but not in general.


class ChromaAdapter:
    """Chroma `PersistentClient` (HNSW, cosine). Metadata values cannot be lists: `tags` becomes one boolean
    per tag (`tag_blue`), so `{"tags": "blue"}` -> `{"tag_blue": True}`."""

    name = "chroma"
    FIDELITY = "tags stored as one bool per tag (no list values in Chroma metadata)"
    WHERE: dict[str, dict[str, Any] | None] = {
        "none": None,
        "modality=TEXT": {"modality": "TEXT"},
        "tags=blue (list)": {"tag_blue": True},
        "av & start_s>=300": {"$and": [{"modality": {"$in": ["AUDIO", "VIDEO"]}}, {"start_s": {"$gte": 300}}]},
        "doc & page<2 & tags!=red": {
            "$and": [{"modality": "DOCUMENT"}, {"page": {"$lt": 2}}, {"tag_red": {"$ne": True}}]
        },
        "source=one file": {"source": "s3://bench/doc00042.pdf"},
    }

    def create(self, root: Path, dim: int) -> None:
        import chromadb

        self.root = root
        self.client = chromadb.PersistentClient(path=str(root))
        self.col = self.client.create_collection("bench", metadata={"hnsw:space": "cosine"})

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        metas = []
        for m in metadata:
            flat = {k: v for k, v in m.items() if k not in ("tags", "text")}
            flat.update({f"tag_{t}": t in m["tags"] for t in TAGS})
            metas.append(flat)
        self.col.add(ids=list(keys), embeddings=vectors, metadatas=metas, documents=[m["text"] for m in metadata])

    def reopen(self) -> None:
        import chromadb

        del self.col, self.client
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        self.client = chromadb.PersistentClient(path=str(self.root))
        self.col = self.client.get_collection("bench")

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        where = self.WHERE[_label(filter)]
        res = self.col.query(query_embeddings=vector[None, :], n_results=k, where=where, include=["distances"])
        return list(res["ids"][0])

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        import chromadb

        del self.col, self.client
        chromadb.api.client.SharedSystemClient.clear_system_cache()


class QdrantAdapter:
    """qdrant-client's local mode (`QdrantClient(path=...)`): a pure-Python, exact-search stand-in meant for
    prototypes and tests -- not the Qdrant engine (Rust, HNSW), which runs as a server and is not measured.
    Payload filters express all five exactly: `MatchValue` on a list matches any element, `must_not`
    matches rows without the key (as our `$ne`)."""

    name = "qdrant-local (pure-Python prototype mode)"
    FIDELITY = "exact"

    def create(self, root: Path, dim: int) -> None:
        from qdrant_client import QdrantClient, models

        self.root = root
        self.client = QdrantClient(path=str(root))
        self.client.create_collection(
            "bench", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
        )
        self.next_id = 0

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(id=self.next_id + i, vector=v, payload={**m, "key": key})
            for i, (key, v, m) in enumerate(zip(keys, vectors.tolist(), metadata, strict=True))
        ]
        self.next_id += len(points)
        self.client.upsert("bench", points=points, wait=True)

    def reopen(self) -> None:
        from qdrant_client import QdrantClient

        self.client.close()
        self.client = QdrantClient(path=str(self.root))

    @staticmethod
    def _filter(label: str) -> Any:
        from qdrant_client import models as q

        def eq(key: str, value: Any) -> Any:
            return q.FieldCondition(key=key, match=q.MatchValue(value=value))

        return {
            "none": None,
            "modality=TEXT": q.Filter(must=[eq("modality", "TEXT")]),
            "tags=blue (list)": q.Filter(must=[eq("tags", "blue")]),
            "av & start_s>=300": q.Filter(
                must=[
                    q.FieldCondition(key="modality", match=q.MatchAny(any=["AUDIO", "VIDEO"])),
                    q.FieldCondition(key="start_s", range=q.Range(gte=300)),
                ]
            ),
            "doc & page<2 & tags!=red": q.Filter(
                must=[eq("modality", "DOCUMENT"), q.FieldCondition(key="page", range=q.Range(lt=2))],
                must_not=[eq("tags", "red")],
            ),
            "source=one file": q.Filter(must=[eq("source", "s3://bench/doc00042.pdf")]),
        }[label]

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        res = self.client.query_points(
            "bench", query=vector.tolist(), limit=k, query_filter=self._filter(_label(filter)), with_payload=["key"]
        )
        return [p.payload["key"] for p in res.points]

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        self.client.close()


class LanceAdapter:
    """LanceDB: typed Arrow columns (a fixed schema; missing keys are NULL, `tags` a list<string>), SQL
    `where` with `prefilter=True`, no vector index (exact). Each 500-row `add` makes a version/fragment;
    `optimize()` (compaction) runs once after ingest and is included in the ingest time."""

    name = "lancedb"
    FIDELITY = "exact (typed columns: a fixed schema)"
    WHERE: dict[str, str | None] = {
        "none": None,
        "modality=TEXT": "modality = 'TEXT'",
        "tags=blue (list)": "array_has(tags, 'blue')",
        "av & start_s>=300": "modality IN ('AUDIO', 'VIDEO') AND start_s >= 300",
        "doc & page<2 & tags!=red": "modality = 'DOCUMENT' AND page < 2 AND NOT array_has(tags, 'red')",
        "source=one file": "source = 's3://bench/doc00042.pdf'",
    }

    def create(self, root: Path, dim: int) -> None:
        import lancedb
        import pyarrow as pa

        self.root, self.dim = root, dim
        self.schema = pa.schema(
            [
                pa.field("key", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), dim)),
                pa.field("modality", pa.string()),
                pa.field("source", pa.string()),
                pa.field("segment", pa.int64()),
                pa.field("page", pa.int64()),
                pa.field("start_s", pa.float64()),
                pa.field("end_s", pa.float64()),
                pa.field("tags", pa.list_(pa.string())),
                pa.field("indexed_at", pa.int64()),
                pa.field("text", pa.string()),
            ]
        )
        self.db = lancedb.connect(str(root))
        self.tbl = self.db.create_table("bench", schema=self.schema)

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        import pyarrow as pa

        cols: dict[str, Any] = {"key": list(keys)}
        cols["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim)
        for f in self.schema.names[2:]:
            cols[f] = [m.get(f) for m in metadata]
        self.tbl.add(pa.table(cols, schema=self.schema))

    def finish(self) -> None:
        """After the last batch (timed with ingest): compact the 500-row fragments into a few files."""
        self.tbl.optimize()

    def reopen(self) -> None:
        import lancedb

        self.db = lancedb.connect(str(self.root))
        self.tbl = self.db.open_table("bench")

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        q = self.tbl.search(vector).metric("cosine").limit(k).select(["key", "_distance"])
        where = self.WHERE[_label(filter)]
        if where:
            q = q.where(where, prefilter=True)
        return q.to_arrow()["key"].to_pylist()

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        pass


class SqliteVecAdapter:
    """sqlite-vec `vec0` (brute-force KNN, cosine) via `apsw` (this Python's sqlite3 cannot load extensions).
    Filters use vec0 metadata columns in the KNN `WHERE`. Those hold no NULLs and no lists, so missing
    `page`/`start_s` are sentinels (page 1e9, start_s -1) and `tags` is one boolean column per tag."""

    name = "sqlite-vec"
    FIDELITY = "tags as one bool column per tag; missing keys as sentinel values (no NULL/list in vec0)"
    WHERE: dict[str, str] = {
        "none": "",
        "modality=TEXT": "AND modality = 'TEXT'",
        "tags=blue (list)": "AND tag_blue = 1",
        "av & start_s>=300": "AND modality IN ('AUDIO', 'VIDEO') AND start_s >= 300",
        "doc & page<2 & tags!=red": "AND modality = 'DOCUMENT' AND page < 2 AND tag_red = 0",
        "source=one file": "AND source = 's3://bench/doc00042.pdf'",
    }

    def _connect(self) -> None:
        import apsw
        import sqlite_vec

        self.db = apsw.Connection(str(self.root / "bench.sqlite"))
        self.db.enable_load_extension(True)
        self.db.load_extension(sqlite_vec.loadable_path())
        self.db.enable_load_extension(False)

    def create(self, root: Path, dim: int) -> None:
        self.root = root
        self._connect()
        self.db.execute("PRAGMA journal_mode=WAL")
        tags = ", ".join(f"tag_{t} integer" for t in TAGS)
        self.db.execute(
            f"CREATE VIRTUAL TABLE bench USING vec0(embedding float[{dim}] distance_metric=cosine, "
            f"modality text, source text, page integer, start_s float, {tags}, +key text, +meta text)"
        )
        self.next_id = 1

    def put(self, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> None:
        tag_cols = ", ".join(f"tag_{t}" for t in TAGS)
        cols = f"rowid, embedding, modality, source, page, start_s, {tag_cols}, key, meta"
        marks = ", ".join("?" * (8 + len(TAGS)))
        rows = [
            (
                self.next_id + i,
                v.tobytes(),
                m["modality"],
                m["source"],
                m.get("page", 1_000_000_000),
                float(m.get("start_s", -1.0)),
                *(int(t in m["tags"]) for t in TAGS),
                key,
                json.dumps(m),
            )
            for i, (key, v, m) in enumerate(zip(keys, np.ascontiguousarray(vectors, np.float32), metadata, strict=True))
        ]
        self.next_id += len(rows)
        with self.db:
            self.db.executemany(f"INSERT INTO bench({cols}) VALUES ({marks})", rows)

    def reopen(self) -> None:
        self.db.close()
        self._connect()

    def query(self, vector: np.ndarray, k: int, filter: dict[str, Any] | None) -> list[str]:
        sql = f"SELECT key FROM bench WHERE embedding MATCH ? AND k = ? {self.WHERE[_label(filter)]} ORDER BY distance"
        return [r[0] for r in self.db.execute(sql, (np.ascontiguousarray(vector, np.float32).tobytes(), k))]

    def disk_bytes(self) -> int:
        return _dir_bytes(self.root)

    def close(self) -> None:
        self.db.close()


def _label(filter: dict[str, Any] | None) -> str:
    for label, flt in FILTERS.items():
        if flt == filter:
            return label
    raise KeyError(filter)


ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "local": LocalAdapter,
    "local-auto": LocalAutoAdapter,
    "local-exact": LocalExactAdapter,
    "usearch": UsearchAdapter,
    "faiss": FaissHnswAdapter,
    "chroma": ChromaAdapter,
    "qdrant": QdrantAdapter,
    "lancedb": LanceAdapter,
    "sqlite-vec": SqliteVecAdapter,
}
PEERS = ["chroma", "qdrant", "lancedb", "sqlite-vec", "usearch", "faiss"]


# ---- measurement ----------------------------------------------------------------------------------------


@dataclass
class FilterResult:
    selectivity: float
    p50_ms: float
    p95_ms: float
    recall_at_k: float
    results_per_query: float
    first_query_ms: float
    queries: int


@dataclass
class RunResult:
    store: str
    n: int
    dim: int
    ingest_vectors_per_s: float
    open_first_query_ms: float
    disk_mb: float
    fidelity: str = "exact"
    build_s: float = 0.0  # after the puts: ANN build / index save / compaction (`finish`), not in ingest
    filters: dict[str, FilterResult] = field(default_factory=dict)
    concurrency: dict[str, float] = field(default_factory=dict)
    built: dict[str, Any] = field(default_factory=dict)  # `--keep`: when and at what load ingest and build ran


def run(
    adapter: Adapter,
    n: int,
    dim: int,
    n_queries: int,
    k: int,
    seed: int,
    work: Path,
    budget_s: float = 1e9,
    threads: int = 0,
    keep: bool = False,
) -> RunResult:
    data = make_vectors(n, dim, seed)
    metadata = make_metadata(n, seed)
    queries = make_queries(data, n_queries, seed)
    keys = [f"{m['source']}#{m['segment']}" for m in metadata]

    built = work / "built.json"
    if keep and built.exists() and hasattr(adapter, "attach"):
        kept = json.loads(built.read_text())
        adapter.attach(work)
        put_rate, build, disk = kept["ingest_vectors_per_s"], kept["build_s"], kept["disk_bytes"]
    else:
        adapter.create(work, dim)
        put_seconds = 0.0
        load_before = os.getloadavg()
        prepare = getattr(adapter, "prepare", None)  # ours: the records the core builds, not timed
        for start in range(0, n, MAX_PUT):
            stop = min(n, start + MAX_PUT)
            batch = (keys[start:stop], data[start:stop], metadata[start:stop])
            if prepare is not None:
                records = prepare(*batch)
                began = time.perf_counter()
                adapter.put_records(records)
            else:
                began = time.perf_counter()
                adapter.put(*batch)
            put_seconds += time.perf_counter() - began
        finish = getattr(adapter, "finish", None)
        build = 0.0
        if finish is not None:
            began = time.perf_counter()
            finish()
            build = time.perf_counter() - began
        disk = adapter.disk_bytes()
        put_rate = n / put_seconds
        kept = {
            "ingest_vectors_per_s": put_rate,
            "build_s": build,
            "disk_bytes": disk,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        }
        if keep:
            built.write_text(json.dumps(kept) + "\n")

    began = time.perf_counter()
    adapter.reopen()
    adapter.query(queries[0], k, None)
    open_first = (time.perf_counter() - began) * 1000
    result = RunResult(
        adapter.name, n, dim, put_rate, open_first, disk / 1e6, getattr(adapter, "FIDELITY", "exact"), build
    )
    if keep:
        result.built = kept

    supported = getattr(adapter, "FILTERS_SUPPORTED", set(FILTERS))
    for label, flt in FILTERS.items():
        if label not in supported:
            continue
        compiled = validate_filter(flt, ["text"])
        allowed = np.fromiter((matches(m, compiled) for m in metadata), bool, n) if flt else None
        truth = exact_top_k(data, queries, allowed, k)
        began = time.perf_counter()
        adapter.query(queries[0], k, flt)  # a filter's first use may build caches: reported apart
        first = (time.perf_counter() - began) * 1000
        latencies, recalls, counts = [], [], []
        deadline = time.perf_counter() + budget_s
        for q, expected in zip(queries, truth, strict=True):
            if time.perf_counter() > deadline and len(latencies) >= 10:
                break  # a slow peer: fewer queries for this filter (`queries` says how many)
            began = time.perf_counter()
            got = adapter.query(q, k, flt)
            latencies.append((time.perf_counter() - began) * 1000)
            counts.append(len(got))
            want = {keys[i] for i in expected}
            recalls.append(len(want & set(got)) / len(want) if want else 1.0)
        result.filters[label] = FilterResult(
            selectivity=float(allowed.mean()) if allowed is not None else 1.0,
            p50_ms=float(np.percentile(latencies, 50)),
            p95_ms=float(np.percentile(latencies, 95)),
            recall_at_k=float(np.mean(recalls)),
            results_per_query=float(np.mean(counts)),
            first_query_ms=first,
            queries=len(latencies),
        )
    if threads:
        result.concurrency = concurrency(adapter.query, queries[:50], k, threads)
    adapter.close()
    return result


def table(results: list[RunResult], k: int) -> str:
    lines = []
    for r in results:
        lines.append(
            f"\n{r.store}  n={r.n:,}  dim={r.dim}  ingest {r.ingest_vectors_per_s:,.0f} vec/s  "
            f"build {r.build_s:.1f} s  open+first query {r.open_first_query_ms:.0f} ms  disk {r.disk_mb:.0f} MB  "
            f"filters: {r.fidelity}"
        )
        lines.append(
            f"  {'filter':<26} {'select.':>8} {'p50 ms':>8} {'p95 ms':>8} {f'recall@{k}':>10} "
            f"{'hits/q':>7} {'1st ms':>8} {'queries':>7}"
        )
        for label, f in r.filters.items():
            lines.append(
                f"  {label:<26} {f.selectivity:>8.2%} {f.p50_ms:>8.2f} {f.p95_ms:>8.2f} {f.recall_at_k:>10.3f} "
                f"{f.results_per_query:>7.1f} {f.first_query_ms:>8.1f} {f.queries:>7}"
            )
        if r.concurrency:
            c = r.concurrency
            lines.append("  concurrent searchers: " + ", ".join(f"{key} {v:,.2f}" for key, v in c.items()))
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]], k: int) -> str:
    """The README table: one row per store, dimension and filter."""
    lines = [
        f"| store | n x dim | filter | p50 ms | p95 ms | recall@{k} | hits/q | 1st ms | ingest vec/s | build s "
        "| open+1st ms | disk MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for i, (label, f) in enumerate(r["filters"].items()):
            store, size, whole = "", "", "| |"
            if i == 0:
                store, size = r["store"], f"{r['n']:,} x {r['dim']}"
                whole = (
                    f"{r['ingest_vectors_per_s']:,.0f} | {r.get('build_s', 0):,.1f} | {r['open_first_query_ms']:,.0f} "
                    f"| {r['disk_mb']:,.0f}"
                )
            lines.append(
                f"| {store} | {size} | {label} | {f['p50_ms']:.1f} | {f['p95_ms']:.1f} | {f['recall_at_k']:.3f} "
                f"| {f['results_per_query']:.1f} | {f['first_query_ms']:,.0f} | {whole} |"
            )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    blas = np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {}) if hasattr(np, "__config__") else {}
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(11, 4))
    labels = list(FILTERS)
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        ax.bar(
            np.arange(len(labels)) + i * width,
            [r["filters"][x]["p50_ms"] for x in labels],
            width,
            label=f"{r['store']} {r['n'] // 1000}k x {r['dim']}",
        )
    ax.set_xticks(np.arange(len(labels)) + width * (len(results) - 1) / 2, labels, rotation=20, ha="right")
    ax.set_ylabel("p50 query latency (ms, log)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    return True


PEERS_VENV = Path(__file__).parent / ".peers-venv"
PEERS_REQUIREMENTS = Path(__file__).parent / "requirements-peers.txt"


def install_peers() -> None:
    """Create `benchmarks/.peers-venv` with the pinned peers; it also sees this interpreter's packages (ours)."""
    import subprocess
    import sysconfig
    import venv

    if not (PEERS_VENV / "bin" / "python").exists():
        venv.create(PEERS_VENV, with_pip=True)
    py = str(PEERS_VENV / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-r", str(PEERS_REQUIREMENTS)], check=True)
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Appended after the venv's own site-packages: the peers' pins win, nova_mcp_server and its deps resolve.
    lines = [f"import site; site.addsitedir({d!r})" for d in sorted(ours)] + [str(Path(__file__).parents[1])]
    (Path(purelib) / "nova_bench_main.pth").write_text("\n".join(lines) + "\n")
    print(f"peers installed in {PEERS_VENV}; run: python -m benchmarks.store --stores local {' '.join(PEERS)}")


def _reexec_in_peers_venv(stores: Sequence[str]) -> None:
    """Peers live only in `.peers-venv`: when one is asked for and not importable here, rerun there."""
    import importlib.util

    modules = {
        "chroma": "chromadb",
        "qdrant": "qdrant_client",
        "lancedb": "lancedb",
        "sqlite-vec": "sqlite_vec",
        "usearch": "usearch",
        "faiss": "faiss",
    }
    missing = [s for s in stores if s in modules and importlib.util.find_spec(modules[s]) is None]
    if not missing:
        return
    py = PEERS_VENV / "bin" / "python"
    if not py.exists() or Path(sys.prefix).resolve() == PEERS_VENV.resolve():
        sys.exit(f"{', '.join(missing)} not installed: run `python -m benchmarks.store --install-peers` first.")
    os.execv(str(py), [str(py), "-m", "benchmarks.store", *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--stores", nargs="+", default=["local"], choices=sorted(ADAPTERS), help="local and/or peers")
    parser.add_argument("--install-peers", action="store_true", help=f"create {PEERS_VENV.name} with the pinned peers")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds of queries per store and filter (at least 10 queries)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=8, help="concurrent searchers measured on our store (0: skip)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (CI)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    parser.add_argument("--work", type=Path, default=None, help="where the stores write (default: a temp dir)")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep our stores under this directory and reuse one built with the same n, dim and seed (the 1M "
        "run: ingest and build figures then come from the run that built it, `built` in the JSON says when)",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        default=None,
        help="keep the other stores' results from this JSON (e.g. rerun only local after a store change)",
    )
    args = parser.parse_args(argv)
    if args.install_peers:
        install_peers()
        return
    _reexec_in_peers_venv(args.stores)
    if args.smoke:
        args.n, args.dims, args.queries = 3_000, [64], 20
        SMALL["ann_min_rows"] = 1000
    stem = "store" if set(args.stores) - {"local", "local-auto", "local-exact"} else "store_local"
    out = args.out or RESULTS / (f"{stem}_smoke.json" if args.smoke else f"{stem}.json")

    load_before = os.getloadavg()
    results = []
    for store in args.stores:
        for dim in args.dims:
            ours = store.startswith("local")
            keep = args.keep is not None and ours
            if keep:
                work = args.keep / f"{store}-{args.n}x{dim}-seed{args.seed}"
                if not (work / "built.json").exists():
                    shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True, exist_ok=True)
            else:
                work = Path(tempfile.mkdtemp(prefix=f"bench-{store}-{dim}-", dir=args.work))
            try:
                adapter = ADAPTERS[store]()
                threads = args.threads if ours else 0
                results.append(
                    run(adapter, args.n, dim, args.queries, args.top_k, args.seed, work, args.budget, threads, keep)
                )
            finally:
                if not keep:
                    shutil.rmtree(work, ignore_errors=True)
            print(table(results[-1:], args.top_k), flush=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "store",
        "params": {
            "n": args.n,
            "dims": args.dims,
            "queries": args.queries,
            "top_k": args.top_k,
            "seed": args.seed,
            "budget_s": args.budget,
        },
        "model": "none: synthetic clustered unit vectors (n/200 centres + Gaussian noise), metadata shaped like ours",
        "notes": (
            "open+first query with the OS page cache warm; ingest times the puts only (ours: records prebuilt "
            "as the core builds them, float32 rows, outside the timer); build_s is what runs after the last put (our optimize(), an HNSW save, a Lance compaction); "
            "concurrency: queries/s with 1 and with N threads on one open index"
        ),
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": [
            {
                **{k: v for k, v in vars(r).items() if k != "filters"},
                "filters": {k: vars(f) for k, f in r.filters.items()},
            }
            for r in results
        ],
    }
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        rerun = {(r.store, r.n, r.dim) for r in results}
        kept = [r for r in earlier["results"] if (r["store"], r["n"], r["dim"]) not in rerun]
        for r in kept:
            r.setdefault("run_at", earlier["at"])
        report["results"] = report["results"] + kept
        report["merged_from"] = {"at": earlier["at"], "machine": earlier["machine"]}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("\n" + markdown(report["results"], args.top_k))
    print(
        f"\nwrote {out}"
        + (f" and {out.with_suffix('.png')}" if plot(report["results"], out.with_suffix(".png")) else "")
    )


if __name__ == "__main__":
    main()
