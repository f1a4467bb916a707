"""The local store's query path: cached filter masks never outlive the rows they were computed for, the
vectorised probe and the blocked gather answer as the exact scan does, and BLAS runs single-threaded."""

from __future__ import annotations

import os
import select
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stores_support import spec
from threadpoolctl import threadpool_info

from nova_mcp_server.stores.base import VectorRecord
from nova_mcp_server.stores.filter_columns import MetadataColumns
from nova_mcp_server.stores.filters import matches, validate_filter
from nova_mcp_server.stores.local import LocalVectorStore
from nova_mcp_server.stores.local import index as index_module
from nova_mcp_server.stores.local import search as search_module

DIM = 16


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def put(store: LocalVectorStore, data: np.ndarray, start: int = 0, colour: str | None = None) -> None:
    for s in range(0, len(data), 500):
        store.put_vectors(
            "idx",
            [
                VectorRecord.model_construct(
                    key=f"k{start + i:05d}",
                    data=data[i],
                    metadata={"g": (start + i) % 7, "colour": colour or ["red", "blue"][(start + i) % 2]},
                )
                for i in range(s, min(len(data), s + 500))
            ],
        )


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts filter evaluations over the metadata columns (cache misses)."""
    calls: list[int] = []
    real = index_module.Handle.filter_mask

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(index_module.Handle, "filter_mask", counting)
    return calls


def test_a_repeated_filter_is_evaluated_once_per_view(tmp_path: Path, evaluations: list[int]) -> None:
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, rows(600))
    q = rows(1, seed=9)[0]
    first = store.query_vectors("idx", q, top_k=5, filter={"g": 3, "colour": "red"})
    again = store.query_vectors("idx", rows(1, seed=10)[0], top_k=5, filter={"colour": "red", "g": 3})
    assert len(evaluations) == 1  # the same filter with its keys in another order: the cached mask
    assert all(h.metadata == {"g": 3, "colour": "red"} for h in first + again)
    store.query_vectors("idx", q, top_k=5, filter={"g": 4})
    assert len(evaluations) == 2


def test_a_cached_mask_never_outlives_a_write(tmp_path: Path, evaluations: list[int]) -> None:
    """A put and a delete each make a new view; the filter is evaluated again and sees them."""
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, rows(100))
    flt = {"colour": "green"}
    q = rows(1, seed=5)[0]
    assert store.query_vectors("idx", q, top_k=5, filter=flt) == []
    put(store, q[None, :], start=100, colour="green")  # the query itself, now matching
    hits = store.query_vectors("idx", q, top_k=5, filter=flt)
    assert [h.key for h in hits] == ["k00100"] and hits[0].distance == pytest.approx(0.0, abs=1e-6)
    store.delete_vectors("idx", ["k00100"])
    assert store.query_vectors("idx", q, top_k=5, filter=flt) == []
    assert len(evaluations) == 3


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("flt", [None, {"g": {"$in": [1, 2, 3, 4]}}, {"colour": "red"}, {"g": 0, "colour": "blue"}])
def test_probe_and_gather_agree_with_the_exact_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str, flt: dict[str, Any] | None
) -> None:
    """With every list probed (nprobe = all) the IVF path must return exactly the exact scan's answer, for
    filters wide (probe) and narrow (gathered in several blocks). No float64 re-rank margin: the float32
    candidate scores alone must pick the right rows."""
    monkeypatch.setattr(search_module, "RERANK_EXTRA", 0)
    monkeypatch.setattr(search_module, "GATHER_BLOCK", 50)
    data = rows(4000, seed=1)
    ann = LocalVectorStore(tmp_path / "ann", ann_min_rows=1000, nprobe=4096)
    exact = LocalVectorStore(tmp_path / "exact", ann=False)
    for s in (ann, exact):
        s.create_index(spec("idx", DIM, metric=metric))
        put(s, data)
    ann.optimize("idx")
    for q in rows(5, seed=2):
        got = ann.query_vectors("idx", q, top_k=10, filter=flt)
        want = exact.query_vectors("idx", q, top_k=10, filter=flt)
        assert [h.key for h in got] == [h.key for h in want]
        assert [h.distance for h in got] == pytest.approx([h.distance for h in want], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_a_probe_that_runs_out_of_lists_scored_every_matching_row_once(tmp_path: Path, metric: str) -> None:
    """Widening until no list is left: the candidates are exactly the matching rows (sorted lists and the
    unsorted tail), each with the exact scan's float32 score."""
    store = LocalVectorStore(tmp_path, ann_min_rows=1000, auto_maintain=False)
    store.create_index(spec("idx", DIM, metric=metric))
    put(store, rows(3000, seed=1))
    store.optimize("idx")
    put(store, rows(700, seed=4), start=3000)  # a tail of rows not yet sorted into their lists
    store.delete_vectors("idx", ["k00010", "k03001"])
    with store._use("idx") as handle, handle.snapshot() as (db, view):
        assert view.ivf is not None and view.ivf.clustered == 3000 and view.rows == 3700
        mask, count = handle.matching(db, view, validate_filter({"colour": "red"}))
        query = rows(1, seed=8)[0]
        got_rows, got_scores = search_module.probe(view, query, mask, want=10**9, nprobe=3)
        want_rows, want_scores = search_module.exact(view, query, mask, count)
    assert sorted(got_rows.tolist()) == np.flatnonzero(mask).tolist() and len(got_rows) == count
    by_row = dict(zip(want_rows.tolist(), want_scores.tolist(), strict=True))
    assert got_scores.tolist() == pytest.approx([by_row[r] for r in got_rows.tolist()], rel=1e-5, abs=1e-5)


