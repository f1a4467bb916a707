"""The PutVectors body we build is what botocore would send: same members, same float32 values."""

from __future__ import annotations

import json
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.validate import ParamValidator
from moto import mock_aws
from support import REPO

from nova_mcp_server.stores import s3vectors_wire as wire
from nova_mcp_server.stores.base import IndexSpec, VectorRecord
from nova_mcp_server.stores.s3vectors import S3VectorsStore

IDS = {"vectorBucketName": "wire-vectors", "indexName": "idx"}


def capture(client: Any) -> list[bytes]:
    """Bodies as they leave botocore (after every handler, before the network)."""
    sent: list[bytes] = []

    def grab(request: AWSPreparedRequest, **_: Any) -> None:
        if request.url.endswith("/PutVectors"):
            sent.append(request.body if isinstance(request.body, bytes) else request.body.encode())

    client.meta.events.register_first("before-send.s3vectors.PutVectors", grab)
    return sent


def rows(n: int, dim: int) -> np.ndarray:
    matrix = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    matrix[0, :4] = [0.1, 1 / 3, 3.4028235e38, 1e-45]  # awkward float32 values: shortest repr must round-trip
    return matrix


def test_our_body_equals_botocores_serialisation() -> None:
    matrix = rows(20, 16)
    metas = [{"source": f"s3://b/é{i}", "n": i, "tags": ["a", "b"], "ok": i % 2 == 0} for i in range(20)]
    keys = [f"k{i}" for i in range(20)]
    with mock_aws():
        ours_client = boto3.client("s3vectors", region_name="us-east-1")
        theirs_client = boto3.client("s3vectors", region_name="us-east-1")
        ours_client.create_vector_bucket(vectorBucketName=IDS["vectorBucketName"])
        ours_client.create_index(**IDS, dataType="float32", dimension=16, distanceMetric="cosine")
        assert wire.install(ours_client)
        ours_sent, theirs_sent = capture(ours_client), capture(theirs_client)
        items = [(k, wire.encode_item(k, matrix[i], metas[i])) for i, k in enumerate(keys)]
        [(_, body)] = list(wire.chunks(IDS, items))
        ours_client.put_vectors(**IDS, vectors=wire.PrebuiltVectors(keys[0], body))
        plain = [{"key": k, "data": {"float32": matrix[i].tolist()}, "metadata": metas[i]} for i, k in enumerate(keys)]
        theirs_client.put_vectors(**IDS, vectors=plain)
        stored = ours_client.get_vectors(**IDS, keys=keys, returnData=True, returnMetadata=True)["vectors"]
    [ours], [theirs] = ours_sent, theirs_sent
    assert ours == body  # our bytes went out as they are
    a, b = json.loads(ours), json.loads(theirs)
    assert set(a) == set(b) == {"vectorBucketName", "indexName", "vectors"}
    assert [v["key"] for v in a["vectors"]] == [v["key"] for v in b["vectors"]]
    for x, y in zip(a["vectors"], b["vectors"], strict=True):
        assert set(x) == set(y) and x["metadata"] == y["metadata"]
        fx, fy = np.float32(x["data"]["float32"]), np.float32(y["data"]["float32"])
        assert fx.tobytes() == fy.tobytes()  # bit for bit the same float32 values
    model = ours_client.meta.service_model.operation_model("PutVectors").input_shape
    assert not ParamValidator().validate(a, model).has_errors()  # valid against botocore's model
    by_key = {v["key"]: np.float32(v["data"]["float32"]) for v in stored}
    assert all(by_key[k].tobytes() == matrix[i].tobytes() for i, k in enumerate(keys))  # moto parsed ours


def test_shortest_float32_text_is_shorter_than_botocores() -> None:
    matrix = rows(4, 256)
    ours = wire.encode_item("k", matrix[1], None)
    theirs = json.dumps({"key": "k", "data": {"float32": matrix[1].tolist()}}).encode()
    assert len(ours) < 0.75 * len(theirs)


def test_store_splits_by_exact_body_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_BODY_BYTES", 4_000)
    with mock_aws():
        client = boto3.client("s3vectors", region_name="us-east-1")
        sent = capture(client)
        from fakes.s3vectors import S3VectorsEmulator

        store = S3VectorsStore(S3VectorsEmulator(client), "wire-vectors")
        store.create_index(IndexSpec(name="idx", dimension=32))
        matrix = rows(40, 32)
        store.put_vectors("idx", [VectorRecord(key=f"k{i:02d}", data=row.tolist()) for i, row in enumerate(matrix)])
        assert len(sent) > 1 and all(len(body) <= 4_000 for body in sent)
        got = store.get_vectors("idx", [f"k{i:02d}" for i in range(40)], return_data=True)
    assert len(got) == 40
    assert all(np.float32(g.data).tobytes() == matrix[i].tobytes() for i, g in enumerate(got))


def test_put_vectors_benchmark_smoke(tmp_path: Any) -> None:
    """The benchmark script runs and writes its JSON (no time is asserted: the machine is shared)."""
    import sys

    root = REPO
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import put_vectors

    data = put_vectors.main(["--smoke", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "put_vectors.json").read_text())
    assert written["runs"] == data["runs"] and data["runs"][0]["ours"]["body_bytes"] > 0
    assert "loadavg_before" in written and written["model"].startswith("none")
