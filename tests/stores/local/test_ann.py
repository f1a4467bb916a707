"""The local store's approximate path, parallel readers and bounded open files.

Small indexes with a low `ann_min_rows` so the IVF path runs in milliseconds; every answer is checked
against an exact store (`ann=False`) over the same data, or against what must hold on any path (no deleted
row, `top_k` hits whenever that many rows match).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stores_support import spec

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.stores.base import VectorRecord
from nova_mcp_server.stores.local import LocalVectorStore, vectorfile
from nova_mcp_server.stores.local import search as search_module

DIM = 16
N = 3000


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    out = centres[rng.integers(0, 40, n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
    return out.astype(np.float32)


def put(store: LocalVectorStore, data: np.ndarray, start: int = 0, metric_meta: bool = True) -> None:
    for s in range(0, len(data), 500):
        store.put_vectors(
            "idx",
            [
                VectorRecord.model_construct(key=f"k{start + i:05d}", data=data[i], metadata={"g": (start + i) % 7})
                for i in range(s, min(len(data), s + 500))
            ],
        )


def keys(hits: list[Any]) -> list[str]:
    return [h.key for h in hits]


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts IVF probes, so a test knows which path answered."""
    calls: list[int] = []
    real = search_module.probe

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search_module, "probe", counting)
    return calls


def stores(tmp_path: Path, metric: str = "cosine", **kwargs: Any) -> tuple[LocalVectorStore, LocalVectorStore]:
    ann = LocalVectorStore(tmp_path / "ann", ann_min_rows=1000, **kwargs)
    exact = LocalVectorStore(tmp_path / "exact", ann=False)
    for s in (ann, exact):
        s.create_index(spec("idx", DIM, metric=metric))
    return ann, exact


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ann_answers_match_the_exact_scan(tmp_path: Path, metric: str, probes: list[int]) -> None:
    ann, exact = stores(tmp_path, metric)
    data = clustered(N)
    put(ann, data)
    put(exact, data)
    assert list((tmp_path / "ann" / "idx").glob("ann.*.npz")), "the ANN was built as rows arrived"
    queries = clustered(50, seed=1)
    agree = 0
    for q in queries:
        got, want = ann.query_vectors("idx", q, top_k=10), exact.query_vectors("idx", q, top_k=10)
        agree += len(set(keys(got)) & set(keys(want)))
        assert len(got) == 10
        for g in got:  # whatever is returned carries its exact distance
            w = exact.query_vectors("idx", exact.get_vectors("idx", [g.key], return_data=True)[0].data, top_k=1)
            assert w[0].key == g.key
    assert probes, "the IVF path answered"
    assert agree / (10 * len(queries)) >= 0.95


def test_filtered_probe_returns_top_k_whenever_that_many_rows_match(tmp_path: Path, probes: list[int]) -> None:
    ann, exact = stores(tmp_path, nprobe=1)
    data = clustered(N)
    put(ann, data)
    put(exact, data)
    q = clustered(1, seed=2)[0]
    # nprobe=1 finds ~27 rows in its first list: the probe must widen until it holds enough candidates
    for flt, top_k in ((None, 100), ({"g": {"$ne": 0}}, 10), ({"g": {"$in": [1, 2, 3, 4]}}, 10)):
        probes.clear()
        got = ann.query_vectors("idx", q, top_k=top_k, filter=flt)
        want = exact.query_vectors("idx", q, top_k=top_k, filter=flt)
        assert probes, f"the IVF path answered {flt}"
        assert len(got) == len(want) == top_k
        assert len(set(keys(got)) & set(keys(want))) >= 0.9 * top_k
        if flt:
            assert all(h.metadata["g"] != 0 and h.metadata["g"] <= (6 if "$ne" in flt["g"] else 4) for h in got)
    # a filter matching exactly 5 rows: 5 hits, whatever the path
    few = exact.query_vectors("idx", q, top_k=5, filter={"g": 3})
    ann.put_vectors(
        "idx",
        [VectorRecord.model_construct(key=f"only{i}", data=data[i], metadata={"g": 50 + i % 2}) for i in range(5)],
    )
    assert len(ann.query_vectors("idx", q, top_k=10, filter={"g": {"$in": [50, 51]}})) == 5
    assert len(few) == 5


