"""Benchmark 2: the Bedrock ingestion path, `Indexing.index` -> Nova embedder -> S3 Vectors, against a slow fake.

Why: with Bedrock, ingestion time is set by the per-call latency and by how many calls are kept in flight
(the embedder's concurrency limit). A correct pipeline approaches `segments x latency / concurrency`; a
pipeline that waits between calls (per source, per batch, per store write) shows up as a ratio well above 1.

What runs: the core exactly as `nova-mcp-server --backend aws` assembles it (`app.build_app`), with the
Bedrock runtime replaced by `FakeBedrockRuntime` (a fixed latency per InvokeModel, optional throttling and
5xx, seeded) and S3 Vectors by moto (`mock_aws`) behind the test suite's emulator. The items go in through
`Indexing.index`, the function the `index_content` tool calls, into a new index (created on its first write, as
on a first `index_content`). Shapes:

- `texts`: N inline texts of ~400 characters (an agent passing notes as `texts`): N sources, one segment each;
- `files`: N/20 Markdown files of 20 paragraphs (a folder of documents): 20 chunks per file.

Runs per shape and store: `clean` (no faults; target <= 1.25 x ideal) and `faults` (10 % throttling, 1 % 5xx;
target <= 2 x ideal). After each run every key is listed and compared with the expected set (lost, duplicated,
unexpected, uncommitted heads), and the put_vectors batch sizes the store received are reported. The embedder
alone on the same requests (no store, no ingest) is timed in the same process as the achievable floor.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from benchmarks._common import fake_aws_env, maybe_plot, print_table, stopwatch, use_test_helpers, write_json

NAME = "bedrock_path"
VECTOR_BUCKET = "bench-vectors"
INDEX = "bench"
DIMENSION = 1024  # the server's default Nova dimension
PER_FILE = 20
TARGETS = {"clean": 1.25, "faults": 2.0}
_VOCABULARY = """
glacier valley river delta canyon desert dune oasis forest canopy fern moss lichen granite basalt quartz
harbour lighthouse ferry anchor compass lantern violin cello piano chorus tempo rhythm melody harmony
falcon heron otter badger lynx bison salmon coral reef tide current storm thunder aurora comet nebula
orbit telescope lens prism spectrum circuit sensor battery turbine engine piston gear lever pulley
"""
WORDS = _VOCABULARY.split()


class Counting:
    """Proxy that counts calls to any object (a boto3 client or a store) and the put_vectors batch sizes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.put_batches: list[int] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                with self._lock:
                    self.calls[name] += 1
                    self.seconds[name] += time.perf_counter() - start
                    if name == "put_vectors":
                        sent = kwargs["vectors"] if "vectors" in kwargs else args[1]
                        self.put_batches.append(getattr(sent, "vector_count", None) or len(sent))  # a prebuilt body

        return call


@dataclass
class RunResult:
    shape: str
    store: str
    run: str
    segments: int
    sources: int
    wall_s: float
    ideal_s: float
    floor_s: float
    target: float
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    uncommitted: int = 0
    failed_sources: list[str] = field(default_factory=list)
    put_batches: list[int] = field(default_factory=list)
    store_seconds: dict[str, float] = field(default_factory=dict)
    invoke_calls: int = 0
    throttled: int = 0
    server_errors: int = 0
    max_in_flight: int = 0

    @property
    def ratio(self) -> float:
        return self.wall_s / self.ideal_s

    @property
    def ok(self) -> bool:
        clean = not (self.lost or self.duplicated or self.unexpected or self.uncommitted or self.failed_sources)
        return self.ratio <= self.target and clean

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "store": self.store,
            "run": self.run,
            "sources": self.sources,
            "segments": self.segments,
            "wall_s": round(self.wall_s, 3),
            "ideal_s": round(self.ideal_s, 3),
            "ratio_to_ideal": round(self.ratio, 3),
            "target_ratio": self.target,
            "floor_s": round(self.floor_s, 3),
            "ratio_to_floor": round(self.wall_s / self.floor_s, 3) if self.floor_s else None,
            "met": self.ok,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "uncommitted_heads": self.uncommitted,
            "failed_sources": self.failed_sources,
            "put_vectors_calls": len(self.put_batches),
            "put_batch_sizes": self.put_batches,
            "store_call_seconds": {k: round(v, 3) for k, v in self.store_seconds.items()},
            "invoke_model_calls": self.invoke_calls,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "max_in_flight": self.max_in_flight,
        }


