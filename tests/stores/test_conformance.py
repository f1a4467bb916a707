"""One suite, every store: the same inputs are accepted or rejected and the same data ranks the same way.

`s3vectors` runs on moto plus `stores_support.S3VectorsEmulator` (moto lacks query_vectors); its query
answers come from the reference evaluator, so agreement here means the local store's vectorised search
and filters match the reference semantics, and both stores validate identically.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from stores_support import (
    brute_force,
    make_store,
    random_vectors,
    records,
    s3vectors_store,
    spec,
    varied_metadata,
)

from nova_mcp_server.errors import (
    AccessDenied,
    BackendUnavailable,
    DimensionMismatch,
    IndexNotFound,
    InvalidInput,
    LimitExceeded,
)
from nova_mcp_server.stores.base import EmbedderStamp, VectorRecord, VectorStore
from nova_mcp_server.stores.filters import matches, validate_filter

STORES = ["local", "s3vectors"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with make_store(request.param, tmp_path) as s:
        yield s


def rec(key: str, data: list[float], metadata: dict[str, Any] | None = None) -> VectorRecord:
    return VectorRecord(key=key, data=data, metadata=metadata)


def error_of(fn: Any, *args: Any, **kwargs: Any) -> tuple[type[Exception], str]:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return type(info.value), str(info.value)


# ---- indexes --------------------------------------------------------------------------------------------


def test_protocol_and_index_lifecycle(store: Any) -> None:
    assert isinstance(store, VectorStore)
    stamp = EmbedderStamp(provider="local", model="clip-vit-b-32", dimension=8)
    created = store.create_index(spec("docs", 8, non_filterable_keys=["text"], embedder=stamp))
    store.create_index(spec("l2.index", 3, metric="euclidean"))
    info = store.get_index("docs")
    assert (info.name, info.dimension, info.metric, info.non_filterable_keys) == ("docs", 8, "cosine", ["text"])
    assert info.embedder == stamp == created.embedder
    assert store.get_index("l2.index").metric == "euclidean"
    assert store.get_index("l2.index").embedder is None
    assert [i.name for i in store.list_indexes()] == ["docs", "l2.index"]
    with pytest.raises(InvalidInput, match="already exists"):
        store.create_index(spec("docs", 8))
    store.delete_index("docs")
    assert [i.name for i in store.list_indexes()] == ["l2.index"]
    with pytest.raises(IndexNotFound):
        store.get_index("docs")
    with pytest.raises(IndexNotFound):
        store.delete_index("docs")
    recreated = store.create_index(spec("docs", 4))  # the name is free again, with a new spec
    assert store.get_index("docs").dimension == recreated.dimension == 4


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put_vectors("nope", [rec("a", [1.0, 0, 0])]),
        lambda s: s.get_vectors("nope", ["a"]),
        lambda s: s.list_vectors("nope"),
        lambda s: s.delete_vectors("nope", ["a"]),
        lambda s: s.query_vectors("nope", [1.0, 0, 0], top_k=1),
    ],
)
def test_missing_index(store: Any, call: Any) -> None:
    with pytest.raises(IndexNotFound, match="Index 'nope' does not exist"):
        call(store)


@pytest.mark.parametrize("name", ["ab", "UPPER", "-lead", "trail-", "has_underscore", "x" * 64])
def test_invalid_index_names(store: Any, name: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid index name"):
        store.create_index(spec("valid-name").model_copy(update={"name": name}))


def test_embedder_stamp_must_match_dimension(store: Any) -> None:
    with pytest.raises(DimensionMismatch):
        store.create_index(spec("idx", 8, embedder=EmbedderStamp(provider="p", model="m", dimension=16)))


# ---- put / get / list / delete --------------------------------------------------------------------------


def test_put_get_overwrite_delete(store: Any) -> None:
    store.create_index(spec("idx", 3, non_filterable_keys=["text"]))
    store.put_vectors(
        "idx", [rec("a", [1, 0, 0], {"n": 1, "text": "A"}), rec("b", [0.2, 1, 0]), rec("c", [0.1, 0.2, 0.3])]
    )
    got = store.get_vectors("idx", ["c", "missing", "a", "c"], return_data=True)
    assert [g.key for g in got] == ["c", "a"]  # order of the request, missing absent, duplicates once
    assert got[0].data == np.float32([0.1, 0.2, 0.3]).tolist()  # stored as float32
    assert got[1].metadata == {"n": 1, "text": "A"}
    assert store.get_vectors("idx", ["b"])[0].metadata == {}
    bare = store.get_vectors("idx", ["a"], return_metadata=False)[0]
    assert bare.data is None and bare.metadata is None

    store.put_vectors("idx", [rec("a", [0, 0, 1], {"n": 2})])  # overwrite replaces data and metadata
    again = store.get_vectors("idx", ["a"], return_data=True)[0]
    assert again.data == [0, 0, 1] and again.metadata == {"n": 2}
    hits = store.query_vectors("idx", [1, 0, 0], top_k=3)
    assert [h.key for h in hits] == ["c", "b", "a"]  # the old [1,0,0] for 'a' is gone
    assert len(store.list_vectors("idx").vectors) == 3

    store.delete_vectors("idx", ["a", "never-existed"])
    assert store.get_vectors("idx", ["a"]) == []
    assert {h.key for h in store.query_vectors("idx", [0, 0, 1], top_k=10)} == {"b", "c"}
    store.put_vectors("idx", [rec("a", [0, 0, 1])])  # re-put after delete
    assert store.query_vectors("idx", [0, 0, 1], top_k=1)[0].key == "a"
    if store.backend == "local":
        assert store.get_index("idx").vector_count == 3


def test_list_pagination(store: Any) -> None:
    store.create_index(spec("idx", 4))
    vectors = random_vectors(25, 4, seed=1)
    store.put_vectors("idx", records(vectors, metadata=[{"i": i} for i in range(25)]))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.list_vectors("idx", max_results=10, next_token=token, return_metadata=True, return_data=True)
        assert 1 <= len(page.vectors) <= 10
        for v in page.vectors:
            i = int(v.key[1:])
            assert v.metadata == {"i": i} and v.data == vectors[i].tolist()
        seen += [v.key for v in page.vectors]
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert sorted(seen) == [f"k{i:04d}" for i in range(25)] and len(seen) == 25 and pages == 3
    plain = store.list_vectors("idx", max_results=1000)
    assert len(plain.vectors) == 25 and plain.next_token is None
    assert plain.vectors[0].data is None and plain.vectors[0].metadata is None
    with pytest.raises(InvalidInput, match="next_token is not a token this store issued"):
        store.list_vectors("idx", next_token="garbage!")


# ---- limits ---------------------------------------------------------------------------------------------


def test_batch_and_top_k_limits(store: Any) -> None:
    store.create_index(spec("idx", 2, metric="euclidean"))
    many = [rec(f"k{i}", [float(i), 1.0]) for i in range(501)]
    outcomes = [
        error_of(store.put_vectors, "idx", many),
        error_of(store.put_vectors, "idx", []),
        error_of(store.get_vectors, "idx", [f"k{i}" for i in range(101)]),
        error_of(store.delete_vectors, "idx", [f"k{i}" for i in range(501)]),
        error_of(store.query_vectors, "idx", [1.0, 1.0], top_k=0),
        error_of(store.query_vectors, "idx", [1.0, 1.0], top_k=101),
        error_of(store.list_vectors, "idx", max_results=1001),
        error_of(store.put_vectors, "idx", [rec("x" * 1025, [1.0, 1.0])]),
        error_of(store.put_vectors, "idx", [rec("d", [1.0, 1.0]), rec("d", [2.0, 1.0])]),
    ]
    kinds = [k for k, _ in outcomes]
    assert kinds == [LimitExceeded, InvalidInput, LimitExceeded, LimitExceeded, LimitExceeded, LimitExceeded] + [
        LimitExceeded,
        InvalidInput,
        InvalidInput,
    ]
    assert "at most 500" in outcomes[0][1] and "at most 100" in outcomes[2][1]
    store.put_vectors("idx", many[:500])  # exactly at the limits is fine
    assert len(store.get_vectors("idx", [f"k{i}" for i in range(100)])) == 100
    assert len(store.query_vectors("idx", [1.0, 1.0], top_k=100)) == 100
    store.delete_vectors("idx", [f"k{i}" for i in range(500)])
    assert store.list_vectors("idx").vectors == []


def test_vector_checks(store: Any) -> None:
    store.create_index(spec("cos", 3))
    store.create_index(spec("l2.x", 3, metric="euclidean"))
    for call in (
        lambda: store.put_vectors("cos", [rec("a", [1.0, 2.0])]),
        lambda: store.query_vectors("cos", [1.0, 2.0, 3.0, 4.0], top_k=1),
    ):
        kind, text = error_of(call)
        assert kind is DimensionMismatch and "the index expects 3" in text
    kind, text = error_of(store.put_vectors, "cos", [rec("ok", [1, 1, 1]), rec("z", [0.0, 0.0, 0.0])])
    assert kind is InvalidInput and "'z' is all zeros" in text
    assert error_of(store.query_vectors, "cos", [0, 0, 0], top_k=1)[0] is InvalidInput
    assert error_of(store.put_vectors, "cos", [rec("n", [1.0, float("nan"), 0])])[0] is InvalidInput
    assert error_of(store.put_vectors, "cos", [rec("big", [1e39, 0, 0])])[0] is InvalidInput  # inf as float32
    assert store.list_vectors("cos").vectors == []  # a rejected batch writes nothing
    store.put_vectors("l2.x", [rec("zero", [0.0, 0.0, 0.0]), rec("one", [1.0, 0, 0])])  # fine under euclidean
    hits = store.query_vectors("l2.x", [0.0, 0.0, 0.0], top_k=2)
    assert [(h.key, round(h.distance, 6)) for h in hits] == [("zero", 0.0), ("one", 1.0)]


def test_metadata_checks(store: Any) -> None:
    store.create_index(spec("idx", 2, non_filterable_keys=["text"]))
    v = [1.0, 0.0]
    ok = {"text": "x" * 30_000, "source": "s" * 1_900}  # big non-filterable, filterable under 2 KB
    store.put_vectors("idx", [rec("ok", v, ok)])
    assert store.get_vectors("idx", ["ok"])[0].metadata == ok
    cases = [
        ({f"k{i}": i for i in range(51)}, LimitExceeded, "at most 50"),
        ({"source": "s" * 2100}, LimitExceeded, "Filterable metadata of vector 'bad' is"),
        ({"text": "x" * 41_000}, LimitExceeded, "at most 40960 bytes"),
        ({"nested": {"a": 1}}, InvalidInput, "values must be strings, numbers, booleans"),
        ({"nested": [[1]]}, InvalidInput, "a nested list"),
        ({"n": float("nan")}, InvalidInput, "numbers must be finite"),
        ({"none": None}, InvalidInput, "is null; values must be"),
        ({"$op": 1}, InvalidInput, "don't start with '$'"),
    ]
    for metadata, kind, fragment in cases:
        got_kind, text = error_of(store.put_vectors, "idx", [rec("bad", v, metadata)])
        assert got_kind is kind and fragment in text, (metadata.keys(), text)
    assert store.get_vectors("idx", ["bad"]) == []
    store.put_vectors("idx", [rec("multi", v, {"é": "ü" * 600})])  # 1.2 KB of UTF-8, under 2 KB


# ---- search ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ranking_matches_brute_force(store: Any, metric: str) -> None:
    dim = 16
    vectors = random_vectors(300, dim, seed=7)
    keys = [f"k{i:04d}" for i in range(300)]
    store.create_index(spec("idx", dim, metric=metric))
    batch = records(vectors)
    store.put_vectors("idx", batch[:200])
    store.put_vectors("idx", batch[200:])
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = rng.standard_normal(dim).astype(np.float32)
        expected = brute_force(vectors, keys, q, 10, metric)
        hits = store.query_vectors("idx", q.tolist(), top_k=10)
        assert [h.key for h in hits] == [k for k, _ in expected]
        assert [h.distance for h in hits] == pytest.approx([d for _, d in expected], rel=1e-6, abs=1e-6)
        bare = store.query_vectors("idx", q.tolist(), top_k=3, return_metadata=False, return_distance=False)
        assert [(h.key, h.distance, h.metadata) for h in bare] == [(k, None, None) for k, _ in expected[:3]]


FILTERS: list[dict[str, Any]] = [
    {"modality": "IMAGE"},
    {"modality": {"$eq": "TEXT"}},
    {"modality": {"$ne": "TEXT"}},
    {"page": {"$gt": 5}},
    {"page": {"$gte": 5, "$lte": 7}},
    {"start_s": {"$lt": 20}},
    {"modality": {"$in": ["AUDIO", "VIDEO"]}},
    {"modality": {"$nin": ["AUDIO", "VIDEO"]}},
    {"page": {"$nin": [1, 2]}},  # missing page matches
    {"page": {"$ne": 3}},  # missing page matches
    {"tags": "red"},  # list $eq: any element
    {"tags": {"$in": ["green", "x"]}},
    {"tags": {"$nin": ["red"]}},
    {"flag": True},  # true but never 1
    {"flag": 1},  # 1 but never true
    {"flag": {"$exists": True}},
    {"start_s": {"$exists": False}},
    {"$and": [{"modality": "DOCUMENT"}, {"page": {"$lt": 6}}]},
    {"$or": [{"tags": "blue"}, {"flag": False}]},
    {"$or": [{"$and": [{"page": 2}, {"tags": "x"}]}, {"source": "s3://bucket/file3.bin"}]},
    {"source": "s3://bucket/file0.bin", "modality": {"$ne": "AUDIO"}},
    {"source": "s3://bucket/none.bin"},
]


@pytest.mark.parametrize("filter", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_agree_with_reference(store: Any, filter: dict[str, Any]) -> None:
    dim = 8
    n = 120
    vectors = random_vectors(n, dim, seed=11)
    metadata = varied_metadata(n, seed=5)
    keys = [f"k{i:04d}" for i in range(n)]
    store.create_index(spec("idx", dim, non_filterable_keys=["text"]))
    store.put_vectors("idx", records(vectors, metadata=metadata))
    compiled = validate_filter(filter, ["text"])
    allowed = [matches(m, compiled) for m in metadata]
    q = np.random.default_rng(2).standard_normal(dim).astype(np.float32)
    hits = store.query_vectors("idx", q.tolist(), top_k=100, filter=filter)
    expected = brute_force(vectors, keys, q, 100, "cosine", allowed)
    assert [h.key for h in hits] == [k for k, _ in expected]  # every match, when fewer than top_k match
    assert all(h.metadata == metadata[int(h.key[1:])] for h in hits)
    top3 = store.query_vectors("idx", q.tolist(), top_k=3, filter=filter)
    assert [h.key for h in top3] == [k for k, _ in expected[:3]]


def test_filter_semantics_spelled_out(store: Any) -> None:
    """The decided cases, with hand-written expectations rather than the reference evaluator."""
    store.create_index(spec("idx", 2, non_filterable_keys=["text"]))
    store.put_vectors(
        "idx",
        [
            rec("list", [1, 0.1], {"genre": ["drama", "romance"], "flag": True, "text": "t"}),
            rec("scalar", [1, 0.2], {"genre": "drama", "flag": 1}),
            rec("other", [1, 0.3], {"genre": "comedy", "flag": False}),
            rec("bare", [1, 0.4]),
        ],
    )

    def keys(f: dict[str, Any]) -> set[str]:
        return {h.key for h in store.query_vectors("idx", [1, 0], top_k=10, filter=f)}

    assert keys({"genre": "romance"}) == {"list"}
    assert keys({"genre": {"$ne": "drama"}}) == {"other", "bare"}
    assert keys({"genre": {"$nin": ["comedy"]}}) == {"list", "scalar", "bare"}
    assert keys({"flag": True}) == {"list"}
    assert keys({"flag": 1}) == {"scalar"}
    assert keys({"flag": {"$in": [0, 1.0]}}) == {"scalar"}
    assert keys({"genre": {"$exists": False}}) == {"bare"}
    assert keys({}) == {"list", "scalar", "other", "bare"}
    for bad in ({"text": "t"}, {"genre": {"$regex": "d"}}, {"flag": {"$gt": True}}, {"genre": {"$in": []}}):
        kind, text = error_of(store.query_vectors, "idx", [1, 0], top_k=1, filter=bad)
        assert kind is InvalidInput and "Invalid filter" in text


# ---- S3 Vectors only: requests and error mapping --------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with s3vectors_store() as store:
        yield store


def test_s3_requests_are_validated_before_sending(s3: Any) -> None:
    s3.create_index(spec("idx", 3, non_filterable_keys=["text"]))
    s3.client.calls.clear()
    for call in (
        lambda: s3.put_vectors("idx", [rec(f"k{i}", [1.0, 0, 0]) for i in range(501)]),
        lambda: s3.query_vectors("idx", [1.0, 0, 0], top_k=1, filter={"text": "x"}),
        lambda: s3.query_vectors("idx", [1.0, 0, 0], top_k=101),
        lambda: s3.put_vectors("idx", [rec("z", [0.0, 0.0, 0.0])]),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert [c for c, _ in s3.client.calls if c != "get_index"] == []
    s3.put_vectors("idx", [rec("a", [1, 2, 3], {"text": "x", "n": 1})])
    s3.query_vectors("idx", [1.0, 0, 0], top_k=5, filter={"n": {"$gte": 1}})
    put = next(p for c, p in s3.client.calls if c == "put_vectors")
    assert put["vectors"] == [{"key": "a", "data": {"float32": [1.0, 2.0, 3.0]}, "metadata": {"text": "x", "n": 1}}]
    query = next(p for c, p in s3.client.calls if c == "query_vectors")
    assert query["filter"] == {"n": {"$gte": 1}} and query["topK"] == 5


def test_s3_create_index_request_and_tags(s3: Any) -> None:
    stamp = EmbedderStamp(provider="nova", model="amazon.nova-2-multimodal-embeddings-v1:0", dimension=4)
    s3.create_index(spec("idx", 4, non_filterable_keys=["text"], embedder=stamp))
    s3.create_index(spec("plain", 4))
    sent = [p for c, p in s3.client.calls if c == "create_index"]
    assert sent[0]["dataType"] == "float32" and sent[0]["distanceMetric"] == "cosine"
    assert sent[0]["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["text"]}
    assert sent[0]["tags"]["nova-mcp:model"] == stamp.model
    assert "metadataConfiguration" not in sent[1] and "tags" not in sent[1]
    fresh = type(s3)(s3.client, s3.bucket)  # no cache: reads the stamp back from the tags
    assert fresh.get_index("idx").embedder == stamp
    assert fresh.get_index("plain").embedder is None


def test_s3_splits_puts_by_payload(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import nova_mcp_server.stores.s3vectors_wire as wire

    monkeypatch.setattr(wire, "MAX_BODY_BYTES", 2_000)
    s3.create_index(spec("idx", 8))
    s3.put_vectors("idx", records(random_vectors(40, 8)))
    sizes = [len(p["vectors"]) for c, p in s3.client.calls if c == "put_vectors"]
    assert len(sizes) > 1 and sum(sizes) == 40
    assert len(s3.list_vectors("idx", max_results=1000).vectors) == 40


def _raise(code: str, status: int) -> Any:
    def fail(**_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": code, "Message": "boom"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "X"
        )

    return fail


@pytest.mark.parametrize(
    ("code", "status", "kind", "fragment"),
    [
        ("AccessDeniedException", 403, AccessDenied, "s3vectors:QueryVectors and s3vectors:GetVectors"),
        ("TooManyRequestsException", 429, BackendUnavailable, "throttling or unavailable (QueryVectors)"),
        ("ServiceUnavailableException", 503, BackendUnavailable, "Try again later"),
        ("InternalServerException", 500, BackendUnavailable, "(InternalServerException)"),
        ("ValidationException", 400, InvalidInput, "S3 Vectors rejected the request (QueryVectors): boom"),
        ("NotFoundException", 404, IndexNotFound, "Index 'idx' does not exist"),
        ("KmsDisabledException", 400, AccessDenied, "KMS"),
    ],
)
def test_s3_error_mapping(
    s3: Any, monkeypatch: pytest.MonkeyPatch, code: str, status: int, kind: type, fragment: str
) -> None:
    s3.create_index(spec("idx", 2))
    monkeypatch.setattr(s3.client, "query_vectors", _raise(code, status))
    with pytest.raises(kind) as info:
        s3.query_vectors("idx", [1.0, 0.0], top_k=1, filter={"a": 1})
    assert fragment in info.value.text


def test_s3_connection_errors_and_bucket_creation(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.create_index(spec("idx", 2))
    again = type(s3)(s3.client, s3.bucket)  # the bucket exists: ConflictException is fine
    assert [i.name for i in again.list_indexes()] == ["idx"]

    def offline(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://s3vectors.us-east-1.api.aws")

    monkeypatch.setattr(s3.client, "get_vectors", offline)
    with pytest.raises(BackendUnavailable, match="Could not reach Amazon S3 Vectors"):
        s3.get_vectors("idx", ["a"])