def test_the_gather_covers_every_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A narrow filter over more rows than one gather block: the nearest match in the last block is found."""
    monkeypatch.setattr(search_module, "GATHER_BLOCK", 7)
    store = LocalVectorStore(tmp_path, ann=False)
    store.create_index(spec("idx", DIM))
    data = rows(300, seed=3)
    put(store, data)
    target = 293  # g == 293 % 7 == 6; 43 rows match, so 7 blocks
    hits = store.query_vectors("idx", data[target], top_k=3, filter={"g": 6})
    assert hits[0].key == f"k{target:05d}"
    assert all(int(h.key[1:]) % 7 == 6 for h in hits)


def test_blas_runs_single_threaded_once_a_store_exists(tmp_path: Path) -> None:
    LocalVectorStore(tmp_path)
    blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
    assert blas and all(info["num_threads"] == 1 for info in blas)


def test_columns_grown_batch_by_batch_equal_columns_built_at_once() -> None:
    """The doubling buffers: masks taken between batches stay as they were, and the final columns answer
    as columns built in one step (and as the reference evaluator)."""
    metas = [{"a": i % 5, "t": ["x", "y"][: 1 + i % 2], "s": f"v{i % 3}", "b": i % 2 == 0} for i in range(2000)]
    grown, whole = MetadataColumns(), MetadataColumns()
    whole.extend(metas)
    flt = validate_filter({"$or": [{"a": {"$gte": 3}}, {"t": "y"}, {"s": "v1", "b": True}]})
    before = None
    for s in range(0, len(metas), 97):
        grown.extend(metas[s : s + 97])
        grown.freeze()
        if s == 970:
            before = grown.mask(flt)
            snapshot = before.copy()
    assert before is not None and (before == snapshot).all()
    expected = [matches(m, flt) for m in metas]
    assert grown.mask(flt).tolist() == whole.mask(flt).tolist() == expected


def test_a_failed_vector_sync_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vector file's sync runs beside the SQLite inserts; when it fails the batch rolls back whole (no
    row, no keyword row), and the next put succeeds over the uncommitted tail."""
    from nova_mcp_server.stores.local import vectorfile

    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, rows(10))
    real = vectorfile.sync_file

    def failing(fd: int, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(vectorfile, "sync_file", failing)
    with pytest.raises(OSError):
        store.put_vectors(
            "idx", [VectorRecord.model_construct(key="lost", data=rows(1, seed=3)[0], metadata={"text": "zebra"})]
        )
    assert store.get_vectors("idx", ["lost"]) == [] and store.get_index("idx").vector_count == 10
    assert store.keyword_query("idx", "zebra", top_k=3) == []
    monkeypatch.setattr(vectorfile, "sync_file", real)
    put(store, rows(5, seed=4), start=10)
    assert store.get_index("idx").vector_count == 15 and store.integrity_check("idx") == []


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_a_scan_split_across_cores_gives_every_rows_product(monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    monkeypatch.setattr(search_module, "PARALLEL_ROWS", 10)
    monkeypatch.setattr(search_module, "GATHER_BLOCK", 7)
    monkeypatch.setattr(search_module, "_CORES", cores)
    matrix, query = rows(200, seed=6), rows(1, seed=7)[0]
    picked = np.sort(np.random.default_rng(1).choice(200, 61, replace=False))
    for _ in range(3):  # np.empty may hand back a freed result: poison it so a part left unfilled shows
        np.full(200, np.nan, np.float32), np.full(61, np.nan, np.float32)
    np.testing.assert_allclose(
        search_module.products(matrix, picked, query), matrix[picked] @ query, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(search_module.products(matrix, None, query), matrix @ query, rtol=1e-5, atol=1e-5)


def test_a_rewrite_uses_every_core_for_kmeans_and_searches_stay_single_threaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nova_mcp_server.stores.local import maintenance

    seen: list[int] = []
    real = maintenance.train

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return real(*args, **kwargs)

    monkeypatch.setattr(maintenance, "train", recording)
    store = LocalVectorStore(tmp_path, ann_min_rows=1000, auto_maintain=False)
    store.create_index(spec("idx", DIM))
    put(store, rows(1500))
    store.optimize("idx")
    assert seen and all(n == (os.cpu_count() or 1) for n in seen)
    assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")


def test_concurrent_readers_keep_their_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After 6 readers were in at once, the next 6 concurrent readers open no new SQLite connection."""
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, rows(50))
    opened: list[int] = []
    real = index_module.connect

    def counting(path: Path) -> Any:
        opened.append(1)
        return real(path)

    monkeypatch.setattr(index_module, "connect", counting)

    def wave() -> None:
        inside = threading.Barrier(6, timeout=30)

        def reader() -> None:
            with store._use("idx") as handle, handle.snapshot():
                inside.wait()

        threads = [threading.Thread(target=reader) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    wave()
    first = len(opened)
    assert first >= 4  # the pool held at most 2 before
    wave()
    assert len(opened) == first
    assert len(store.query_vectors("idx", rows(1)[0], top_k=3)) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_still_writes_and_scans(tmp_path: Path) -> None:
    """The sync and scan helper threads do not survive a fork: the child starts its own pools."""
    store = LocalVectorStore(tmp_path, ann=False)
    store.create_index(spec("idx", DIM))
    put(store, rows(20000, seed=2))  # the parent's pools exist (syncs; a scan wider than PARALLEL_ROWS)
    assert len(store.query_vectors("idx", rows(1)[0], top_k=3)) == 3
    store.close()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: reports "ok" only if a put and a split scan both complete
        answer = b"failed"
        try:
            child = LocalVectorStore(tmp_path, ann=False)
            put(child, rows(10, seed=5), start=20000)
            if len(child.query_vectors("idx", rows(1)[0], top_k=3)) == 3:
                answer = b"ok"
        finally:
            os.write(write_end, answer)
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 120)  # a child stuck on a dead pool never answers
        answer = os.read(read_end, 16) if ready else b"hung"
    finally:
        os.close(read_end)
        if answer == b"hung":
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert answer == b"ok"


def test_connections_read_the_database_through_a_memory_map(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, rows(5))
    with store._use("idx") as handle, handle.snapshot() as (db, _):
        assert db.execute("PRAGMA mmap_size").fetchone()[0] == index_module.SQLITE_MMAP
    assert handle.writer.execute("PRAGMA mmap_size").fetchone()[0] == index_module.SQLITE_MMAP


def test_searches_beyond_the_slots_wait_for_one_to_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 2 search slots, two searches hold them and a third does not start its scan until one ends."""
    from nova_mcp_server.stores.local import store as store_module

    monkeypatch.setattr(store_module, "SEARCH_SLOTS", threading.BoundedSemaphore(2))
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", DIM))
    put(store, rows(50))
    lock, gate = threading.Lock(), threading.Event()
    two_in, third_in = threading.Event(), threading.Event()
    entered: list[int] = []
    real = store_module.search

    def held(*args: Any, **kwargs: Any) -> Any:
        with lock:
            entered.append(1)
            if len(entered) == 2:
                two_in.set()
            if len(entered) == 3:
                third_in.set()
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module, "search", held)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(len(store.query_vectors("idx", rows(1)[0], top_k=2))))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    assert two_in.wait(30)
    assert not third_in.wait(1.0)  # the third searcher waits for a slot (with 3 slots it would be in at once)
    gate.set()
    for t in threads:
        t.join(30)
    assert third_in.is_set() and results == [2, 2, 2]
