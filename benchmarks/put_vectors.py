"""CPU per PutVectors batch: our orjson body (stores/s3vectors_wire.py) vs botocore's own serialiser, same run.

Both sides do the whole client-side work of one `put_vectors` call up to the bytes on the wire: botocore's
side is parameter validation + rest-json serialisation of the float lists (what `client.put_vectors` does
before signing); ours is encoding each float32 row and metadata with orjson, plus botocore's validation and
serialisation of the one-item placeholder. Signing and HTTP are the same for both and left out. CPU time is
`time.process_time` (this process only), so other load on the machine shows less than in wall time; the
load average is recorded next to the figures. No model is involved (vectors are random float32).

    python benchmarks/put_vectors.py            # 500 x 1024 and 500 x 3072, 15 repeats each
    python benchmarks/put_vectors.py --smoke    # tiny, for CI
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_json  # noqa: E402

TARGET_MS_1024 = 30.0


def _setup() -> tuple[Any, Any, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3
    from botocore.validate import ParamValidator

    client = boto3.client("s3vectors", region_name="us-east-1")
    model = client.meta.service_model.operation_model("PutVectors")
    serializer = client._serializer  # botocore's own rest-json serialiser for this client
    return model, serializer, ParamValidator()


def _batch(n: int, dim: int, seed: int) -> tuple[list[str], Any, list[dict[str, Any]]]:
    import numpy as np

    matrix = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    keys = [f"{'ab' * 8}-{i:05d}" for i in range(n)]
    metas = [
        {"source": f"s3://bucket/docs/file{i % 17}.pdf", "segment": i, "modality": "text", "text": "chunk text " * 20}
        for i in range(n)
    ]
    return keys, matrix, metas


def run(n: int, dim: int, repeats: int) -> dict[str, Any]:
    from nova_mcp_server.stores import s3vectors_wire as wire

    model, serializer, validator = _setup()
    ids = {"vectorBucketName": "bench-vectors", "indexName": "idx"}
    keys, matrix, metas = _batch(n, dim, seed=dim)

    def botocore_side() -> int:
        params = {
            **ids,
            "vectors": [
                {"key": k, "data": {"float32": matrix[i].tolist()}, "metadata": metas[i]} for i, k in enumerate(keys)
            ],
        }
        report = validator.validate(params, model.input_shape)
        assert not report.has_errors()
        return len(serializer.serialize_to_request(params, model)["body"])

    def our_side() -> int:
        items = [(k, wire.encode_item(k, matrix[i], metas[i])) for i, k in enumerate(keys)]
        size = 0
        for first, body in wire.chunks(ids, items):
            params = {**ids, "vectors": wire.PrebuiltVectors(first[0], body)}
            assert not validator.validate(params, model.input_shape).has_errors()
            serializer.serialize_to_request(params, model)
            size += len(body)
        return size

    out: dict[str, Any] = {"n": n, "dimension": dim, "repeats": repeats}
    for name, fn in (("botocore", botocore_side), ("ours", our_side)):
        fn()  # warm up
        cpu = []
        for _ in range(repeats):
            start = time.process_time()
            size = fn()
            cpu.append((time.process_time() - start) * 1000)
        out[name] = {"cpu_ms_median": statistics.median(cpu), "cpu_ms_min": min(cpu), "body_bytes": size}
    out["ratio"] = out["botocore"]["cpu_ms_median"] / max(out["ours"]["cpu_ms_median"], 1e-9)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny batches, for CI")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    shapes = [(20, 64)] if args.smoke else [(500, 1024), (500, 3072)]
    repeats = 2 if args.smoke else args.repeats
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    runs = [run(n, dim, repeats) for n, dim in shapes]
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    data = {
        "model": "none (random float32 vectors; serialisation only)",
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "target_ms_per_500x1024": TARGET_MS_1024,
        "runs": runs,
    }
    print_table(
        ["batch", "botocore CPU ms", "ours CPU ms", "ratio", "botocore body", "our body"],
        [
            (
                f"{r['n']} x {r['dimension']}",
                round(r["botocore"]["cpu_ms_median"], 1),
                round(r["ours"]["cpu_ms_median"], 1),
                f"{r['ratio']:.1f}x",
                r["botocore"]["body_bytes"],
                r["ours"]["body_bytes"],
            )
            for r in runs
        ],
        title=f"PutVectors serialisation, CPU per batch (median of {repeats}; loadavg {load_before})",
    )
    write_json("put_vectors", data, args.out)
    return data


if __name__ == "__main__":
    main()