def test_deleted_and_overwritten_rows_never_come_back(tmp_path: Path, probes: list[int]) -> None:
    ann, _ = stores(tmp_path)
    data = clustered(N)
    put(ann, data)
    q = data[123]
    nearest = keys(ann.query_vectors("idx", q, top_k=20))
    ann.delete_vectors("idx", nearest[:10])
    moved = np.roll(data[200], 1)  # k00200 overwritten with another vector
    ann.put_vectors("idx", [VectorRecord.model_construct(key="k00200", data=moved, metadata={"g": 99})])
    after = ann.query_vectors("idx", q, top_k=10)
    assert len(after) == 10 and not set(keys(after)) & set(nearest[:10])
    assert keys(after) == nearest[10:20]
    hits = ann.query_vectors("idx", data[200], top_k=3)
    assert all(h.key != "k00200" or h.metadata == {"g": 99} for h in hits)
    assert ann.query_vectors("idx", moved, top_k=1)[0].key == "k00200"
    assert probes


def test_tail_rows_are_found_and_the_index_survives_a_restart(tmp_path: Path, probes: list[int]) -> None:
    root = tmp_path / "s"
    store = LocalVectorStore(root, ann_min_rows=1000)
    store.create_index(spec("idx", DIM))
    put(store, clustered(N))
    gen_files = sorted(p.name for p in (root / "idx").glob("ann.*.npz"))
    extra = clustered(300, seed=5)
    put(store, extra, start=N)  # the unsorted tail of the current generation
    for i in (0, 150, 299):
        assert store.query_vectors("idx", extra[i], top_k=1)[0].key == f"k{N + i:05d}"
    store.close()
    probes.clear()
    reopened = LocalVectorStore(root, ann_min_rows=1000)
    assert sorted(p.name for p in (root / "idx").glob("ann.*.npz")) == gen_files
    for i in (0, 299):
        assert reopened.query_vectors("idx", extra[i], top_k=1)[0].key == f"k{N + i:05d}"
    assert probes, "the reopened store used the saved structure"
    assert reopened.integrity_check("idx") == []


def test_damaged_caches_are_recomputed_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = LocalVectorStore(root, ann_min_rows=1000)
    store.create_index(spec("idx", DIM))
    put(store, clustered(N))
    extra = clustered(200, seed=6)
    put(store, extra, start=N)
    store.close()
    directory = root / "idx"
    (lists,) = directory.glob("lists.*.i32")
    lists.write_bytes(np.full(200, 10**6, np.int32).tobytes())  # out-of-range lists
    (norms,) = directory.glob("norms.*.f32")
    norms.write_bytes(norms.read_bytes()[:1001])  # torn mid-value
    (ann,) = directory.glob("ann.*.npz")
    ann.write_bytes(b"not a zip")
    exact = LocalVectorStore(tmp_path / "exact", ann=False)
    exact.create_index(spec("idx", DIM))
    put(exact, clustered(N))
    put(exact, extra, start=N)
    reopened = LocalVectorStore(root, ann_min_rows=1000)
    for q in clustered(10, seed=7):
        assert keys(reopened.query_vectors("idx", q, top_k=5)) == keys(exact.query_vectors("idx", q, top_k=5))


