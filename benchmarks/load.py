"""Load over streamable HTTP: 50 concurrent searchers and 4 concurrent indexers against one server process.

    python -m benchmarks.load                  # 60 s (the committed figures)
    python -m benchmarks.load --smoke          # a few seconds
    python -m benchmarks.load --duration 30 --searchers 50 --indexers 4

The server is the console script (`nova-multimodal-mcp --transport streamable-http`) on the local backend with
a model of realistic cost: `random_clip.py`'s random-weight text tower of CLIP ViT-B/32's size (`--smoke`:
the tests' 16-d tiny CLIP, which makes embeddings nearly free; `--model-path`: any local CLIP folder). Each searcher and each indexer is its own MCP client session
calling `semantic_search` / `index_content` back to back for the whole duration; every indexer call indexes
one new, unique text. At the end the store is counted: every text an indexer was told was indexed must be
there exactly once (vectors lost = acknowledged texts missing; extra = keys nobody asked for).
Prints requests, errors, p50/p95/p99 latency per tool and writes `benchmarks/results/load.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
SCRIPT = str(Path(sys.executable).parent / "nova-multimodal-mcp")
COLOURS = ["red", "green", "blue", "yellow", "white", "black", "orange", "purple"]
SEED_TEXTS = [f"a {c} {thing}" for c in COLOURS for thing in ("car", "house", "flower", "sky")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data: Path, model: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_MCP_")}
    env.update(
        NOVA_MCP_DATA_DIR=str(data),
        NOVA_MCP_LOCAL_MODEL_PATH=str(model),
        NOVA_MCP_ALLOWED_ROOTS=str(data),
        HF_HUB_OFFLINE="1",
    )
    log = (data.parent / "server.log").open("wb")
    proc = subprocess.Popen([SCRIPT, "--transport", "streamable-http", "--port", str(port)], env=env, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + (data.parent / "server.log").read_text()[-2000:]) from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


async def run_load(url: str, duration: float, searchers: int, indexers: int) -> dict[str, Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    latencies: dict[str, list[float]] = {"semantic_search": [], "index_content": []}
    errors: list[str] = []
    acknowledged: list[str] = []

    async def session(kind: str, worker: int, deadline: float) -> None:
        async with (
            httpx2.AsyncClient(timeout=httpx2.Timeout(120.0), limits=httpx2.Limits(max_connections=4)) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            n = 0
            while time.monotonic() < deadline:
                n += 1
                if kind == "semantic_search":
                    args: dict[str, Any] = {"query": COLOURS[(worker + n) % len(COLOURS)], "index": "load", "top_k": 10}
                else:
                    text = f"indexer {worker} note {n}: a {COLOURS[n % len(COLOURS)]} {COLOURS[worker % 8]} thing"
                    args = {"texts": [text], "index": "load"}
                started = time.perf_counter()
                try:
                    result = await client.call_tool(kind, args)
                except Exception as exc:  # a transport failure counts as an error, the run goes on
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                latencies[kind].append(time.perf_counter() - started)
                if result.is_error:
                    errors.append(f"{kind}: {result.content[0].text[:200]}")
                elif kind == "index_content":
                    if result.structured_content["indexed_sources"] == 1:
                        acknowledged.append(text)
                    else:
                        errors.append(f"index_content: not indexed: {result.structured_content}")

    async with (
        httpx2.AsyncClient(timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as seed,
    ):
        seeded = await seed.call_tool("index_content", {"texts": SEED_TEXTS, "index": "load"})
        assert not seeded.is_error, seeded.content
    started = time.monotonic()
    deadline = started + duration
    async with anyio.create_task_group() as tg:
        for i in range(searchers):
            tg.start_soon(session, "semantic_search", i, deadline)
        for i in range(indexers):
            tg.start_soon(session, "index_content", i, deadline)
    elapsed = time.monotonic() - started
    return {"latencies": latencies, "errors": errors, "acknowledged": acknowledged, "elapsed": elapsed}


def count_store(data: Path, acknowledged: list[str]) -> dict[str, int]:
    """Texts acknowledged as indexed vs what the store holds (each text is one segment, keyed by its hash)."""
    import hashlib

    from nova_mcp_server import keys
    from nova_mcp_server.stores.local import LocalVectorStore

    store = LocalVectorStore(data / "store")
    try:
        found: list[str] = []
        token = None
        while True:
            page = store.list_vectors("load", max_results=1000, next_token=token)
            found += [v.key for v in page.vectors]
            token = page.next_token
            if token is None:
                break
        problems = store.integrity_check("load")
    finally:
        store.close()
    expected = {
        keys.vector_key(keys.source_id(f"inline:{hashlib.sha256(t.encode()).hexdigest()[:32]}"), 0)
        for t in [*acknowledged, *SEED_TEXTS]
    }
    present = set(found)
    return {
        "keys": len(found),
        "duplicate_keys": len(found) - len(present),
        "acknowledged_texts": len(acknowledged),
        "vectors_lost": len(expected - present),
        "unexpected_keys": len(present - expected),
        "integrity_problems": len(problems),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values) * 1000
    return {
        "count": len(values),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "max_ms": round(float(arr.max()), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--searchers", type=int, default=50)
    parser.add_argument("--indexers", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="5 s, 10 searchers, 2 indexers")
    parser.add_argument(
        "--model-path", type=Path, help="local CLIP folder (default: random-weight CLIP-B/32-size text tower)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.searchers, args.indexers = 5.0, 10, 2

    load_before = [round(x, 2) for x in os.getloadavg()]  # other work on the machine, before our own load
    work = Path(tempfile.mkdtemp(prefix="nova-load-"))
    try:
        model = args.model_path
        if model is not None:
            label = f"local CLIP folder {model}"
        elif args.smoke:
            sys.path.insert(0, str(ROOT / "tests"))
            from fixtures.tiny_clip import build_tiny_clip

            model, label = Path(build_tiny_clip(work / "tiny-clip")), "tiny CLIP test model (16-d word lookup)"
        else:
            from benchmarks.random_clip import LABEL, build_random_clip

            model, label = build_random_clip(work / "random-clip"), LABEL
        data = work / "data"
        data.mkdir()
        port = free_port()
        server = start_server(data, model, port)
        try:
            run = anyio.run(run_load, f"http://127.0.0.1:{port}/mcp", args.duration, args.searchers, args.indexers)
        finally:
            server.terminate()
            server.wait(timeout=30)
        counts = count_store(data, run["acknowledged"])
        requests = sum(len(v) for v in run["latencies"].values())
        result = {
            "config": {
                "duration_s": args.duration,
                "searchers": args.searchers,
                "indexers": args.indexers,
                "transport": "streamable-http",
                "backend": "local",
                "model": label,
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
                "loadavg_before": load_before,
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            },
            "requests": requests,
            "requests_per_s": round(requests / run["elapsed"], 1),
            "errors": len(run["errors"]),
            "error_samples": run["errors"][:5],
            "latency": {tool: percentiles(v) for tool, v in run["latencies"].items()},
            "store": counts,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"requests {requests} ({result['requests_per_s']}/s over {run['elapsed']:.0f} s), errors {len(run['errors'])}"
        )
        for tool, stats in result["latency"].items():
            print(f"  {tool:<16} {stats}")
        print(f"  store: {counts}")
        ok = not run["errors"] and counts["vectors_lost"] == 0 and counts["duplicate_keys"] == 0
        ok = ok and counts["unexpected_keys"] == 0 and counts["integrity_problems"] == 0
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
