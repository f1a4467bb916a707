"""The benchmark scripts at smoke size, so they cannot rot: they run, and write their JSON (and PNG if it can).

No time is asserted (the machine is shared); only what must hold at any speed: nothing lost or duplicated,
puts batched, every source committed, the model not loaded at `initialize`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` is a top-level folder, not an installed package


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """The scripts set fake AWS credentials and HF_HUB_OFFLINE for their process; keep that out of other tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_bedrock_path_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import bedrock_path

    data = bedrock_path.main(["--smoke", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "bedrock_path.json").read_text())
    assert written["runs"] == data["runs"] and "ratio" in capsys.readouterr().out
    assert {(r["shape"], r["store"], r["run"]) for r in data["runs"]} == {
        (shape, store, run)
        for shape in ("texts", "files")
        for store in ("s3vectors", "local")
        for run in ("clean", "faults")
    }
    for run in data["runs"]:
        assert run["segments"] == 60 and run["failed_sources"] == []
        assert (run["lost"], run["duplicated"], run["unexpected"], run["uncommitted_heads"]) == (0, 0, 0, 0)
        assert sum(run["put_batch_sizes"]) == 60 and max(run["put_batch_sizes"]) <= 500
        assert run["max_in_flight"] > 1  # calls overlap, even for one-chunk sources (texts)
    assert any(r["throttled"] for r in data["runs"] if r["run"] == "faults")


def test_mcp_overhead_smoke(tmp_path: Path) -> None:
    from benchmarks import mcp_overhead

    data = mcp_overhead.main(["--smoke", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "mcp_overhead.json").read_text())["transports"] == data["transports"]
    assert data["model_loaded_at_initialize"] is False
    for transport in ("stdio", "streamable-http"):
        figures = data["transports"][transport]
        assert figures["search_round_trip"]["n"] == figures["core_search"]["n"] == 10
        for name in ("search_round_trip", "core_search"):  # the summary is computed from the samples
            f = figures[name]
            assert f["min_ms"] <= f["p50_ms"] <= f["p95_ms"] <= f["max_ms"], f
        overhead = figures["search_round_trip"]["p50_ms"] - figures["core_search"]["p50_ms"]
        assert figures["search_overhead_p50_ms"] == pytest.approx(overhead, abs=0.01)
    stdio = data["transports"]["stdio"]
    assert stdio["sdk_floor_search_round_trip"]["n"] == 10
    above = stdio["search_overhead_p50_ms"] - stdio["sdk_floor_search_round_trip"]["p50_ms"]
    assert stdio["search_overhead_above_sdk_floor_p50_ms"] == pytest.approx(above, abs=0.01)
    assert len(data["loadavg"]["before"]) == len(data["loadavg"]["after"]) == 3


def test_store_smoke(tmp_path: Path) -> None:
    from benchmarks import store

    out = tmp_path / "store.json"
    store.main(["--smoke", "--out", str(out), "--work", str(tmp_path)])
    report = json.loads(out.read_text())
    [result] = report["results"]
    assert result["store"] == "local" and report["model"] and len(report["machine"]["loadavg_before"]) == 3
    for name, figures in result["filters"].items():
        assert figures["recall_at_k"] >= 0.99, name
        assert figures["results_per_query"] == 10.0 or figures["selectivity"] * result["n"] < 10, name
    assert result["build_s"] > 0  # the IVF was built (smoke lowers the row threshold)
    assert result["concurrency"]["threads"] == 8 and result["concurrency"]["none qps x8"] > 0


def test_load_smoke(tmp_path: Path) -> None:
    from benchmarks import load

    out = tmp_path / "load.json"
    assert load.main(["--smoke", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["errors"] == 0 and data["requests"] > 0, data
    store = data["store"]
    assert (store["vectors_lost"], store["duplicate_keys"], store["integrity_problems"]) == (0, 0, 0), store


def test_faults_smoke(tmp_path: Path) -> None:
    from benchmarks import faults

    out = tmp_path / "faults.json"
    assert faults.main(["--smoke", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())["figures"]
    assert figures["vectors_lost"] == 0 and figures["kills_survived"] == figures["kills"] >= 2
    assert figures["input_crashes"] == 0 and figures["faults_injected"] > 0


def test_memory_smoke(tmp_path: Path) -> None:
    from benchmarks import memory

    data = memory.main(["--smoke", "--out", str(tmp_path)])
    assert data is not None and json.loads((tmp_path / "memory_smoke.json").read_text()) == data
    assert [r["case"] for r in data["rows"]] == ["texts"] * 3 + ["folder"] * 3 + ["pdf"] * 3
    for row in data["rows"]:  # every size ran whole: each segment written once, nothing failed
        assert row["failed"] == 0 and row["segments"] == row["vectors_written"] > 0, row
    texts = [r for r in data["rows"] if r["case"] == "texts"]
    assert [r["segments"] for r in texts] == [r["size"] for r in texts]  # one segment per inline text


def test_embed_throughput_smoke(tmp_path: Path) -> None:
    from benchmarks import embed_throughput

    data = embed_throughput.main(["--smoke", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "embed_throughput_smoke.json").read_text())["towers"] == data["towers"]
    assert "random weights" in data["model"] and len(data["machine"]["loadavg_before"]) == 3
    [(name, tower)] = data["towers"].items()
    assert set(tower["items_per_s"]) == {"batch 1", "batch 4"} and min(tower["items_per_s"].values()) > 0
