"""The local store's own promises: crash safety, readers beside a writer, compaction, reopening."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stores_support import random_vectors, records, spec

from nova_mcp_server.errors import IndexNotFound
from nova_mcp_server.stores.base import EmbedderStamp, VectorRecord
from nova_mcp_server.stores.local import LocalVectorStore

DIM = 128
BATCH = 500

# Puts deterministic batches (contents derive from the batch number) and prints each batch number once its
# put_vectors call has returned, i.e. once it is committed.
WRITER = """
import sys
import numpy as np
from pathlib import Path
from nova_mcp_server.stores.base import VectorRecord
from nova_mcp_server.stores.local import LocalVectorStore

root, first, last, batch, dim = Path(sys.argv[1]), *map(int, sys.argv[2:6])
store = LocalVectorStore(root)
for b in range(first, last):
    data = np.random.default_rng(b).standard_normal((batch, dim)).astype(np.float32)
    store.put_vectors("idx", [
        VectorRecord.model_construct(key=f"b{b:04d}-{i:03d}", data=data[i].tolist(), metadata={"batch": b, "i": i})
        for i in range(batch)
    ])
    print(b, flush=True)
"""


def batch_data(b: int) -> np.ndarray:
    return np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)


def start_writer(root: Path, first: int, last: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(first), str(last), str(BATCH), str(DIM)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )


def batches_present(store: LocalVectorStore) -> dict[int, int]:
    counts: dict[int, int] = {}
    token = None
    while True:
        page = store.list_vectors("idx", max_results=1000, next_token=token)
        for v in page.vectors:
            b = int(v.key[1:5])
            counts[b] = counts.get(b, 0) + 1
        token = page.next_token
        if token is None:
            return counts


def check_batches(store: LocalVectorStore, committed: set[int]) -> set[int]:
    """Every committed batch complete and intact; any other batch (the one in flight) all or nothing."""
    counts = batches_present(store)
    assert committed <= set(counts), f"committed batches lost: {committed - set(counts)}"
    assert all(c == BATCH for c in counts.values()), f"partial batch visible: {counts}"
    for b in counts:
        keys = [f"b{b:04d}-{i:03d}" for i in (0, 17, BATCH - 1)]
        got = store.get_vectors("idx", keys, return_data=True)
        expected = batch_data(b)[[0, 17, BATCH - 1]]
        assert np.array_equal(np.asarray([g.data for g in got], dtype=np.float32), expected)
        assert [g.metadata for g in got] == [{"batch": b, "i": i} for i in (0, 17, BATCH - 1)]
    return set(counts)


def test_sigkill_mid_ingest_loses_nothing_committed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalVectorStore(root).create_index(spec("idx", DIM))
    rnd = random.Random(1)
    committed: set[int] = set()
    present: set[int] = set()
    next_batch = 0
    for _ in range(4):
        writer = start_writer(root, next_batch, next_batch + 1000)
        assert writer.stdout is not None
        committed.add(int(writer.stdout.readline()))  # it is writing now
        time.sleep(rnd.uniform(0.02, 0.25))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=10)
        committed |= {int(line) for line in out.split()}
        assert writer.returncode == -signal.SIGKILL

        store = LocalVectorStore(root)  # a fresh opener, as after a restart
        present = check_batches(store, committed)
        assert store.integrity_check("idx") == []
        assert store.get_index("idx").vector_count == BATCH * len(present)
        b = max(committed)
        hit = store.query_vectors("idx", batch_data(b)[3].tolist(), top_k=1)[0]
        assert hit.key == f"b{b:04d}-003" and hit.distance == pytest.approx(0, abs=1e-6)
        store.close()
        next_batch = max(present) + 1
    # The next writer drops any uncommitted tail and appends cleanly after it.
    store = LocalVectorStore(root)
    store.put_vectors("idx", [VectorRecord(key="after", data=[1.0] * DIM)])
    vector_file = next((root / "idx").glob("vectors.*.f32"))
    assert vector_file.stat().st_size == (BATCH * len(present) + 1) * DIM * 4
    assert store.integrity_check("idx") == []
    assert store.get_vectors("idx", ["after"], return_data=True)[0].data == [1.0] * DIM


def test_reader_process_beside_a_writer(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalVectorStore(root).create_index(spec("idx", DIM))
    writer = start_writer(root, 0, 12)
    reader = LocalVectorStore(root)  # this process reads while the child writes
    seen_counts = []
    queries = 0
    try:
        while writer.poll() is None or queries == 0:
            count = reader.get_index("idx").vector_count
            assert count is not None and count % BATCH == 0  # never a partial batch
            seen_counts.append(count)
            if count:
                b = random.randrange(count // BATCH)
                hits = reader.query_vectors("idx", batch_data(b)[5].tolist(), top_k=10, filter={"batch": b})
                assert len(hits) == 10 and hits[0].key == f"b{b:04d}-005"
                assert all(h.metadata["batch"] == b for h in hits)
                queries += 1
    finally:
        writer.wait(timeout=30)
    assert writer.returncode == 0
    assert seen_counts == sorted(seen_counts)  # monotonic
    assert reader.get_index("idx").vector_count == 12 * BATCH
    assert queries > 0 and len(set(seen_counts)) > 1, "the reader never overlapped the writer"
    assert reader.integrity_check("idx") == []


def test_uncommitted_tail_is_invisible_and_truncated_by_the_writer(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", 4))
    store.put_vectors("idx", [VectorRecord(key="a", data=[1, 0, 0, 0])])
    vector_file = tmp_path / "idx" / "vectors.0.f32"
    with open(vector_file, "ab") as f:  # what a writer killed between append and commit leaves
        f.write(np.ones((3, 4), dtype=np.float32).tobytes())
    reader = LocalVectorStore(tmp_path)
    assert [h.key for h in reader.query_vectors("idx", [1, 1, 1, 1], top_k=10)] == ["a"]
    assert reader.integrity_check("idx") == []
    assert vector_file.stat().st_size == 4 * 16  # readers never truncate
    reader.put_vectors("idx", [VectorRecord(key="b", data=[0, 1, 0, 0])])
    assert vector_file.stat().st_size == 2 * 16
    assert {h.key for h in store.query_vectors("idx", [1, 1, 1, 1], top_k=10)} == {"a", "b"}


def snapshot(store: LocalVectorStore, queries: np.ndarray) -> list[Any]:
    out = []
    for q in queries:
        for f in (None, {"group": "g1"}, {"$or": [{"n": {"$lt": 30}}, {"tag": "x"}]}):
            hits = store.query_vectors("idx", q.tolist(), top_k=15, filter=f)
            out.append([(h.key, round(h.distance, 6), h.metadata) for h in hits])
    return out


def test_compaction_keeps_results_identical(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path, compact_min_dead=10**9)
    store.create_index(spec("idx", 16, non_filterable_keys=["text"]))
    vectors = random_vectors(300, 16, seed=4)
    meta = [{"group": f"g{i % 3}", "n": i, "tag": ["x", "y"][i % 2], "text": str(i)} for i in range(300)]
    store.put_vectors("idx", records(vectors, metadata=meta)[:150])
    store.put_vectors("idx", records(vectors, metadata=meta)[150:])
    store.put_vectors("idx", records(random_vectors(100, 16, seed=5), metadata=meta[:100]))  # overwrite 100
    store.delete_vectors("idx", [f"k{i:04d}" for i in range(200, 260)])
    other = LocalVectorStore(tmp_path)  # another opener (as another process would) holds the old mapping
    queries = random_vectors(4, 16, seed=6)
    before = snapshot(store, queries)
    assert snapshot(other, queries) == before
    assert store.compact("idx") == 160
    assert store.compact("idx") == 0
    assert sorted(p.name for p in (tmp_path / "idx").glob("vectors.*")) == ["vectors.1.f32"]
    assert snapshot(store, queries) == before
    assert snapshot(other, queries) == before  # it follows the new generation
    assert snapshot(LocalVectorStore(tmp_path), queries) == before
    assert store.get_index("idx").vector_count == 240
    assert store.integrity_check("idx") == []
    store.put_vectors("idx", [VectorRecord(key="k0250", data=vectors[250].tolist(), metadata=meta[250])])
    assert store.query_vectors("idx", vectors[250].tolist(), top_k=1)[0].key == "k0250"


def test_automatic_compaction(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path, compact_min_dead=20, compact_ratio=0.5)
    store.create_index(spec("idx", 8))
    store.put_vectors("idx", records(random_vectors(40, 8)))
    store.delete_vectors("idx", [f"k{i:04d}" for i in range(15)])  # 15 dead: below the count threshold
    assert (tmp_path / "idx" / "vectors.0.f32").exists()
    store.delete_vectors("idx", [f"k{i:04d}" for i in range(15, 25)])  # 25 dead of 40 rows
    assert [p.name for p in (tmp_path / "idx").glob("vectors.*")] == ["vectors.1.f32"]
    assert store.get_index("idx").vector_count == 15
    assert len(store.query_vectors("idx", [1.0] * 8, top_k=100)) == 15
    assert store.integrity_check("idx") == []


def test_reopen_and_cross_instance_changes(tmp_path: Path) -> None:
    stamp = EmbedderStamp(provider="local", model="clip", dimension=4)
    a = LocalVectorStore(tmp_path)
    a.create_index(spec("idx", 4, non_filterable_keys=["text"], embedder=stamp))
    a.put_vectors("idx", [VectorRecord(key="x", data=[1, 2, 3, 4], metadata={"text": "hi"})])
    b = LocalVectorStore(tmp_path)
    info = b.get_index("idx")
    assert (info.embedder, info.non_filterable_keys, info.vector_count) == (stamp, ["text"], 1)
    assert b.query_vectors("idx", [1, 2, 3, 4], top_k=1)[0].metadata == {"text": "hi"}
    (tmp_path / ".tmp-junk-1").mkdir()  # leftovers of a crashed create are not indexes
    assert [i.name for i in b.list_indexes()] == ["idx"]
    b.delete_index("idx")
    with pytest.raises(IndexNotFound):
        a.query_vectors("idx", [1, 2, 3, 4], top_k=1)
    b.create_index(spec("idx", 2))
    a.put_vectors("idx", [VectorRecord(key="y", data=[1, 0])])  # `a` follows the recreated index
    assert a.get_index("idx").dimension == 2 and a.get_index("idx").vector_count == 1


def test_integrity_check_reports_damage(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path)
    store.create_index(spec("idx", 4))
    store.put_vectors("idx", [VectorRecord(key=f"k{i}", data=[1, i, 0, 0]) for i in range(3)])
    os.truncate(tmp_path / "idx" / "vectors.0.f32", 16)  # lose committed rows
    problems = LocalVectorStore(tmp_path).integrity_check("idx")
    assert problems and "fewer than 3 committed rows" in problems[0]


def test_saved_filter_cache_matches_the_rows_and_a_damaged_one_is_rebuilt(tmp_path: Path) -> None:
    from stores_support import varied_metadata

    from nova_mcp_server.stores.filters import matches, validate_filter

    meta = varied_metadata(240, seed=9)
    vectors = random_vectors(240, 8, seed=9)
    filters = [
        {"modality": "TEXT"},
        {"tags": {"$eq": "red"}},
        {"$and": [{"page": {"$lt": 3}}, {"flag": {"$ne": True}}, {"modality": {"$in": ["AUDIO", "VIDEO"]}}]},
        {"start_s": {"$gte": 20}},
    ]
    writer = LocalVectorStore(tmp_path)
    writer.create_index(spec("idx", 8, non_filterable_keys=["text"]))
    batch = records(vectors, metadata=meta)
    for start in range(0, 240, 80):
        writer.put_vectors("idx", batch[start : start + 80])
    writer.close()
    saved = list((tmp_path / "idx").glob("columns.*.npz"))
    assert len(saved) == 1, "closing saves the filter cache"

    def expected(flt: dict[str, Any]) -> set[str]:
        compiled = validate_filter(flt, ["text"])
        return {f"k{i:04d}" for i, m in enumerate(meta) if matches(m, compiled)}

    def found(store: LocalVectorStore, flt: dict[str, Any]) -> set[str]:
        return {h.key for h in store.query_vectors("idx", vectors[0].tolist(), top_k=100, filter=flt)}

    assert all(0 < len(expected(flt)) <= 100 for flt in filters), "each filter fits in one top_k=100 answer"
    for flt in filters:
        assert found(LocalVectorStore(tmp_path), flt) == expected(flt), flt

    saved[0].write_bytes(b"not an npz file")
    reader = LocalVectorStore(tmp_path)
    for flt in filters:
        assert found(reader, flt) == expected(flt), flt
    assert reader.integrity_check("idx") == []