def test_optimize_sorts_the_tail_and_compaction_drops_dead_rows(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = LocalVectorStore(root, ann_min_rows=1000, auto_maintain=False)
    store.create_index(spec("idx", DIM))
    data = clustered(N)
    put(store, data)
    assert not list((root / "idx").glob("ann.*.npz"))  # nothing built behind the caller's back
    report = store.optimize("idx")
    assert report["trained"] == 1 and report["rows"] == N
    doomed = [f"k{i:05d}" for i in range(0, N, 2)]
    for s in range(0, len(doomed), 500):
        store.delete_vectors("idx", doomed[s : s + 500])
    assert store.compact("idx") == N // 2
    assert store.get_index("idx").vector_count == N // 2
    assert store.query_vectors("idx", data[1], top_k=1)[0].key == "k00001"
    # the filter cache was carried over by renumbering, not rebuilt: it must still match every row
    for g in (0, 3):
        hits = store.query_vectors("idx", data[1], top_k=100, filter={"g": g})
        assert len(hits) == 100 and all(h.metadata["g"] == g and int(h.key[1:]) % 2 == 1 for h in hits)
        want = sorted(f"k{i:05d}" for i in range(1, N, 2) if i % 7 == g)
        found = []
        for start in range(0, len(want), 100):
            found += [v.key for v in store.get_vectors("idx", want[start : start + 100])]
        assert found == want
    reopened = LocalVectorStore(root, ann_min_rows=1000)
    assert [h.key for h in reopened.query_vectors("idx", data[1], top_k=50, filter={"g": 3})] == [
        h.key for h in store.query_vectors("idx", data[1], top_k=50, filter={"g": 3})
    ]
    assert sorted(p.name.split(".")[1] for p in (root / "idx").iterdir() if p.name.startswith("vectors.")) == ["2"]


def test_numpy_rows_are_accepted_and_checked(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", 4))
    rows = np.eye(4, dtype=np.float32)
    store.put_vectors("idx", [VectorRecord.model_construct(key=f"r{i}", data=rows[i]) for i in range(4)])
    store.put_vectors("idx", [VectorRecord(key="list", data=[0.0, 0.0, 0.0, 2.0])])
    assert keys(store.query_vectors("idx", [0, 0, 0, 1], top_k=2)) == ["r3", "list"]  # a tie: row order
    bad = np.array([1, np.nan, 0, 0], dtype=np.float32)
    with pytest.raises(InvalidInput, match="NaN"):
        store.put_vectors("idx", [VectorRecord.model_construct(key="bad", data=bad)])
    with pytest.raises(InvalidInput, match="all zeros"):
        store.put_vectors("idx", [VectorRecord.model_construct(key="zero", data=np.zeros(4, np.float32))])
    assert store.get_index("idx").vector_count == 5


def test_scans_run_while_a_writer_waits_in_its_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer stuck in fsync holds the write lock; readers on other threads still answer, in parallel."""
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, clustered(1000))
    in_sync, release = threading.Event(), threading.Event()
    real_sync = vectorfile.sync_file

    def slow_sync(fd: int, **kwargs: Any) -> None:
        in_sync.set()
        assert release.wait(30)
        real_sync(fd, **kwargs)

    monkeypatch.setattr(vectorfile, "sync_file", slow_sync)
    writer = threading.Thread(target=put, args=(store, clustered(500, seed=3), 1000))
    writer.start()
    assert in_sync.wait(30)
    readers_in = threading.Barrier(8, timeout=30)  # all 8 inside a snapshot at once: none waits for another
    results: list[int] = []

    def reader() -> None:
        handle = store._open["idx"]
        with handle.snapshot() as (_, view):
            readers_in.wait()
            results.append(view.rows)
        results.append(len(store.query_vectors("idx", clustered(1, seed=4)[0], top_k=5)))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    release.set()
    writer.join(30)
    assert sorted(results) == [5] * 8 + [1000] * 8  # the uncommitted batch was invisible to every reader
    assert store.get_index("idx").vector_count == 1500


def test_open_handles_stay_bounded(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path, max_open=3)
    for i in range(10):
        store.create_index(spec(f"idx{i:02d}", 4))
        store.put_vectors(f"idx{i:02d}", [VectorRecord(key="a", data=[1, 0, 0, float(i)])])
    assert len(store.list_indexes()) == 10
    assert store.open_handles() <= 3
    for i in range(10):
        assert store.query_vectors(f"idx{i:02d}", [1, 0, 0, i], top_k=1)[0].key == "a"
        assert store.open_handles() <= 3
    idle = LocalVectorStore(tmp_path, idle_seconds=0)
    idle.get_index("idx00")
    idle.get_index("idx01")
    assert idle.open_handles() == 1  # idx00 was idle past its time and closed


LIMITED = """
import resource, sys
from pathlib import Path
from nova_mcp_server.stores.base import IndexSpec, VectorRecord
from nova_mcp_server.stores.local import LocalVectorStore

resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
store = LocalVectorStore(Path(sys.argv[1]))
for i in range(1000):
    name = f"idx{i:04d}"
    store.create_index(IndexSpec(name=name, dimension=4))
    store.put_vectors(name, [VectorRecord(key=f"k{i}", data=[1.0, 0.0, 0.0, float(i)])])
assert len(store.list_indexes()) == 1000
for i in range(0, 1000, 7):
    assert store.query_vectors(f"idx{i:04d}", [1.0, 0.0, 0.0, float(i)], top_k=1)[0].key == f"k{i}"
print("ok", store.open_handles())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource.setrlimit is POSIX-only")
def test_a_thousand_indexes_under_a_256_file_limit(tmp_path: Path) -> None:
    # The limit is about descriptors, not durability: on a RAM disk the 6,000 fsyncs cost nothing.
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    try:
        done = subprocess.run([sys.executable, "-c", LIMITED, str(root)], capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "ok"
