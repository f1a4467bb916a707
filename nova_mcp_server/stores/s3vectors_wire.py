"""The PutVectors request body, built by us instead of botocore's serialiser.

botocore validates and serialises a `put_vectors` call one float at a time in Python: about 0.6 s of CPU
(holding the GIL) for a 500 x 1024 batch, which caps ingestion near 800 vectors/s per core and stalls
searches meanwhile. Here the body is orjson over the float32 rows (shortest float32 text that reads back to
the same float32), a few milliseconds per batch (`benchmarks/put_vectors.py`).

It stays a normal botocore call, signed, retried and endpoint-resolved as usual: `PrebuiltVectors` is a
one-item list botocore validates and serialises cheaply; two handlers on the client's event system carry
our bytes from ``before-parameter-build`` to ``before-call``, where they replace the serialised body. A
client without botocore's event system (a test double) gets the plain parameters instead.

The body has exactly the members of botocore's model (`vectorBucketName`, `indexName`, `vectors[]` with
`key`, `data.float32`, `metadata`), so parsing it back gives what botocore itself would have sent, float32
for float32 (`tests/test_s3vectors_wire.py` compares the two).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from nova_mcp_server.aws_retry import unwrap

MAX_BODY_BYTES = 19 * 1024 * 1024  # the service takes 20 MiB per request; our sizes are exact, keep 1 MiB spare
_CONTEXT_KEY = "nova_mcp_put_vectors_body"
_HANDLER_ID = "nova-mcp-put-vectors-body"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode_item(key: str, row: np.ndarray, metadata: Mapping[str, Any] | None) -> bytes:
    """One ``vectors[]`` entry as JSON bytes; ``row`` is a 1-D float32 array."""
    item: dict[str, Any] = {"key": key, "data": {"float32": np.ascontiguousarray(row, dtype=np.float32)}}
    if metadata is not None:
        item["metadata"] = metadata
    return orjson.dumps(item, option=_OPTIONS)


def body_of(ids: Mapping[str, str], items: Sequence[bytes]) -> bytes:
    """The whole PutVectors body from the index ids and encoded items, copied once (a 500 x 1024 body is
    ~6 MB: concatenating the parts would copy it three more times)."""
    head = orjson.dumps(dict(ids))[:-1]  # '{"vectorBucketName":"..","indexName":".."'
    parts = [head + b',"vectors":[']
    for i, item in enumerate(items):
        if i:
            parts.append(b",")
        parts.append(item)
    parts.append(b"]}")
    return b"".join(parts)


def chunks(
    ids: Mapping[str, str], items: Sequence[tuple[str, bytes]], limit: int | None = None
) -> Iterator[tuple[list[str], bytes]]:
    """Split encoded items into bodies of at most ``limit`` bytes (default MAX_BODY_BYTES); yields (keys, body)."""
    limit = MAX_BODY_BYTES if limit is None else limit
    overhead = len(body_of(ids, []))
    keys: list[str] = []
    batch: list[bytes] = []
    size = overhead
    for key, item in items:
        extra = len(item) + (1 if batch else 0)
        if batch and size + extra > limit:
            yield keys, body_of(ids, batch)
            keys, batch, size = [], [], overhead
            extra = len(item)
        keys.append(key)
        batch.append(item)
        size += extra
    if batch:
        yield keys, body_of(ids, batch)


class PrebuiltVectors(list[dict[str, Any]]):
    """What `put_vectors` receives as ``vectors``: one cheap placeholder item, plus the real body."""

    def __init__(self, first_key: str, body: bytes, count: int | None = None) -> None:
        super().__init__([{"key": first_key, "data": {"float32": [1.0]}}])
        self.body = body
        self.vector_count = count  # how many vectors the body holds (for counting proxies; botocore sees one)


def _stash_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    vectors = params.get("vectors")
    if isinstance(vectors, PrebuiltVectors):
        context[_CONTEXT_KEY] = vectors.body


def _swap_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    body = context.pop(_CONTEXT_KEY, None)
    if body is not None:
        params["body"] = body


def install(client: Any) -> bool:
    """Register the body handlers on a botocore s3vectors client; False when it has no event system."""
    raw = unwrap(client)
    meta = getattr(raw, "meta", None)
    events = getattr(meta, "events", None)
    service_model = getattr(meta, "service_model", None)
    if events is None or getattr(service_model, "service_name", None) != "s3vectors":
        return False
    if not hasattr(raw, "_make_api_call"):  # not a botocore client (a wrapper forwarding .meta)
        return False
    events.register("before-parameter-build.s3vectors.PutVectors", _stash_body, unique_id=_HANDLER_ID + "-stash")
    events.register_first("before-call.s3vectors.PutVectors", _swap_body, unique_id=_HANDLER_ID + "-swap")
    return True


def plain_params(body: bytes) -> list[dict[str, Any]]:
    """The ``vectors`` parameter equivalent to ``body`` (for clients without the event system)."""
    return list(orjson.loads(body)["vectors"])
