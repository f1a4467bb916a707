"""Amazon S3 Vectors through boto3 `s3vectors`, with the same validation as the local store.

Every input is checked by the shared `base.check_*` functions and `filters.validate_filter` before a request
is sent, so this store rejects exactly what the local store rejects, with the same messages, and a bad
filter never costs a round trip. Service errors become `NovaError`s an agent can act on.

Give it a client with botocore's standard retry mode (throttling and 5xx are retried there); what still
fails afterwards is reported as `BackendUnavailable`.

The index spec is immutable on S3 Vectors, so it is cached per index after the first `get_index`; the
embedder stamp lives in the index tags `nova-mcp:provider`, `nova-mcp:model`, `nova-mcp:dimension`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)

from nova_mcp_server.errors import (
    AccessDenied,
    BackendUnavailable,
    IndexNotFound,
    InvalidInput,
    LimitExceeded,
    NotFound,
    NovaError,
)
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
    check_vectors,
    index_exists_error,
)
from nova_mcp_server.stores.filters import validate_filter

log = logging.getLogger(__name__)

TAG_PREFIX = "nova-mcp:"
MAX_PAYLOAD_BYTES = 18 * 1024 * 1024  # the service takes 20 MiB per request; keep a margin for our estimate
FLOAT_JSON_BYTES = 24  # a float32 widened to a Python float serialises to up to ~24 characters
TOKEN_PREFIX = "s3v1."
TRANSIENT = {
    "TooManyRequestsException",
    "ThrottlingException",
    "ServiceUnavailableException",
    "InternalServerException",
    "RequestTimeoutException",
}


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


def _iam_actions(operation: str, params: dict[str, Any]) -> list[str]:
    actions = [f"s3vectors:{operation}"]
    if operation == "QueryVectors" and (params.get("filter") or params.get("returnMetadata")):
        actions.append("s3vectors:GetVectors")  # documented: filters and returned metadata need it too
    if operation == "ListVectors" and (params.get("returnData") or params.get("returnMetadata")):
        actions.append("s3vectors:GetVectors")
    return actions


class S3VectorsStore:
    """The VectorStore protocol on one S3 vector bucket."""

    backend = "s3vectors"

    def __init__(self, client: Any, bucket: str, *, create_bucket: bool = True) -> None:
        self.client = client
        self.bucket = bucket
        self._create_bucket = create_bucket
        self._bucket_ready = not create_bucket
        self._specs: dict[str, IndexInfo] = {}
        self._lock = threading.Lock()

    # ---- calls and error mapping ------------------------------------------------------------------------

    def _call(self, method: str, index: str | None = None, **params: Any) -> dict[str, Any]:
        operation = "".join(part.capitalize() for part in method.split("_"))
        try:
            return getattr(self.client, method)(**params)
        except ClientError as exc:
            if index is not None and exc.response.get("Error", {}).get("Code") in ("NotFoundException",):
                self._specs.pop(index, None)
            raise self._map(exc, operation, index, params) from exc
        except ParamValidationError as exc:
            raise InvalidInput(f"S3 Vectors {operation} parameters were rejected: {exc}") from exc
        except NoCredentialsError as exc:
            raise AccessDenied(
                "No AWS credentials were found for S3 Vectors.",
                "Configure a profile, environment credentials or an instance role.",
            ) from exc
        except (ConnectionError, HTTPClientError) as exc:
            raise BackendUnavailable(
                f"S3 Vectors could not be reached ({type(exc).__name__}).", "Retry later."
            ) from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"S3 Vectors {operation} failed: {exc}") from exc

    def _map(self, exc: ClientError, operation: str, index: str | None, params: dict[str, Any]) -> NovaError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = error.get("Message", "") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NotFoundException" or status == 404:
            if index is not None and "bucket" not in message.lower():
                return IndexNotFound(index)
            return NotFound(
                f"Vector bucket '{self.bucket}' does not exist ({message}).",
                "Create it, or let the server create it on first use.",
            )
        if code == "AccessDeniedException" or status == 403:
            actions = " and ".join(_iam_actions(operation, params))
            return AccessDenied(
                f"AWS denied {operation} on vector bucket '{self.bucket}': {message}",
                f"Grant the IAM action {actions} on this bucket and its indexes.",
            )
        if code.startswith("Kms"):
            return AccessDenied(f"S3 Vectors could not use the bucket's KMS key ({code}): {message}")
        if code in TRANSIENT or status >= 500 or status in (408, 429):
            return BackendUnavailable(
                f"S3 Vectors {operation} failed after retries ({code or status}): {message}",
                "The service is throttling or unavailable; retry later or slow down.",
            )
        if code == "ServiceQuotaExceededException":
            return LimitExceeded(f"S3 Vectors quota exceeded on {operation}: {message}")
        if code == "ConflictException" and operation == "CreateIndex" and index is not None:
            return index_exists_error(index)
        if code == "ConflictException":
            return InvalidInput(f"S3 Vectors {operation} conflicts with the current state: {message}")
        if code == "ValidationException" or status == 400:
            if index is not None:
                self._specs.pop(index, None)  # a stale cached spec is one way to get here
            return InvalidInput(f"S3 Vectors rejected {operation}: {message}")
        return BackendUnavailable(f"S3 Vectors {operation} failed ({code or status}): {message}")

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self.client.create_vector_bucket(vectorBucketName=self.bucket)
            log.info("created vector bucket %s", self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "AccessDeniedException":  # may exist already; a read-only principal cannot create
                log.warning("cannot create vector bucket %s (access denied); assuming it exists", self.bucket)
            elif code != "ConflictException":
                raise self._map(exc, "CreateVectorBucket", None, {}) from exc
        self._bucket_ready = True

    def _ids(self, index: str) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": index}

    # ---- indexes ----------------------------------------------------------------------------------------

    def create_index(self, spec: IndexSpec) -> IndexInfo:
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
        tags_inline = (
            tags and "tags" in self.client.meta.service_model.operation_model("CreateIndex").input_shape.members
        )
        if tags_inline:
            params["tags"] = tags
        response = self._call("create_index", spec.name, **params)
        if tags and not tags_inline:  # botocore older than CreateIndex.tags
            arn = (
                response.get("indexArn")
                or self._call("get_index", spec.name, **self._ids(spec.name))["index"]["indexArn"]
            )
            self._call("tag_resource", spec.name, resourceArn=arn, tags=tags)
        info = IndexInfo(**spec.model_dump(), created_at=time.time())
        with self._lock:
            self._specs[spec.name] = info
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

    def _read_stamp(self, arn: str | None) -> EmbedderStamp | None:
        if not arn:
            return None
        try:
            tags = self.client.list_tags_for_resource(resourceArn=arn).get("tags", {})
            return EmbedderStamp(
                provider=tags[f"{TAG_PREFIX}provider"],
                model=tags[f"{TAG_PREFIX}model"],
                dimension=int(tags[f"{TAG_PREFIX}dimension"]),
            )
        except (ClientError, BotoCoreError, KeyError, ValueError, TypeError) as exc:  # tags are optional
            log.debug("no embedder stamp on %s: %s", arn, exc)
            return None

    def get_index(self, name: str) -> IndexInfo:
        check_index_name(name)
        self._ensure_bucket()
        raw = self._call("get_index", name, **self._ids(name))["index"]
        cached = self._specs.get(name)
        created = raw.get("creationTime")
        info = IndexInfo(
            name=name,
            dimension=raw["dimension"],
            metric=raw["distanceMetric"],
            non_filterable_keys=list((raw.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys", [])),
            embedder=cached.embedder if cached else self._read_stamp(raw.get("indexArn")),
            vector_count=None,
            created_at=created.timestamp() if hasattr(created, "timestamp") else None,
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
        infos = []
        token: str | None = None
        while True:
            page = self._call("list_indexes", vectorBucketName=self.bucket, **({"nextToken": token} if token else {}))
            for entry in page.get("indexes", []):
                try:
                    infos.append(self.get_index(entry["indexName"]))
                except IndexNotFound:
                    continue  # deleted meanwhile
            token = page.get("nextToken")
            if not token:
                return sorted(infos, key=lambda i: i.name)

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
            metadata, text = check_metadata_json(record.metadata, info.non_filterable_keys, key=record.key)
            item: dict[str, Any] = {"key": record.key, "data": {"float32": row.tolist()}}
            if metadata is not None:
                item["metadata"] = metadata
            size = len(record.key) + info.dimension * FLOAT_JSON_BYTES + (len(text) if text else 0) + 64
            items.append((item, size))
        for chunk in self._by_payload(items):
            self._call("put_vectors", index, **self._ids(index), vectors=chunk)

    @staticmethod
    def _by_payload(items: list[tuple[dict[str, Any], int]]) -> Iterator[list[dict[str, Any]]]:
        """Split a batch so that no request exceeds the service's payload limit (3072-d x 500 would)."""
        chunk: list[dict[str, Any]] = []
        size = 0
        for item, item_size in items:
            if chunk and size + item_size > MAX_PAYLOAD_BYTES:
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += item_size
        if chunk:
            yield chunk

    @staticmethod
    def _record(raw: dict[str, Any], return_data: bool, return_metadata: bool) -> VectorRecord:
        data = (raw.get("data") or {}).get("float32") if return_data else None
        return VectorRecord(
            key=raw["key"],
            data=[float(x) for x in data] if data is not None else None,
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
            params["filter"] = compiled.source
        response = self._call("query_vectors", index, **params)
        return [
            QueryHit(
                key=v["key"],
                distance=float(v["distance"]) if return_distance and v.get("distance") is not None else None,
                metadata=(v.get("metadata") or {}) if return_metadata else None,
            )
            for v in response.get("vectors", [])
        ]