# ---- inputs ----------------------------------------------------------------------------------------------------


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_items(shape: str, chunks: int, root: Path) -> list[Any]:
    """The `index_content` arguments as the core receives them: inline texts, or files in an allowed root."""
    from nova_mcp_server.models import ContentInput

    rng = random.Random(7)
    if shape == "texts":
        return [ContentInput(text=f"Note {i}. {_sentence(rng, 55)}.") for i in range(chunks)]
    folder = root / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(max(1, chunks // PER_FILE)):
        paragraphs = [f"Section {p} of document {f}. " + _sentence(rng, 200) + "." for p in range(PER_FILE)]
        (folder / f"doc{f:04d}.md").write_text("\n\n".join(paragraphs))
    return [ContentInput(path=str(folder))]


# ---- one run ---------------------------------------------------------------------------------------------------


def build(tmp: Path, store: str, concurrency: int, fake: Any) -> tuple[Any, Counting]:
    """The aws core as the console script builds it, on the fake Bedrock and moto; the counting proxy."""
    import boto3
    from stores_support import S3VectorsEmulator

    from nova_mcp_server.app import assemble, build_app
    from nova_mcp_server.aws import AwsClients
    from nova_mcp_server.settings import Settings
    from nova_mcp_server.stores.local import LocalVectorStore

    settings = Settings(
        data_dir=tmp / "data",
        backend="aws",
        vector_bucket=VECTOR_BUCKET,
        allowed_roots=[tmp],
        dimension=DIMENSION,
        concurrency=concurrency,
    )
    vectors = Counting(S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1")))
    clients = AwsClients(
        "us-east-1", concurrency=concurrency, overrides={"bedrock-runtime": fake, "s3vectors": vectors}
    )
    core = build_app(settings, clients=clients)
    if store == "local":
        vectors = Counting(LocalVectorStore(settings.data_dir / "store"))
        core = assemble(settings, core.embedder, vectors, core.ingest)
    return core, vectors


async def expected_keys(core: Any, items: Sequence[Any]) -> tuple[set[str], int]:
    """Every key the run must leave behind (source id x segment ordinal), computed before the run."""
    from nova_mcp_server import keys

    sources, failures = await core.ingest.resolve_contents(items)
    assert not failures, failures
    expected: set[str] = set()
    for source in sources:
        segments = await core.ingest.segment(source, core.embedder.info)
        sid = keys.source_id(source.uri)
        expected.update(keys.vector_key(sid, s.ordinal) for s in segments)
    return expected, len(sources)


async def audit(core: Any, expected: set[str]) -> dict[str, int]:
    """List every key in the index and compare with the expected set exactly."""
    listed: list[str] = []
    heads_without_hash = 0
    token: str | None = None
    while True:
        page = await anyio.to_thread.run_sync(
            partial(core.store.list_vectors, INDEX, max_results=500, next_token=token, return_metadata=True)
        )
        for v in page.vectors:
            listed.append(v.key)
            if v.key.endswith("-00000") and "content_hash" not in (v.metadata or {}):
                heads_without_hash += 1
        token = page.next_token
        if not token:
            break
    found = set(listed)
    return {
        "lost": len(expected - found),
        "duplicated": len(listed) - len(found),
        "unexpected": len(found - expected),
        "uncommitted": heads_without_hash,
    }


async def one_run(
    shape: str, store: str, run: str, chunks: int, latency: float, concurrency: int, faults: tuple[float, float]
) -> RunResult:
    from fakes.nova import FakeBedrockRuntime

    with tempfile.TemporaryDirectory(prefix="nova-bench-") as tmpdir:
        tmp = Path(tmpdir)
        fake = FakeBedrockRuntime(latency=latency, throttle_rate=faults[0], error_rate=faults[1], seed=11)
        core, counting = build(tmp, store, concurrency, fake)
        items = make_items(shape, chunks, tmp)
        expected, n_sources = await expected_keys(core, items)
        with stopwatch() as t:
            report = await core.indexing.index(items, index=INDEX)
        wall = t[0]
        checks = await audit(core, expected)
        errors = Counter(c.error for c in fake.calls if c.error)
        return RunResult(
            shape=shape,
            store=store,
            run=run,
            segments=len(expected),
            sources=n_sources,
            wall_s=wall,
            ideal_s=len(expected) * latency / concurrency,
            floor_s=0.0,
            target=TARGETS[run],
            failed_sources=[f"{f.source}: {f.reason}" for f in report.failed],
            put_batches=list(counting.put_batches),
            store_seconds=dict(counting.seconds),
            invoke_calls=fake.count("invoke_model"),
            throttled=errors["ThrottlingException"],
            server_errors=errors["ServiceUnavailableException"] + errors["InternalServerException"],
            max_in_flight=fake.max_in_flight,
            **checks,
        )


async def embedder_floor(chunks: int, latency: float, concurrency: int) -> float:
    """The embedder alone on `chunks` text requests in one `embed` call: the best this process can do."""
    from fakes.nova import FakeBedrockRuntime

    from nova_mcp_server.embedders.nova import NovaEmbedder
    from nova_mcp_server.ingest.model import Segment
    from nova_mcp_server.schema import EmbeddingPurpose, Modality

    embedder = NovaEmbedder(
        bedrock=FakeBedrockRuntime(latency=latency, seed=11), concurrency=concurrency, default_dimension=DIMENSION
    )
    rng = random.Random(7)
    requests = [
        Segment(ordinal=0, modality=Modality.TEXT, embed_as="text", text=f"Note {i}. {_sentence(rng, 55)}.").to_request(
            EmbeddingPurpose.GENERIC_INDEX, DIMENSION
        )
        for i in range(chunks)
    ]
    with stopwatch() as t:
        await embedder.embed(requests)
    return t[0]


def put_serialization_seconds(rounds: int = 3) -> float:
    """botocore's client-side work for one put_vectors of MAX_PUT x DIMENSION (validation + JSON), no sending.

    Real S3 Vectors costs this too (boto3 serialises every float in Python, holding the GIL); what moto adds on
    top of it in `store_call_seconds` is the emulator's own server-side work, which production does not pay.
    """
    import boto3

    from nova_mcp_server.stores.base import MAX_PUT

    client = boto3.client("s3vectors", region_name="us-east-1")
    operation = client.meta.service_model.operation_model("PutVectors")
    rng = random.Random(3)
    vectors = [
        {
            "key": f"{i:024x}-00000",
            "data": {"float32": [rng.uniform(-0.1, 0.1) for _ in range(DIMENSION)]},
            "metadata": {"source": "inline:0", "segment": 0, "snippet": _sentence(rng, 55)},
        }
        for i in range(MAX_PUT)
    ]
    params = {"vectorBucketName": VECTOR_BUCKET, "indexName": INDEX, "vectors": vectors}
    best = float("inf")
    for _ in range(rounds):
        with stopwatch() as t:
            client._serializer.serialize_to_request(params, operation)
        best = min(best, t[0])
    return best


# ---- main ------------------------------------------------------------------------------------------------------


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load average (None where the OS has none, e.g. Windows)."""
    getloadavg = getattr(os, "getloadavg", None)
    return [round(x, 2) for x in getloadavg()] if getloadavg else None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bedrock_path", description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=2000, help="segments per run (default 2000)")
    parser.add_argument("--latency", type=float, default=0.08, help="seconds per InvokeModel (default 0.08)")
    parser.add_argument("--concurrency", type=int, default=8, help="embedder concurrency limit (default 8)")
    parser.add_argument("--throttle", type=float, default=0.10, help="throttling rate of the faults run")
    parser.add_argument("--errors", type=float, default=0.01, help="5xx rate of the faults run")
    parser.add_argument("--shapes", nargs="+", choices=["texts", "files"], default=["texts", "files"])
    parser.add_argument("--stores", nargs="+", choices=["s3vectors", "local"], default=["s3vectors", "local"])
    parser.add_argument("--runs", nargs="+", choices=["clean", "faults"], default=["clean", "faults"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: 60 chunks at 5 ms")
    parser.add_argument("--name", default=NAME, help="result file name (e.g. bedrock_path_before)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.chunks, args.latency, args.concurrency = 60, 0.005, 4

    use_test_helpers()
    fake_aws_env()
    from moto import mock_aws

    load_before = _load()
    serialization = put_serialization_seconds()
    results: list[RunResult] = []
    floors: list[float] = []
    for shape in args.shapes:
        for store in args.stores:
            # Re-measured before each group: on a shared machine, load drifts over minutes.
            floor = anyio.run(embedder_floor, args.chunks, args.latency, args.concurrency)
            floors.append(floor)
            for run in args.runs:
                faults = (args.throttle, args.errors) if run == "faults" else (0.0, 0.0)
                with mock_aws():
                    result = anyio.run(one_run, shape, store, run, args.chunks, args.latency, args.concurrency, faults)
                result.floor_s = floor * result.segments / args.chunks
                results.append(result)
                print(
                    f"{shape:5} {store:9} {run:6} {result.wall_s:7.2f} s  x{result.ratio:.2f}  "
                    f"lost={result.lost} dup={result.duplicated} failed={len(result.failed_sources)}",
                    flush=True,
                )

    ideal = args.chunks * args.latency / args.concurrency
    rows = [
        (
            r.shape,
            r.store,
            r.run,
            r.segments,
            r.wall_s,
            r.ideal_s,
            r.ratio,
            r.target,
            "yes" if r.ok else "NO",
            r.lost,
            r.duplicated,
            len(r.failed_sources),
            _runs(r.put_batches),
            f"{r.throttled}/{r.server_errors}",
        )
        for r in results
    ]
    print_table(
        [
            "shape",
            "store",
            "run",
            "segs",
            "wall s",
            "ideal s",
            "ratio",
            "target",
            "met",
            "lost",
            "dup",
            "failed",
            "put batches",
            "thr/5xx",
        ],
        rows,
        title=f"Indexing.index at {args.latency * 1000:g} ms/call, concurrency {args.concurrency}; embedder-only floor "
        f"for {args.chunks} requests: {', '.join(f'{f:.2f}' for f in floors)} s (ideal {ideal:.2f} s)",
    )
    data = {
        "load_average": {"before": load_before, "after": _load()},  # 1/5/15-minute loadavg of the shared machine
        "parameters": {
            "chunks": args.chunks,
            "latency_s": args.latency,
            "concurrency": args.concurrency,
            "throttle_rate": args.throttle,
            "error_rate": args.errors,
            "dimension": DIMENSION,
            "smoke": args.smoke,
        },
        "ideal_s": round(ideal, 3),
        "botocore_put_serialization_s_per_500": round(serialization, 3),
        "embedder_floor_s": [round(f, 3) for f in floors],
        "embedder_floor_ratio": [round(f / ideal, 3) for f in floors],
        "runs": [r.as_dict() for r in results],
    }
    print(
        f"botocore serialisation of one put_vectors of 500 x {DIMENSION} (client side, no sending): "
        f"{serialization:.2f} s; put_vectors seconds per run (moto included): "
        + ", ".join(f"{r.shape}/{r.store}/{r.run} {r.store_seconds.get('put_vectors', 0):.1f}" for r in results)
    )
    path = write_json(args.name, data, args.out)
    png = maybe_plot(args.name, lambda plt: _plot(plt, results), args.out)
    print(f"\nwrote {path}" + (f" and {png}" if png else ""))
    return data


def _runs(sizes: list[int]) -> str:
    """[500, 500, 1, 1, 1] -> '500x2 1x3' (run-length, in call order)."""
    out: list[str] = []
    for size in sizes:
        if out and out[-1].split("x")[0] == str(size):
            n = int(out[-1].split("x")[1]) + 1
            out[-1] = f"{size}x{n}"
        else:
            out.append(f"{size}x1")
    text = " ".join(out)
    return text if len(text) <= 40 else text[:37] + "..."


def _plot(plt: Any, results: list[RunResult]) -> None:
    labels = [f"{r.shape}\n{r.store}\n{r.run}" for r in results]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(results)), 4))
    bars = ax.bar(
        range(len(results)), [r.ratio for r in results], color=["#4c72b0" if r.ok else "#c44e52" for r in results]
    )
    for i, r in enumerate(results):
        ax.hlines(r.target, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
        ax.hlines(r.floor_s / r.ideal_s, i - 0.4, i + 0.4, colors="#dd8452", linestyles="dotted")
    ax.bar_label(bars, fmt="%.2f")
    ax.set_xticks(range(len(results)), labels, fontsize=8)
    ax.set_ylabel("wall time / ideal (N x latency / concurrency)")
    ax.set_title("Indexing.index on the Bedrock path (dashed: target; dotted: embedder alone, same process)")


if __name__ == "__main__":
    main()
