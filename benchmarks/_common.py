"""Helpers shared by the benchmark scripts: timing, percentiles, tables, JSON and optional PNG output.

Every script writes `benchmarks/results/<name>.json` (plus `<name>.png` when matplotlib is importable) so
figures can be compared across commits, and prints the same figures as a table for a person at a terminal.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def use_test_helpers() -> None:
    """Put `tests/` on sys.path, as pytest does, so `fakes.*` and `fixtures.*` import as the same modules."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def fake_aws_env() -> None:
    """Fake credentials and no config files: nothing in a benchmark can reach a real AWS account."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t: ...` then `t[0]` is the elapsed wall time in seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default method), p in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/min/max/mean of durations given in seconds, reported in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "min_ms": round(min(ms), 3) if ms else math.nan,
        "max_ms": round(max(ms), 3) if ms else math.nan,
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else math.nan,
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A plain aligned text table (no dependency), numbers right-aligned."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row, raw in zip(cells, rows, strict=True):
        print(
            "  ".join(
                c.rjust(w) if isinstance(v, int | float) else c.ljust(w)
                for c, v, w in zip(row, raw, widths, strict=True)
            )
        )


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def environment() -> dict[str, Any]:
    """What the figures depend on: machine, interpreter, commit (dirty or not)."""
    commit = None
    with suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
    }


def write_json(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    out = (out_dir or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "environment": environment(), **data}, indent=2) + "\n")
    return out


def maybe_plot(name: str, draw: Callable[[Any], None], out_dir: Path | None = None) -> Path | None:
    """Call `draw(pyplot)` and save `<name>.png` if matplotlib is installed (optional: `pip install matplotlib`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out = (out_dir or RESULTS) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plt.close("all")
    draw(plt)
    plt.tight_layout()
    plt.savefig(out, dpi=110)
    plt.close("all")
    return out
