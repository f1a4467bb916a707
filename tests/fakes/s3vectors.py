"""An S3 Vectors client for tests: moto for storage, plus what moto lacks, written from the AWS docs.

moto (5.2.x) stores buckets, indexes and vectors but has no `query_vectors`, no index modes, and answers
`list_vectors` in one page. `S3VectorsEmulator` wraps a boto3 client under `mock_aws` and adds, as the
S3 Vectors documentation describes them (not as our code does: nothing here imports `nova_mcp_server`):

- `query_vectors`: parameters validated against botocore's service model; brute-force distances (cosine:
  1 - cos, euclidean: L2), nearest first; the metadata filter language evaluated by its own evaluator
  below; **pagination**: with ``page_size`` set, at most that many hits per response plus a ``nextToken``,
  and a follow-up call must repeat the same queryVector, topK and filter (the docs' rule);
- **index modes**: each index has ``indexMode`` (new indexes take ``default_mode``); `update_index_mode`
  switches it. ENHANCED filters before the search (exact) and accepts ``$startsWith``. CLASSIC evaluates
  the filter "in tandem" with the search: only the ``classic_candidates`` nearest vectors (default topK)
  are checked against the filter, so a selective filter returns fewer than topK hits; ``queryMode`` may
  ask for ENHANCED on a CLASSIC index, never CLASSIC on an ENHANCED one;
- `list_vectors` honouring ``maxResults`` (capped by ``list_page_size``) and ``nextToken``;
- `get_index` returning `metadataConfiguration`, `creationTime` and `indexMode` (moto drops them);
- `create_index` on an existing name raising `ConflictException` (moto silently succeeds).

Everything else goes straight to moto. `calls` records (operation, params) for assertions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

import numpy as np
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator


def _error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


# ---- the filter language, from the S3 Vectors metadata-filtering page ---------------------------------------
# $eq/$ne: string, number, boolean ($eq on a list value matches any element); $gt/$gte/$lt/$lte: numbers;
# $in/$nin: non-empty arrays; $exists: boolean; $and/$or: non-empty arrays of filters; a bare value is $eq;
# several keys (or operators) in one object are ANDed. ENHANCED indexes add $startsWith (a string prefix).
# Where the page is silent we follow MongoDB, as the project decided: a missing key matches $ne/$nin.

_FIELD_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$startsWith"}


class FilterError(ValueError):
    pass


def _values(stored: Any) -> list[Any]:
    return list(stored) if isinstance(stored, list) else [stored]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _field(metadata: dict[str, Any], key: str, op: str, operand: Any, enhanced: bool) -> bool:
    present = key in metadata
    stored = metadata.get(key)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError("$exists takes a boolean")
        return present == operand
    if op == "$startsWith":
        if not enhanced:
            raise FilterError("$startsWith requires an index in ENHANCED mode")
        if not isinstance(operand, str):
            raise FilterError("$startsWith takes a string")
        return present and any(isinstance(v, str) and v.startswith(operand) for v in _values(stored))
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise FilterError(f"{op} takes a non-empty array")
        hit = present and any(_equal(v, o) for v in _values(stored) for o in operand)
        return hit if op == "$in" else not hit
    if op in ("$eq", "$ne"):
        hit = present and any(_equal(v, operand) for v in _values(stored))
        return hit if op == "$eq" else not hit
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not _number(operand):
            raise FilterError(f"{op} takes a number")
        compare = {
            "$gt": lambda v: v > operand,
            "$gte": lambda v: v >= operand,
            "$lt": lambda v: v < operand,
            "$lte": lambda v: v <= operand,
        }[op]
        return present and any(_number(v) and compare(v) for v in _values(stored))
    raise FilterError(f"unknown operator {op}")


def evaluate(filter: dict[str, Any], metadata: dict[str, Any] | None, enhanced: bool) -> bool:
    metadata = metadata or {}
    if not isinstance(filter, dict):
        raise FilterError("a filter is an object")
    for key, spec in filter.items():
        if key in ("$and", "$or"):
            if not isinstance(spec, list) or not spec:
                raise FilterError(f"{key} takes a non-empty array")
            results = [evaluate(f, metadata, enhanced) for f in spec]
            if not (all(results) if key == "$and" else any(results)):
                return False
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key}")
        elif isinstance(spec, dict):
            for op, operand in spec.items():
                if op not in _FIELD_OPS:
                    raise FilterError(f"unknown operator {op}")
                if not _field(metadata, key, op, operand, enhanced):
                    return False
        elif not _field(metadata, key, "$eq", spec, enhanced):
            return False
    return True


def filter_keys(filter: Any) -> set[str]:
    if isinstance(filter, list):
        return set().union(*(filter_keys(f) for f in filter)) if filter else set()
    if not isinstance(filter, dict):
        return set()
    keys: set[str] = set()
    for key, spec in filter.items():
        keys |= filter_keys(spec) if key in ("$and", "$or") else {key}
    return keys


# ---- the emulator --------------------------------------------------------------------------------------------


class S3VectorsEmulator:
    def __init__(
        self,
        client: Any,
        *,
        page_size: int | None = None,
        default_mode: str = "ENHANCED",
        classic_candidates: int | None = None,
        list_page_size: int = 1000,
        report_mode: bool = True,
    ) -> None:
        self._client = client
        self._model = client.meta.service_model
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self.page_size = page_size
        self.default_mode = default_mode
        self.classic_candidates = classic_candidates
        self.list_page_size = list_page_size
        self.report_mode = report_mode  # False: GetIndex without indexMode, as botocore < 1.44 parses it
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method) or name.startswith("_"):
            return method

        def call(**params: Any) -> Any:
            self.calls.append((name, params))
            return method(**params)

        return call

    @property
    def meta(self) -> Any:
        return self._client.meta

    def validate(self, operation: str, params: dict[str, Any]) -> None:
        report = ParamValidator().validate(params, self._model.operation_model(operation).input_shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())

    def mode_of(self, bucket: str, index: str) -> str:
        return self._configs.get((bucket, index), {}).get("indexMode", self.default_mode)

    # -- indexes

    def create_index(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("create_index", params))
        key = (params["vectorBucketName"], params["indexName"])
        try:
            self._client.get_index(vectorBucketName=key[0], indexName=key[1])
        except ClientError:
            pass
        else:
            raise _error("ConflictException", "An index with this name already exists", "CreateIndex", 409)
        response = self._client.create_index(**params)
        self._configs[key] = {
            "metadataConfiguration": params.get("metadataConfiguration"),
            "creationTime": dt.datetime.now(dt.UTC),
            "indexMode": self.default_mode,
        }
        return response

    def get_index(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("get_index", params))
        response = self._client.get_index(**params)
        extra = dict(self._configs.get((params["vectorBucketName"], params["indexName"]), {}))
        if not self.report_mode:
            extra.pop("indexMode", None)
        for name, value in extra.items():
            if value is not None:
                response["index"].setdefault(name, value)
        return response

    def delete_index(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("delete_index", params))
        response = self._client.delete_index(**params)
        self._configs.pop((params["vectorBucketName"], params["indexName"]), None)
        return response

    def update_index_mode(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("update_index_mode", params))
        self.validate("UpdateIndexMode", params)
        key = (params["vectorBucketName"], params["indexName"])
        self._client.get_index(vectorBucketName=key[0], indexName=key[1])  # NotFoundException when missing
        self._configs.setdefault(key, {})["indexMode"] = params["indexMode"]
        return {}

    # -- vectors

    def put_vectors(self, **params: Any) -> dict[str, Any]:
        """Forwarded to moto as given; `calls` records the vectors as sent (a prebuilt body, decoded)."""
        body = getattr(params.get("vectors"), "body", None)
        shown = {**params, "vectors": json.loads(body)["vectors"]} if body is not None else params
        self.calls.append(("put_vectors", shown))
        return self._client.put_vectors(**params)

    def _all_vectors(self, ids: dict[str, str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = None
        while True:
            page = self._client.list_vectors(
                **ids, returnData=True, returnMetadata=True, **({"nextToken": token} if token else {})
            )
            out.extend(page["vectors"])
            token = page.get("nextToken")
            if not token:
                return out

    def list_vectors(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("list_vectors", params))
        self.validate("ListVectors", params)
        ids = {"vectorBucketName": params["vectorBucketName"], "indexName": params["indexName"]}
        everything = sorted(self._all_vectors(ids), key=lambda v: v["key"])
        offset = int(params["nextToken"].removeprefix("list-")) if params.get("nextToken") else 0
        size = min(params.get("maxResults", 500), self.list_page_size)
        page = everything[offset : offset + size]
        out = []
        for v in page:
            item: dict[str, Any] = {"key": v["key"]}
            if params.get("returnData"):
                item["data"] = v["data"]
            if params.get("returnMetadata") and v.get("metadata") is not None:
                item["metadata"] = v["metadata"]
            out.append(item)
        response: dict[str, Any] = {"vectors": out}
        if offset + size < len(everything):
            response["nextToken"] = f"list-{offset + size}"
        return response

    def query_vectors(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("query_vectors", params))
        self.validate("QueryVectors", params)
        op = "QueryVectors"
        ids = {"vectorBucketName": params["vectorBucketName"], "indexName": params["indexName"]}
        index = self.get_index(**ids)["index"]
        self.calls.pop()  # the get_index above is ours, not the caller's
        query = np.asarray(params["queryVector"]["float32"], dtype=np.float32).astype(np.float64)
        if len(query) != index["dimension"]:
            raise _error("ValidationException", f"Query vector must have length {index['dimension']}", op)
        top_k = params["topK"]
        if top_k > 10_000:
            raise _error("ValidationException", "topK must be at most 10000", op)
        mode = self.mode_of(ids["vectorBucketName"], ids["indexName"])
        query_mode = params.get("queryMode") or mode
        if query_mode == "CLASSIC" and mode == "ENHANCED":
            raise _error("ValidationException", "queryMode CLASSIC is not allowed on an ENHANCED index", op)
        filt = params.get("filter")
        non_filterable = set((index.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys") or [])
        if filt is not None and filter_keys(filt) & non_filterable:
            raise _error("ValidationException", "Filtering on a non-filterable metadata key is not allowed", op)
        fingerprint = hashlib.sha256(
            json.dumps([params["queryVector"], top_k, filt, query_mode], sort_keys=True).encode()
        ).hexdigest()[:16]
        offset = 0
        if params.get("nextToken"):
            token_print, _, start = params["nextToken"].partition(":")
            if token_print != fingerprint:
                raise _error("ValidationException", "nextToken must be used with the same query parameters", op)
            offset = int(start)
        scored = []
        for v in self._all_vectors(ids):
            x = np.asarray(v["data"]["float32"], dtype=np.float32).astype(np.float64)
            if index["distanceMetric"] == "cosine":
                distance = 1.0 - float(x @ query) / float(np.linalg.norm(x) * np.linalg.norm(query))
            else:
                distance = float(np.linalg.norm(x - query))
            scored.append((distance, v["key"], v.get("metadata")))
        scored.sort(key=lambda t: (t[0], t[1]))
        try:
            if filt is not None and query_mode == "CLASSIC":
                candidates = scored[: self.classic_candidates or top_k]  # filter "in tandem" with the search
                scored = [s for s in candidates if evaluate(filt, s[2], enhanced=False)]
            elif filt is not None:
                scored = [s for s in scored if evaluate(filt, s[2], enhanced=True)]
        except FilterError as exc:
            raise _error("ValidationException", f"Invalid filter: {exc}", op) from exc
        results = scored[:top_k]
        size = self.page_size or len(results) or 1
        page = results[offset : offset + size]
        hits = []
        for distance, key, metadata in page:
            hit: dict[str, Any] = {"key": key}
            if params.get("returnDistance"):
                hit["distance"] = distance if math.isfinite(distance) else 2.0
            if params.get("returnMetadata") and metadata is not None:
                hit["metadata"] = metadata
            hits.append(hit)
        response: dict[str, Any] = {"vectors": hits, "distanceMetric": index["distanceMetric"]}
        if offset + size < len(results):
            response["nextToken"] = f"{fingerprint}:{offset + size}"
        return response
