"""kill -9 mid-indexing, restart: nothing committed is lost, no key is duplicated, the store is sound.

The child is `python -m benchmarks.faults drive`: the real local `Core` (tiny CLIP model) indexing a folder of
multi-chunk text files and printing its progress, so the kill lands while sources are being embedded and
written. `benchmarks/faults.py` runs the same loop at scale (>= 20 kills, an async-job kill, fault runs).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes.nova import FakeBedrockRuntime
from support import REPO, local_core, nova_core

ROOT = REPO
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` is a top-level folder, not an installed package

from benchmarks.faults import (  # noqa: E402
    kill_mid_run,
    make_corpus,
    run_to_completion,
    store_state,
    write_file,
    write_shorter,
)
from nova_mcp_server import keys  # noqa: E402
from nova_mcp_server.errors import BackendUnavailable  # noqa: E402
from nova_mcp_server.models import ContentInput  # noqa: E402

pytestmark = pytest.mark.anyio
FILES = 300  # ~1,500 segments: several 500-vector batches, so kills land between committed batches too


async def test_sigkill_mid_indexing_then_restart(tmp_path: Path, tiny_model: Path) -> None:
    rng = random.Random(5)
    folder, data = tmp_path / "corpus", tmp_path / "data"
    make_corpus(folder, FILES, seed=5)
    committed: dict[str, tuple[int, str]] = {}
    killed = 0
    for round_ in range(3):
        outcome = kill_mid_run(data, tiny_model, folder, rng, FILES)
        killed += outcome == "killed"
        state = store_state(data)  # a fresh opener, as a restarted server
        assert state["problems"] == []  # integrity_check passes, no duplicates, every marker's segments present
        present = set(state["keys"])
        for sid, (count, digest) in committed.items():  # committed before this kill: still all there
            assert state["committed"].get(sid, (0, ""))[1] == digest
            assert all(keys.vector_key(sid, n) in present for n in range(count))
        committed = state["committed"]
        if round_ == 1:
            for path in sorted(folder.iterdir())[:10]:  # later runs replace these, with other segment counts
                write_file(path, rng)
                committed.pop(keys.source_id("file://" + os.path.realpath(path)), None)
    assert killed >= 2, "the child finished before it could be killed: make the corpus bigger"

    report = run_to_completion(data, tiny_model, folder)  # restart and finish
    assert report["failed"] == [] and report["skipped_unchanged"] >= len(committed) > 0
    final = store_state(data)
    assert final["problems"] == [] and final["keys"] == await expected_keys(tmp_path, tiny_model, folder)


async def test_sigkill_while_sources_shrink_ends_with_exactly_the_new_segments(
    tmp_path: Path, tiny_model: Path
) -> None:
    """Every source replaced by a shorter version, the re-index killed at random points, then finished:
    exactly the new versions' segments remain (no stale key of a longer version, none missing)."""
    rng = random.Random(11)
    folder, data = tmp_path / "corpus", tmp_path / "data"
    make_corpus(folder, FILES, seed=11)
    first = run_to_completion(data, tiny_model, folder)
    assert first["failed"] == [] and first["indexed_sources"] == FILES
    for path in sorted(folder.iterdir()):
        write_shorter(path, rng)
    killed = 0
    for _ in range(2):
        killed += kill_mid_run(data, tiny_model, folder, rng, FILES) == "killed"
        assert store_state(data)["problems"] == []
    assert killed >= 1, "the child finished before it could be killed: make the corpus bigger"
    report = run_to_completion(data, tiny_model, folder)
    assert report["failed"] == []
    final = store_state(data)
    assert final["problems"] == [] and final["keys"] == await expected_keys(tmp_path, tiny_model, folder)


async def expected_keys(tmp_path: Path, tiny_model: Path, folder: Path) -> list[str]:
    """Every segment key of every file as the local backend cuts them: what a clean run writes."""
    core = local_core(tmp_path / "expected", tiny_model, allowed_roots=[folder])
    sources, failures = await core.ingest.resolve_contents([ContentInput(path=str(folder))])
    assert not failures and len(sources) == FILES
    out = []
    for source in sources:
        sid = keys.source_id(source.uri)
        out += [keys.vector_key(sid, seg.ordinal) for seg in await core.ingest.segment(source, core.embedder.info)]
    return sorted(out)


async def test_leftovers_of_an_interrupted_longer_version_are_removed(tmp_path: Path) -> None:
    """v1 committed; v2 (longer) dies after its segments but before its marker; v3 (shorter) must leave only
    its own keys: the v2 segments past every marker's count would otherwise stay searchable for good."""
    folder = tmp_path / "docs"
    folder.mkdir()
    doc = folder / "doc.txt"
    fake = FakeBedrockRuntime()
    core = nova_core(tmp_path, fake)

    def version(chunks: int) -> None:
        doc.write_text("\n\n".join(f"Part {p}. " + f"word{p} " * 300 for p in range(chunks)))

    sid = keys.source_id("file://" + os.path.realpath(doc))
    version(3)
    await core.indexing.index([ContentInput(path=str(doc))], index="docs")
    v1 = sorted(v.key for v in core.store.list_vectors("docs").vectors)

    version(8)
    real_put = core.store.put_vectors

    def lose_the_marker(index: str, vectors: Any) -> None:
        if any(v.key == keys.vector_key(sid, 0) for v in vectors):
            raise BackendUnavailable("injected: the process died before the commit marker")
        real_put(index, vectors)

    core.store.put_vectors = lose_the_marker  # type: ignore[method-assign]
    interrupted = await core.indexing.index([ContentInput(path=str(doc))], index="docs")
    assert interrupted.failed and len(core.store.list_vectors("docs").vectors) > len(v1)
    core.store.put_vectors = real_put  # type: ignore[method-assign]

    version(2)
    report = await core.indexing.index([ContentInput(path=str(doc))], index="docs")
    assert report.indexed_sources == 1 and not report.failed
    left = sorted(v.key for v in core.store.list_vectors("docs", max_results=1000).vectors)
    marker = core.store.get_vectors("docs", [keys.vector_key(sid, 0)])[0].metadata or {}
    assert left == [keys.vector_key(sid, n) for n in range(marker["segment_count"])]
