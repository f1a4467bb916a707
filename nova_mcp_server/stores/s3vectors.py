"""Amazon S3 Vectors through boto3 `s3vectors`, with the same validation as the local store.

Every input is checked by the shared `base.check_*` functions and `filters.validate_filter` before a request
is sent, so this store rejects exactly what the local store rejects, with the same messages, and a bad
filter never costs a round trip. Service errors go through the one AWS translator (`aws_errors.translate`):
scrubbed text that names the IAM action to check.

Calls run under the one retry layer (`aws_retry`, a total time budget per call; botocore's own retries are
off in clients `aws.AwsClients` builds). Every paginated call follows ``nextToken`` (QueryVectors too:
a page smaller than ``top_k`` is followed until ``top_k`` hits or the last page), and a token that comes
back twice stops the loop instead of spinning.

Index modes: new indexes are switched to ENHANCED (filters applied before the vector search: exact); an
index that stays CLASSIC (filters in tandem with the search, so a selective filter under-fills) is reported
in `IndexInfo.index_mode`, and its filtered queries ask for ``queryMode=ENHANCED``, which the API allows on
any index. `update_index_mode` switches an index.

The index spec is immutable on S3 Vectors, so it is cached per index after the first `get_index`; the
embedder stamp lives in the index tags `nova-mcp:provider`, `nova-mcp:model`, `nova-mcp:dimension`. A
denied ListTagsForResource is an error naming that action, never a silently missing stamp (the stamp is
what refuses another embedder's vectors).

PutVectors bodies are built by `s3vectors_wire` (orjson over float32), not by botocore's serialiser.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from nova_mcp_server.aws_errors import S3VECTORS, error_code, scrub, translate
from nova_mcp_server.aws_retry import RetryPolicy, retrying
from nova_mcp_server.errors import (
    AccessDenied,
    BackendUnavailable,
    IndexNotFound,
    InvalidInput,
    LimitExceeded,
    NovaError,
)
from nova_mcp_server.stores import s3vectors_wire as wire
from nova_mcp_server.stores.base import (
    MAX_DELETE,
    MAX_GET,
    EmbedderStamp,
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
    check_vector_bucket_name,
    check_vectors,
    index_exists_error,
)
from nova_mcp_server.stores.filters import Leaf, Node, validate_filter

log = logging.getLogger(__name__)

TAG_PREFIX = "nova-mcp:"
TOKEN_PREFIX = "s3v1."
ENHANCED = "ENHANCED"
CLASSIC = "CLASSIC"
INDEX_MODES = (CLASSIC, ENHANCED)
MAX_FILTER_CONSTRAINTS = 100  # documented for ENHANCED (filter-first) queries
# S3 Vectors answers fast: 35 s covers one attempt (5 s connect + 30 s read), 90 s the whole call
DEFAULT_POLICY = RetryPolicy(budget_s=90.0, attempt_timeout_s=35.0, max_attempts=4, base_s=0.2, cap_s=5.0)


def _encode_token(service_token: str | None, offset: int, page: int) -> str:
    raw = json.dumps({"t": service_token, "o": offset, "m": page}).encode()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str | None, int, int]:
    try:
        if token.startswith(TOKEN_PREFIX):
            raw = json.loads(base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :].encode()))
            t, o, m = raw["t"], raw["o"], raw["m"]
            if (t is None or isinstance(t, str)) and isinstance(o, int) and isinstance(m, int) and o >= 0 and m >= 1:
                return t, o, m
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
        pass
    raise InvalidInput("next_token is not a token this store issued.", "Pass the next_token of the previous page.")


class S3VectorsStore:
    """The VectorStore protocol on one S3 vector bucket."""

    backend = "s3vectors"

    def __init__(
        self, client: Any, bucket: str, *, create_bucket: bool = True, retry: RetryPolicy | None = None
    ) -> None:
        self.bucket = check_vector_bucket_name(bucket)
        self._raw_client = client
        self._policy = retry or DEFAULT_POLICY
        self._client: Any = None  # built on first use: a lazy client must stay unbuilt until a call needs it
        self._fast_writes = False
        self._create_bucket = create_bucket
        self._bucket_ready = not create_bucket
        self._specs: dict[str, IndexInfo] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The client under the retry layer (unless it already runs under one), with the fast PutVectors body."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._fast_writes = wire.install(self._raw_client)
                    self._client = retrying(self._raw_client, self._policy)
        return self._client

    # ---- calls and error mapping ------------------------------------------------------------------------

    def _call(self, method: str, index: str | None = None, **params: Any) -> dict[str, Any]:
        """Call ``method``; a ClientError whose code is in ``ok_codes`` (a keyword, not sent) returns {}."""
        ok_codes: tuple[str, ...] = params.pop("ok_codes", ())
        operation = "".join(part.capitalize() for part in method.split("_"))
        try:
            return getattr(self.client, method)(**params)
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc)
            if code in ok_codes:
                return {}
            if index is not None and code in ("NotFoundException", "ValidationException"):
                self._specs.pop(index, None)  # gone, or a stale cached spec is one way to get here
            if code == "ConflictException" and operation == "CreateIndex" and index is not None:
                raise index_exists_error(index) from exc
            shown = {k: v for k, v in params.items() if k != "vectors"}
            raise translate(
                exc,
                service=S3VECTORS,
                operation=operation,
                resource=f"vector bucket '{self.bucket}'",
                params=shown,
                index=index,
                attempts=getattr(exc, "attempts", None),
            ) from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            if self._call("create_vector_bucket", ok_codes=("ConflictException",), vectorBucketName=self.bucket):
                log.info("created vector bucket %s", self.bucket)
        except AccessDenied:  # may exist already; a read-only principal cannot create
            log.warning("cannot create vector bucket %s (access denied); assuming it exists", self.bucket)
        self._bucket_ready = True

    def _ids(self, index: str) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": index}

    # ---- indexes ----------------------------------------------------------------------------------------

    def create_index(self, spec: IndexSpec) -> IndexInfo:
        """Create the index with its embedder stamp as tags, then make sure it is ENHANCED.

        CreateIndex has no mode member (botocore 1.44): an index takes its bucket's default mode (CLASSIC in
        buckets created before 2026-09-30), so a CLASSIC one is switched with UpdateIndexMode. If that is
        denied the index stays CLASSIC, `index_mode` says so, and filtered queries still ask for ENHANCED.
        """
        check_index_spec(spec)
        self._ensure_bucket()
        params: dict[str, Any] = {
            **self._ids(spec.name),
            "dataType": "float32",
            "dimension": spec.dimension,
            "distanceMetric": spec.metric,
        }
        if spec.non_filterable_keys:
            params["metadataConfiguration"] = {"nonFilterableMetadataKeys": list(spec.non_filterable_keys)}
        tags = self._stamp_tags(spec.embedder)
        if tags:
            params["tags"] = tags
        self._call("create_index", spec.name, **params)
        raw = self._call("get_index", spec.name, **self._ids(spec.name))["index"]
        mode = raw.get("indexMode")
        if mode != ENHANCED:
            try:
                self._call("update_index_mode", spec.name, **self._ids(spec.name), indexMode=ENHANCED)
                mode = ENHANCED
            except NovaError as exc:
                log.warning("index %s stays %s: %s", spec.name, mode or "in its default mode", exc.text)
        info = IndexInfo(**spec.model_dump(), created_at=time.time(), index_mode=mode)
        with self._lock:
            self._specs[spec.name] = info
        return info

    def update_index_mode(self, name: str, mode: str = ENHANCED) -> IndexInfo:
        """Switch an index to ``mode`` (ENHANCED for any index; CLASSIC only in buckets made before 2026-09-30)."""
        if mode not in INDEX_MODES:
            raise InvalidInput(f"Index mode {mode!r} is not one of {', '.join(INDEX_MODES)}.")
        self.get_index(name)
        self._call("update_index_mode", name, **self._ids(name), indexMode=mode)
        with self._lock:
            self._specs.pop(name, None)
        info = self.get_index(name)
        if info.index_mode is None:  # the service did not echo it: record what we set
            info = info.model_copy(update={"index_mode": mode})
            with self._lock:
                self._specs[name] = info
        return info

    @staticmethod
    def _stamp_tags(stamp: EmbedderStamp | None) -> dict[str, str]:
        if stamp is None:
            return {}
        return {
            f"{TAG_PREFIX}provider": stamp.provider,
            f"{TAG_PREFIX}model": stamp.model,
            f"{TAG_PREFIX}dimension": str(stamp.dimension),
        }

    def _read_stamp(self, name: str, arn: str | None) -> EmbedderStamp | None:
        """The embedder stamp from the index tags; None when the index has none (created without one).

        Failing to *read* the tags is an error: a silently missing stamp would let another embedder's
        vectors into the index.
        """
        if not arn:
            return None
        tags = self._call("list_tags_for_resource", name, resourceArn=arn).get("tags") or {}
        try:
            return EmbedderStamp(
                provider=tags[f"{TAG_PREFIX}provider"],
                model=tags[f"{TAG_PREFIX}model"],
                dimension=int(tags[f"{TAG_PREFIX}dimension"]),
            )
        except (KeyError, ValueError, TypeError):
            if any(str(k).startswith(TAG_PREFIX) for k in tags):
                log.warning("index %s has an incomplete embedder stamp: %s", name, scrub(str(tags)))
            return None

    def get_index(self, name: str) -> IndexInfo:
        check_index_name(name)
        self._ensure_bucket()
        raw = self._call("get_index", name, **self._ids(name))["index"]
        cached = self._specs.get(name)
        created = raw.get("creationTime")
        mode = raw.get("indexMode") or (cached.index_mode if cached else None)
        info = IndexInfo(
            name=name,
            dimension=raw["dimension"],
            metric=raw["distanceMetric"],
            non_filterable_keys=list((raw.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys", [])),
            embedder=cached.embedder if cached else self._read_stamp(name, raw.get("indexArn")),
            vector_count=None,
            created_at=created.timestamp() if hasattr(created, "timestamp") else None,
            index_mode=mode,
        )
        with self._lock:
            self._specs[name] = info
        return info

    def _spec(self, name: str) -> IndexInfo:
        check_index_name(name)
        cached = self._specs.get(name)
        return cached if cached is not None else self.get_index(name)

    def list_indexes(self) -> list[IndexInfo]:
        self._ensure_bucket()
        infos: dict[str, IndexInfo] = {}
        token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            page = self._call("list_indexes", vectorBucketName=self.bucket, **({"nextToken": token} if token else {}))
            for entry in page.get("indexes", []):
                if entry["indexName"] in infos:
                    continue
                try:
                    infos[entry["indexName"]] = self.get_index(entry["indexName"])
                except IndexNotFound:
                    continue  # deleted meanwhile
            token = _next(page, seen_tokens, "ListIndexes")
            if not token:
                return sorted(infos.values(), key=lambda i: i.name)

    def delete_index(self, name: str) -> None:
        self.get_index(name)  # IndexNotFound for a missing index, as the local store does
        self._call("delete_index", name, **self._ids(name))
        with self._lock:
            self._specs.pop(name, None)

    # ---- vectors ----------------------------------------------------------------------------------------

    def put_vectors(self, index: str, vectors: Sequence[VectorRecord]) -> None:
        info = self._spec(index)
        check_put_batch(vectors)
        matrix = check_vectors(vectors, info.dimension, info.metric)
        items = []
        for record, row in zip(vectors, matrix, strict=True):
            metadata, _ = check_metadata_json(record.metadata, info.non_filterable_keys, key=record.key)
            items.append((record.key, wire.encode_item(record.key, row, metadata)))
        ids = self._ids(index)
        for keys, body in wire.chunks(ids, items):  # exact sizes: 3072-d x 500 with text needs two requests
            vectors_param = (
                wire.PrebuiltVectors(keys[0], body, len(keys)) if self._fast_writes else wire.plain_params(body)
            )
            self._call("put_vectors", index, **ids, vectors=vectors_param)

    @staticmethod
    def _record(raw: dict[str, Any], return_data: bool, return_metadata: bool) -> VectorRecord:
        data = (raw.get("data") or {}).get("float32") if return_data else None
        return VectorRecord(
            key=raw["key"],
            # stored as float32: however the service writes them, read back the same float32 values
            data=np.asarray(data, dtype=np.float32).tolist() if data is not None else None,
            metadata=(raw.get("metadata") or {}) if return_metadata else None,
        )

    def get_vectors(
        self, index: str, keys: Sequence[str], *, return_data: bool = False, return_metadata: bool = True
    ) -> list[VectorRecord]:
        self._spec(index)
        unique = check_keys("get_vectors", keys, MAX_GET)
        response = self._call(
            "get_vectors",
            index,
            **self._ids(index),
            keys=unique,
            returnData=return_data,
            returnMetadata=return_metadata,
        )
        found = {v["key"]: v for v in response.get("vectors", [])}
        return [self._record(found[k], return_data, return_metadata) for k in unique if k in found]

    def list_vectors(
        self,
        index: str,
        *,
        max_results: int = 500,
        next_token: str | None = None,
        return_data: bool = False,
        return_metadata: bool = False,
    ) -> VectorPage:
        """One page of at most `max_results`. Our token wraps the service's token plus an offset into the
        service page, so pages stay right even when the service returns more (or fewer) than asked."""
        self._spec(index)
        check_max_results(max_results)
        service_token, offset, page_size = (
            _decode_token(next_token) if next_token is not None else (None, 0, max_results)
        )
        params: dict[str, Any] = {
            **self._ids(index),
            "maxResults": page_size,
            "returnData": return_data,
            "returnMetadata": return_metadata,
        }
        if service_token:
            params["nextToken"] = service_token
        response = self._call("list_vectors", index, **params)
        raw = response.get("vectors", [])
        taken = raw[offset : offset + max_results]
        token = None
        if offset + max_results < len(raw):
            token = _encode_token(service_token, offset + max_results, page_size)
        elif response.get("nextToken"):
            token = _encode_token(response["nextToken"], 0, max_results)
        return VectorPage(vectors=[self._record(v, return_data, return_metadata) for v in taken], next_token=token)

    def delete_vectors(self, index: str, keys: Sequence[str]) -> None:
        self._spec(index)
        unique = check_keys("delete_vectors", keys, MAX_DELETE)
        self._call("delete_vectors", index, **self._ids(index), keys=unique)

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
        """Nearest first, ``top_k`` hits when that many match: pages are followed while ``nextToken`` comes.

        Each page repeats the same queryVector, topK and filter, as the API requires. A filtered query on an
        index not known to be ENHANCED asks for ``queryMode=ENHANCED`` (filter first, and ``$startsWith``), so
        it does not under-fill; a filter over 100 constraints (the ENHANCED limit) is refused before sending.
        """
        info = self._spec(index)
        check_top_k(top_k)
        query = check_vector(vector, info.dimension, info.metric)
        compiled = validate_filter(filter, info.non_filterable_keys)
        params: dict[str, Any] = {
            **self._ids(index),
            "topK": top_k,
            "queryVector": {"float32": query.tolist()},
            "returnMetadata": return_metadata,
            "returnDistance": return_distance,
        }
        if compiled.source:
            count = _constraints(compiled.root)
            if count > MAX_FILTER_CONSTRAINTS:
                raise LimitExceeded(
                    f"The filter has {count} constraints; S3 Vectors takes at most {MAX_FILTER_CONSTRAINTS} per query "
                    "(each value of an $in or $nin counts).",
                    "Narrow the filter, or split the query.",
                )
            params["filter"] = compiled.source
            if info.index_mode != ENHANCED:  # CLASSIC (or unreported): ask for filter-first, allowed on any index
                params["queryMode"] = ENHANCED
        hits: dict[str, QueryHit] = {}
        seen_tokens: set[str] = set()
        while True:
            response = self._call("query_vectors", index, **params)
            for v in response.get("vectors", []):
                if v["key"] in hits:
                    continue  # a key repeated across pages counts once
                hits[v["key"]] = QueryHit(
                    key=v["key"],
                    distance=float(v["distance"]) if return_distance and v.get("distance") is not None else None,
                    metadata=(v.get("metadata") or {}) if return_metadata else None,
                )
            token = _next(response, seen_tokens, "QueryVectors")
            if not token or len(hits) >= top_k:
                break
            params["nextToken"] = token
        ordered = list(hits.values())
        if return_distance and all(h.distance is not None for h in ordered):
            ordered.sort(key=lambda h: h.distance)  # type: ignore[arg-type, return-value]  # stable: ties keep page order
        return ordered[:top_k]


def _constraints(node: Node | Leaf | None) -> int:
    """Filter constraints as ENHANCED indexes count them: one per operator, one per $in/$nin value."""
    if node is None:
        return 0
    if isinstance(node, Node):
        return sum(_constraints(child) for child in node.children)
    return len(node.value) if isinstance(node.value, tuple) else 1


def _next(response: dict[str, Any], seen: set[str], operation: str) -> str | None:
    """The response's nextToken, or None at the end; a token seen before is an error, not a loop."""
    token = response.get("nextToken")
    if not token:
        return None
    if token in seen:
        raise BackendUnavailable(f"S3 Vectors {operation} returned the same page token twice; stopped to avoid a loop.")
    seen.add(token)
    return str(token)
