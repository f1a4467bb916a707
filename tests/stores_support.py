"""Helpers for the store tests: a moto-backed S3 Vectors client completed where moto stops.

moto (5.2.x) implements S3 Vectors CRUD but not `query_vectors`, and it skips a few documented behaviours.
`S3VectorsEmulator` wraps a real boto3 client under `mock_aws` and adds, as the service documents them:

- `query_vectors`: parameters validated against botocore's service model (so a malformed request fails as
  it would before leaving boto3), then answered exactly by brute force over the vectors moto holds, with
  the reference filter evaluator (`filters.matches`) and S3 Vectors distances (cosine: 1 - cos; euclidean:
  L2), nearest first;
- `get_index` returning `metadataConfiguration` and `creationTime` (moto drops them);
- `create_index` on an existing name raising `ConflictException` (moto silently succeeds).

Everything else goes straight to moto. `calls` records (operation, params) for assertions.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.stores.base import IndexSpec, VectorRecord
from nova_mcp_server.stores.filters import matches, validate_filter

BUCKET = "nova-test-vectors"


def _error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class S3VectorsEmulator:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._model = client.meta.service_model
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
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
        }
        return response

    def get_index(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("get_index", params))
        response = self._client.get_index(**params)
        extra = self._configs.get((params["vectorBucketName"], params["indexName"]), {})
        for name, value in extra.items():
            if value is not None:
                response["index"].setdefault(name, value)
        return response

    def delete_index(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("delete_index", params))
        response = self._client.delete_index(**params)
        self._configs.pop((params["vectorBucketName"], params["indexName"]), None)
        return response

    def query_vectors(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("query_vectors", params))
        self.validate("QueryVectors", params)
        ids = {"vectorBucketName": params["vectorBucketName"], "indexName": params["indexName"]}
        index = self.get_index(**ids)["index"]
        query = np.asarray(params["queryVector"]["float32"], dtype=np.float32).astype(np.float64)
        if len(query) != index["dimension"]:
            raise _error("ValidationException", f"Query vector must have length {index['dimension']}", "QueryVectors")
        if params["topK"] > 100:
            raise _error("ValidationException", "topK must be at most 100", "QueryVectors")
        non_filterable = (index.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys", [])
        try:
            compiled = validate_filter(params.get("filter"), non_filterable)
        except InvalidInput as exc:
            raise _error("ValidationException", exc.text, "QueryVectors") from exc
        scored = []
        for v in self._all_vectors(ids):
            if not matches(v.get("metadata"), compiled):
                continue
            x = np.asarray(v["data"]["float32"], dtype=np.float32).astype(np.float64)
            if index["distanceMetric"] == "cosine":
                distance = 1.0 - float(x @ query) / float(np.linalg.norm(x) * np.linalg.norm(query))
            else:
                distance = float(np.linalg.norm(x - query))
            scored.append((distance, v["key"], v.get("metadata")))
        scored.sort(key=lambda t: (t[0], t[1]))
        hits = []
        for distance, key, metadata in scored[: params["topK"]]:
            hit: dict[str, Any] = {"key": key}
            if params.get("returnDistance"):
                hit["distance"] = distance
            if params.get("returnMetadata") and metadata is not None:
                hit["metadata"] = metadata
            hits.append(hit)
        return {"vectors": hits, "distanceMetric": index["distanceMetric"]}

    def _all_vectors(self, ids: dict[str, str]) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self._client.list_vectors(
                **ids, returnData=True, returnMetadata=True, **({"nextToken": token} if token else {})
            )
            yield from page["vectors"]
            token = page.get("nextToken")
            if not token:
                return


@contextmanager
def s3vectors_store(bucket: str = BUCKET) -> Iterator[Any]:
    """An `S3VectorsStore` on moto plus the emulator; needs fake AWS credentials in the environment."""
    import boto3
    from moto import mock_aws

    from nova_mcp_server.stores.s3vectors import S3VectorsStore

    with mock_aws():
        client = S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1"))
        yield S3VectorsStore(client, bucket)


@contextmanager
def make_store(kind: str, tmp_path: Path) -> Iterator[Any]:
    if kind == "local":
        from nova_mcp_server.stores.local import LocalVectorStore

        store = LocalVectorStore(tmp_path / "store")
        try:
            yield store
        finally:
            store.close()
    else:
        with s3vectors_store() as store:
            yield store


# ---- data -----------------------------------------------------------------------------------------------


def spec(name: str = "idx", dimension: int = 8, **kwargs: Any) -> IndexSpec:
    return IndexSpec(name=name, dimension=dimension, **kwargs)


def random_vectors(n: int, dimension: int, seed: int = 0) -> np.ndarray:
    """Well separated float32 vectors (random Gaussian), so rankings have no near-ties."""
    return np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32)


def records(matrix: np.ndarray, prefix: str = "k", metadata: list[dict[str, Any]] | None = None) -> list[VectorRecord]:
    return [
        VectorRecord(key=f"{prefix}{i:04d}", data=row.tolist(), metadata=metadata[i] if metadata else None)
        for i, row in enumerate(matrix)
    ]


def brute_force(
    matrix: np.ndarray, keys: list[str], query: np.ndarray, k: int, metric: str, allowed: list[bool] | None = None
) -> list[tuple[str, float]]:
    """Exact reference ranking in float64 over float32 data."""
    x = matrix.astype(np.float32).astype(np.float64)
    q = np.asarray(query, dtype=np.float32).astype(np.float64)
    if metric == "cosine":
        d = 1.0 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    else:
        d = np.linalg.norm(x - q, axis=1)
    order = sorted((i for i in range(len(keys)) if allowed is None or allowed[i]), key=lambda i: (d[i], keys[i]))
    return [(keys[i], float(d[i])) for i in order[:k]]


def varied_metadata(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Metadata like ours (modality, source, page, times, list-valued tags) with gaps and type traps."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        m: dict[str, Any] = {
            "modality": rnd.choice(["TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT"]),
            "source": f"s3://bucket/file{i % 7}.bin",
            "tags": rnd.sample(["red", "green", "blue", "x"], rnd.randint(0, 2)),
            "text": f"chunk {i}",
        }
        if i % 3:
            m["page"] = i % 11
        if i % 4 == 0:
            m["start_s"] = float(i) / 2
            m["end_s"] = float(i) / 2 + 5
        if i % 5 == 0:
            m["flag"] = bool(i % 2)
        if i % 6 == 0:
            m["flag"] = 1  # a number, never equal to true
        out.append(m)
    return out
