"""Helpers for the store tests: a moto-backed S3 Vectors client completed where moto stops.

The emulator itself lives in `fakes/s3vectors.py` (written from the S3 Vectors docs: its own filter
evaluator, paginated queries, CLASSIC and ENHANCED index modes); it is re-exported here for old imports.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import ClientError
from fakes.s3vectors import S3VectorsEmulator

from nova_mcp_server.stores.base import IndexSpec, VectorRecord

BUCKET = "nova-test-vectors"


def _error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


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
