"""Benchmark: hostile inputs get an answer from ingestion's bounds, in bounded time and memory.

Cases, each in a fresh child process (peak RSS = ru_maxrss of that child, time = wall clock of the case):
  deep-folder      a folder nested 1,000 levels, resolved with the default limits (answer: the depth limit)
  blank-pdf        a PDF of 2,000 blank pages (~0.5 MB), segmented with the default limits (answer: page limit)
  big-text-refused a 50 MB text file, resolved with the default limits (answer: the text-bytes limit)
  big-text-lazy    the same file with NOVA_MCP_MAX_TEXT_BYTES raised to 64 MiB: resolved, hashed and cut into
                   every chunk lazily (consumed one by one, nothing kept), for the Nova chunk size (2,000 chars)
No model runs: this measures ingestion, which is where the issue's hangs and the 814 MiB peak came from.

    python -m benchmarks.ingest_bounds [--smoke] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, print_table, write_json

NOVA_INFO = {
    "provider": "nova",
    "model": "amazon.nova-2-multimodal-embeddings-v1:0",
    "dimensions": [1024],
    "default_dimension": 1024,
    "modalities": ["text", "image", "audio", "video"],
    "max_text_chars": 8192,
}


def make_inputs(folder: Path, text_mb: int) -> None:
    import pypdfium2 as pdfium

    deep = folder / "deep"
    leaf = deep
    for _ in range(1000):
        leaf = leaf / "d"
        leaf.mkdir(parents=leaf.parent == deep)
    (leaf / "bottom.txt").write_text("far down")
    pdf = pdfium.PdfDocument.new()
    for _ in range(2000):
        pdf.new_page(612, 792)
    pdf.save(str(folder / "blank.pdf"))
    pdf.close()
    line = "Retrieval works best when a chunk holds one idea, and the rest follows from there. " * 4 + "\n"
    with (folder / "big.txt").open("w") as fh:
        for _ in range((text_mb << 20) // len(line)):
            fh.write(line)


def run_case(case: str, folder: Path) -> dict[str, Any]:
    """In this (child) process: one case, its answer, its time."""
    from nova_mcp_server.embedders.base import EmbedderInfo
    from nova_mcp_server.errors import NovaError
    from nova_mcp_server.ingest.limits import Limits
    from nova_mcp_server.ingest.segment import segment_source
    from nova_mcp_server.ingest.sources import resolve_sources

    info = EmbedderInfo(**NOVA_INFO)  # type: ignore[arg-type]
    target = {"deep-folder": "deep", "blank-pdf": "blank.pdf"}.get(case, "big.txt")
    size = (folder / "big.txt").stat().st_size
    limits = {
        "big-text-lazy": Limits(max_text_bytes=64 << 20),
        "big-text-refused": Limits(max_text_bytes=min(Limits().max_text_bytes, size // 2)),  # smoke: 5 MB file
    }.get(case, Limits())
    started = time.perf_counter()
    sources, failures = resolve_sources(
        [str(folder / target)], allowed_roots=[folder], download_dir=folder / "dl", limits=limits
    )
    answer, segments = (failures[0].reason if failures else "resolved"), 0
    for source in sources:
        try:
            for _ in segment_source(source, info, limits=limits):
                segments += 1
            answer = f"{segments:,} segments"
        except NovaError as exc:
            answer = exc.text
    return {"seconds": round(time.perf_counter() - started, 3), "segments": segments, "answer": answer[:160]}


def child(case: str, folder: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_bounds", "--child", case, "--folder", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cleanup_deep(folder: Path) -> None:
    leaf = folder / "deep"
    while (leaf / "d").is_dir():
        leaf = leaf / "d"
    (leaf / "bottom.txt").unlink(missing_ok=True)
    while leaf != folder / "deep":  # shutil.rmtree recurses and would overflow
        leaf.rmdir()
        leaf = leaf.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a 5 MB text file instead of 50 MB")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_case(args.child, args.folder)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    text_mb = 5 if args.smoke else 50
    with tempfile.TemporaryDirectory(prefix="nova-bounds-") as tmp:
        folder = Path(tmp).resolve()
        make_inputs(folder, text_mb)
        try:
            cases = {c: child(c, folder) for c in ("deep-folder", "blank-pdf", "big-text-refused", "big-text-lazy")}
            sizes = {
                "blank_pdf_bytes": (folder / "blank.pdf").stat().st_size,
                "text_bytes": (folder / "big.txt").stat().st_size,
            }
        finally:
            cleanup_deep(folder)
    load = os.getloadavg()
    print_table(
        ["case", "seconds", "peak RSS MB", "answer"],
        [[c, r["seconds"], r["peak_rss_mb"], r["answer"][:90]] for c, r in cases.items()],
        title=f"ingestion bounds (loadavg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; no model runs)",
    )
    path = write_json(
        "ingest_bounds",
        {"loadavg": load, "model": "none (ingestion only; Nova chunk size)", "inputs": sizes, "cases": cases},
        args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
