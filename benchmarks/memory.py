"""Benchmark: peak RSS growth while indexing, to show ingestion memory stays flat (issue: streaming ingestion).

Three cases, each at half, full and double size, each in a fresh child process:
  (a) inline texts in one `index_content` call (full: 20,000 texts);
  (b) a folder of files x 100 chunks each (full: 200 files);
  (c) one PDF (full: 300 pages), each page rendered for Nova plus its text chunks.
What runs: the aws path as the server assembles it (`app.assemble`: Nova embedder at dimension 1024 on the
tests' Bedrock double, `FakeBedrockRuntime`, with its JSON bodies), into a store that checks each batch as
S3 Vectors would and then discards it, so the figure is the server's own memory, not a store's.
The call's limits (files per call, PDF pages) are raised so every size runs whole.
Growth = peak RSS during the call minus RSS just before it (Linux: VmHWM reset is not portable, so a
sampling thread reads the current RSS every 5 ms; elsewhere ru_maxrss). Target: <= 150 MB for every case,
flat across the three sizes.

    python -m benchmarks.memory [--smoke] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FULL = {"texts": 20_000, "folder": 200, "pdf": 300}
SMOKE = {"texts": 200, "folder": 4, "pdf": 6}
TARGET_MB = 150.0
CHUNK_WORDS = 330  # ~2,000 characters: one Nova text chunk


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class Peak:
    """The highest RSS seen while the block runs (sampled), for growth over the RSS at entry."""

    def __enter__(self) -> Peak:
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def make_data(case: str, n: int, where: Path) -> list[dict[str, Any]]:
    """The `index_content` contents of one case, written under `where`."""
    sys.path.insert(0, str(ROOT / "tests"))
    words = [f"w{i}" for i in range(5000)]

    def chunk(seed: int) -> str:
        return " ".join(words[(seed * 7 + j) % len(words)] for j in range(CHUNK_WORDS))

    if case == "texts":
        return [{"text": f"note {i}: " + " ".join(words[(i + j) % 5000] for j in range(40))} for i in range(n)]
    if case == "folder":
        folder = where / "folder"
        folder.mkdir()
        for f in range(n):
            (folder / f"doc{f:04d}.txt").write_text("\n\n".join(chunk(f * 100 + c) for c in range(100)))
        return [{"path": str(folder)}]
    from fixtures.media import make_pdf

    pages = [f"page {p} " + " ".join(words[(p * 13 + j) % 5000] for j in range(60)) for p in range(n)]
    return [{"path": str(make_pdf(where / "book.pdf", pages))}]


class SinkStore:
    """Checks each put as S3 Vectors would (batch size, dimension) and keeps nothing but counts."""

    def __init__(self, dimension: int) -> None:
        from nova_mcp_server.stores.base import IndexInfo

        self.dimension = dimension
        self.info: IndexInfo | None = None
        self.vectors = 0
        self.batches = 0

    def create_index(self, spec: Any) -> Any:
        from nova_mcp_server.stores.base import IndexInfo

        self.info = IndexInfo(**spec.model_dump(), vector_count=0)
        return self.info

    def get_index(self, name: str) -> Any:
        from nova_mcp_server.errors import IndexNotFound

        if self.info is None:
            raise IndexNotFound(name)
        return self.info

    def put_vectors(self, index: str, vectors: Any) -> None:
        from nova_mcp_server.stores.base import MAX_PUT

        assert len(vectors) <= MAX_PUT and all(len(v.data) == self.dimension for v in vectors)
        self.vectors += len(vectors)
        self.batches += 1

    def get_vectors(self, index: str, keys: Any, **kwargs: Any) -> list[Any]:
        return []

    def delete_vectors(self, index: str, keys: Any) -> None:
        return None


def forgetful_bedrock() -> Any:
    """The tests' Bedrock double, keeping no record of its calls: the records (every request body) would
    otherwise be the largest thing in this process and grow with the input."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.nova import FakeBedrockRuntime

    class Forgetful(FakeBedrockRuntime):
        def _begin(self, operation: str, kwargs: dict[str, Any]) -> Any:
            call = super()._begin(operation, kwargs)
            with self._lock:
                self.calls.clear()
            return call

    return Forgetful()


def child(case: str, n: int) -> dict[str, Any]:
    """One measurement in this (fresh) process; prints nothing but the JSON result."""
    import anyio

    from nova_mcp_server.app import assemble, build_ingest
    from nova_mcp_server.embedders.nova import NovaEmbedder
    from nova_mcp_server.models import ContentInput
    from nova_mcp_server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        contents = [ContentInput(**c) for c in make_data(case, n, where)]
        settings = Settings(  # the per-call limits raised: this measures memory, not the limits' answers
            backend="aws",
            data_dir=where / "data",
            allowed_roots=[where],
            dimension=1024,
            max_files_per_call=1_000_000,
            max_pdf_pages=10_000,
        )
        embedder = NovaEmbedder(default_dimension=1024, concurrency=8, bedrock=forgetful_bedrock(), s3=None)
        store = SinkStore(1024)
        app = assemble(settings, embedder, store, build_ingest(settings))  # type: ignore[arg-type]
        started = time.perf_counter()
        with Peak() as peak:
            report = anyio.run(lambda: app.indexing.index(contents, index="memory"))
        seconds = time.perf_counter() - started
    return {
        "case": case,
        "size": n,
        "segments": report.indexed_segments,
        "vectors_written": store.vectors,
        "put_batches": store.batches,
        "failed": len(report.failed),
        "rss_before_mb": round(peak.start, 1),
        "peak_growth_mb": round(peak.peak - peak.start, 1),
        "seconds": round(seconds, 2),
    }


def run(smoke: bool) -> dict[str, Any]:
    sizes = SMOKE if smoke else FULL
    rows = []
    for case, full in sizes.items():
        for factor in (0.5, 1, 2):
            n = max(1, int(full * factor))
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.memory", "--child", case, str(n)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{case:7s} x{factor:<4g} n={n:<6d} segments={row['segments']:<6d} "
                f"growth={row['peak_growth_mb']:7.1f} MB  ({row['seconds']:.1f} s)",
                flush=True,
            )
    by_case = {c: [r["peak_growth_mb"] for r in rows if r["case"] == c] for c in sizes}
    return {
        "benchmark": "memory",
        "environment": {
            "machine": f"{os.cpu_count()} cores",
            "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "python": sys.version.split()[0],
            "model": "FakeBedrockRuntime (tests/fakes/nova.py) keeping no call records; Nova shapes, dimension 1024",
            "store": "a sink that checks batches and keeps nothing (the server's own memory only)",
        },
        "smoke": smoke,
        "target_mb": TARGET_MB,
        "rows": rows,
        "max_growth_mb": {c: max(v) for c, v in by_case.items()},
        "met": all(max(v) <= TARGET_MB for v in by_case.values()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return None
    data = run(args.smoke)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "memory_smoke.json" if args.smoke else "memory.json"
    (args.out / name).write_text(json.dumps(data, indent=2) + "\n")
    print(
        f"max growth per case: {data['max_growth_mb']} (target {TARGET_MB} MB): {'met' if data['met'] else 'NOT met'}"
    )
    return data


if __name__ == "__main__":
    main()
