"""S3VectorsStore as S3 Vectors behaves today: paginated queries, index modes, tags, exact enumeration.

The service is moto plus `fakes.s3vectors.S3VectorsEmulator` (written from the docs, with its own filter
evaluator), set to answer in pages smaller than top_k and, for old buckets, in CLASSIC mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from fakes.s3vectors import S3VectorsEmulator
from moto import mock_aws

from nova_mcp_server.errors import AccessDenied, BackendUnavailable, InvalidInput
from nova_mcp_server.services.catalog import summary
from nova_mcp_server.stores import enumerate as en
from nova_mcp_server.stores.base import EmbedderStamp, IndexSpec, VectorRecord
from nova_mcp_server.stores.s3vectors import S3VectorsStore

BUCKET = "aws-test-vectors"
DIM = 8


@pytest.fixture
def emulator() -> Iterator[S3VectorsEmulator]:
    with mock_aws():
        yield S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1"))


def make_store(emulator: S3VectorsEmulator) -> S3VectorsStore:
    return S3VectorsStore(emulator, BUCKET)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def source_records(sid: str, n: int, seed: int = 0, **meta: Any) -> list[VectorRecord]:
    matrix = vectors(n, seed)
    return [
        VectorRecord(key=f"{sid}-{i:05d}", data=row.tolist(), metadata={"source_id": sid, "segment": i, **meta})
        for i, row in enumerate(matrix)
    ]


def put_all(store: S3VectorsStore, index: str, records: list[VectorRecord]) -> None:
    for start in range(0, len(records), 500):
        store.put_vectors(index, records[start : start + 500])


def exact(records: list[VectorRecord], query: np.ndarray, k: int, keep: Any = lambda r: True) -> list[str]:
    scored = []
    q = query.astype(np.float64)
    for r in records:
        if not keep(r):
            continue
        x = np.asarray(r.data, dtype=np.float32).astype(np.float64)
        scored.append((1 - float(x @ q) / float(np.linalg.norm(x) * np.linalg.norm(q)), r.key))
    return [key for _, key in sorted(scored)[:k]]


# ---- pagination -----------------------------------------------------------------------------------------


def test_query_follows_next_token_until_top_k(emulator: S3VectorsEmulator) -> None:
    """80 vectors, top_k 60, a 30-result page: all 60 hits, the exact ones, in order (was: 30)."""
    emulator.page_size = 30
    store = make_store(emulator)
    store.create_index(IndexSpec(name="idx", dimension=DIM))
    records = source_records("s", 80)
    put_all(store, "idx", records)
    query = vectors(1, seed=9)[0]
    hits = store.query_vectors("idx", query.tolist(), top_k=60)
    assert [h.key for h in hits] == exact(records, query, 60)
    pages = [p for op, p in emulator.calls if op == "query_vectors"]
    assert len(pages) == 2 and pages[1]["nextToken"] and pages[1]["topK"] == pages[0]["topK"] == 60
    assert pages[1]["queryVector"] == pages[0]["queryVector"]


def test_a_page_token_that_repeats_stops_the_loop(emulator: S3VectorsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(emulator)
    store.create_index(IndexSpec(name="idx", dimension=DIM))
    monkeypatch.setattr(
        store.client, "query_vectors", lambda **_: {"vectors": [{"key": "a", "distance": 0.1}], "nextToken": "same"}
    )
    with pytest.raises(BackendUnavailable, match="same page token twice"):
        store.query_vectors("idx", [1.0] * DIM, top_k=5)


# ---- index modes ----------------------------------------------------------------------------------------


def test_new_indexes_are_switched_to_enhanced(emulator: S3VectorsEmulator) -> None:
    emulator.default_mode = "CLASSIC"  # a bucket created before 2026-09-30
    store = make_store(emulator)
    info = store.create_index(IndexSpec(name="idx", dimension=DIM))
    assert info.index_mode == "ENHANCED"
    assert ("update_index_mode", {"vectorBucketName": BUCKET, "indexName": "idx", "indexMode": "ENHANCED"}) in (
        emulator.calls
    )
    assert make_store(emulator).get_index("idx").index_mode == "ENHANCED"
    assert [i.index_mode for i in make_store(emulator).list_indexes()] == ["ENHANCED"]


def test_a_classic_index_is_reported_and_can_be_switched(emulator: S3VectorsEmulator) -> None:
    store = make_store(emulator)
    store.create_index(IndexSpec(name="old", dimension=DIM))
    emulator.update_index_mode(vectorBucketName=BUCKET, indexName="old", indexMode="CLASSIC")  # someone else
    fresh = make_store(emulator)
    assert fresh.get_index("old").index_mode == "CLASSIC"
    assert summary(fresh.get_index("old")).index_mode == "CLASSIC"  # what list_indexes shows the agent
    assert fresh.update_index_mode("old", "ENHANCED").index_mode == "ENHANCED"
    assert emulator.mode_of(BUCKET, "old") == "ENHANCED"
    with pytest.raises(InvalidInput, match="CLASSIC, ENHANCED"):
        fresh.update_index_mode("old", "FAST")


def test_denied_update_index_mode_leaves_classic_said(
    emulator: S3VectorsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.default_mode = "CLASSIC"
    store = make_store(emulator)

    def deny(**_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
            "UpdateIndexMode",
        )

    monkeypatch.setattr(store.client, "update_index_mode", deny)
    assert store.create_index(IndexSpec(name="idx", dimension=DIM)).index_mode == "CLASSIC"


def classic_store(emulator: S3VectorsEmulator) -> S3VectorsStore:
    """An index left in CLASSIC mode whose filtered queries see only the top_k nearest candidates."""
    emulator.default_mode = "CLASSIC"
    store = make_store(emulator)
    store.create_index(IndexSpec(name="idx", dimension=DIM))
    emulator.update_index_mode(vectorBucketName=BUCKET, indexName="idx", indexMode="CLASSIC")
    return make_store(emulator)


def test_the_emulator_under_fills_classic_filtered_queries(emulator: S3VectorsEmulator) -> None:
    """The double can fail: in CLASSIC mode a selective filter returns fewer than top_k."""
    store = classic_store(emulator)
    records = source_records("big", 200) + source_records("small", 10, seed=5)
    put_all(store, "idx", records)
    query = vectors(1, seed=9)[0]
    raw = emulator.query_vectors(
        vectorBucketName=BUCKET,
        indexName="idx",
        topK=10,
        queryVector={"float32": query.tolist()},
        filter={"source_id": "small"},
    )
    assert len(raw["vectors"]) < 10


def test_filtered_search_on_a_classic_index_stays_exact(emulator: S3VectorsEmulator) -> None:
    emulator.page_size = 4
    store = classic_store(emulator)
    records = source_records("big", 200) + source_records("small", 10, seed=5)
    put_all(store, "idx", records)
    query = vectors(1, seed=9)[0]
    hits = store.query_vectors("idx", query.tolist(), top_k=10, filter={"source_id": "small"})
    assert [h.key for h in hits] == exact(records, query, 10, lambda r: r.metadata["source_id"] == "small")
    sent = [p for op, p in emulator.calls if op == "query_vectors"]
    assert all(p["queryMode"] == "ENHANCED" for p in sent) and len(sent) == 3  # pages of 4


# ---- tags: the embedder stamp ---------------------------------------------------------------------------


def test_stamp_written_as_tags_and_read_back(emulator: S3VectorsEmulator) -> None:
    stamp = EmbedderStamp(provider="nova", model="amazon.nova-2-multimodal-embeddings-v1:0", dimension=DIM)
    make_store(emulator).create_index(IndexSpec(name="idx", dimension=DIM, embedder=stamp))
    create = next(p for op, p in emulator.calls if op == "create_index")
    assert create["tags"]["nova-mcp:model"] == stamp.model
    assert make_store(emulator).get_index("idx").embedder == stamp


def test_denied_list_tags_is_an_error_not_a_missing_stamp(
    emulator: S3VectorsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = EmbedderStamp(provider="nova", model="m", dimension=DIM)
    make_store(emulator).create_index(IndexSpec(name="idx", dimension=DIM, embedder=stamp))
    fresh = make_store(emulator)
    message = "User AKIAIOSFODNN7EXAMPLE is not authorized to perform: s3vectors:ListTagsForResource"

    def deny(**_: Any) -> Any:
        raise ClientError(
            {
                "Error": {"Code": "AccessDeniedException", "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            },
            "ListTagsForResource",
        )

    monkeypatch.setattr(fresh.client, "list_tags_for_resource", deny)
    with pytest.raises(AccessDenied) as info:
        fresh.get_index("idx")
    assert "s3vectors:ListTagsForResource" in info.value.text and "AKIA" not in info.value.text


# ---- enumeration, delete and re-index of a shrunk source: exact under pages and CLASSIC --------------------


@pytest.mark.parametrize("mode", ["ENHANCED", "CLASSIC"])
def test_shrunk_source_reindex_delete_and_search_stay_exact(emulator: S3VectorsEmulator, mode: str) -> None:
    emulator.page_size = 7
    emulator.list_page_size = 50
    store = classic_store(emulator) if mode == "CLASSIC" else make_store(emulator)
    if mode == "ENHANCED":
        store.create_index(IndexSpec(name="idx", dimension=DIM))
    others = source_records("other", 300, seed=1)
    put_all(store, "idx", others)
    put_all(store, "idx", source_records("src", 120, seed=2))

    def key_for(n: int) -> str:
        return f"src-{n:05d}"

    assert en.existing_keys(store, "idx", key_for) == [key_for(n) for n in range(120)]
    assert en.keys_with_prefix(store, "idx", "src-") == [key_for(n) for n in range(120)]

    # re-index the source shrunk to 45 segments: new content over the same keys, then drop the stale ones
    shrunk = source_records("src", 45, seed=3)
    put_all(store, "idx", shrunk)
    stale = [k for k in en.existing_keys(store, "idx", key_for, start=45)]
    assert stale == [key_for(n) for n in range(45, 120)]
    assert en.delete_keys(store, "idx", stale) == 75
    assert en.existing_keys(store, "idx", key_for) == [key_for(n) for n in range(45)]

    query = vectors(1, seed=11)[0]
    everything = others + shrunk
    hits = store.query_vectors("idx", query.tolist(), top_k=20, filter={"source_id": "src"})
    assert [h.key for h in hits] == exact(everything, query, 20, lambda r: r.metadata["source_id"] == "src")
    assert [h.key for h in store.query_vectors("idx", query.tolist(), top_k=30)] == exact(everything, query, 30)

    # delete the source: found by key, never by a filtered query
    before = len([op for op, _ in emulator.calls if op == "query_vectors"])
    removed = en.delete_until_gone(store, "idx", lambda: en.existing_keys(store, "idx", key_for))
    assert removed == 45 and en.existing_keys(store, "idx", key_for) == []
    assert len([op for op, _ in emulator.calls if op == "query_vectors"]) == before
    assert len(en.keys_with_prefix(store, "idx", "other-")) == 300


def test_a_key_seen_again_is_not_deleted_twice_and_the_loop_ends(emulator: S3VectorsEmulator) -> None:
    store = make_store(emulator)
    store.create_index(IndexSpec(name="idx", dimension=DIM))
    put_all(store, "idx", source_records("s", 3))
    stale_view = ["s-00000", "s-00001", "s-00002"]  # a find() that keeps answering what it saw first
    assert en.delete_until_gone(store, "idx", lambda: stale_view) == 3
    assert [op for op, _ in emulator.calls].count("delete_vectors") == 1


def test_existing_keys_looks_past_a_gap_of_missing_ordinals(emulator: S3VectorsEmulator) -> None:
    store = make_store(emulator)
    store.create_index(IndexSpec(name="idx", dimension=DIM))
    records = source_records("s", 700)
    put_all(store, "idx", records[:100] + records[300:700])  # a failed batch left ordinals 100-299 missing
    found = en.existing_keys(store, "idx", lambda n: f"s-{n:05d}")
    assert found == [r.key for r in records[:100] + records[300:700]]


@pytest.mark.parametrize("mode", ["ENHANCED", "CLASSIC"])
def test_starts_with_reaches_the_service_filter_first(emulator: S3VectorsEmulator, mode: str) -> None:
    store = classic_store(emulator) if mode == "CLASSIC" else make_store(emulator)
    if mode == "ENHANCED":
        store.create_index(IndexSpec(name="idx", dimension=DIM))
    records = source_records("docs", 30, path="s3://b/docs/a.txt") + source_records("imgs", 30, 4, path="s3://b/img/x")
    put_all(store, "idx", records)
    query = vectors(1, seed=9)[0]
    hits = store.query_vectors("idx", query.tolist(), top_k=10, filter={"path": {"$startsWith": "s3://b/docs/"}})
    assert [h.key for h in hits] == exact(records, query, 10, lambda r: r.metadata["path"].startswith("s3://b/docs/"))


def test_filters_over_100_constraints_are_refused_before_sending(emulator: S3VectorsEmulator) -> None:
    store = make_store(emulator)
    store.create_index(IndexSpec(name="idx", dimension=DIM))
    store.query_vectors("idx", [1.0] * DIM, top_k=1, filter={"n": {"$in": list(range(100))}})
    sent = len(emulator.calls)
    with pytest.raises(InvalidInput, match="101 constraints"):
        store.query_vectors("idx", [1.0] * DIM, top_k=1, filter={"$and": [{"n": {"$in": list(range(100))}}, {"m": 1}]})
    assert len(emulator.calls) == sent
