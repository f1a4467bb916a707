"""Crash and fault benchmark: kill -9 the indexer again and again, inject faults, throw bad input; lose nothing.

    python -m benchmarks.faults                 # >= 20 kills + fault-injection runs + bad inputs (a few minutes)
    python -m benchmarks.faults --kills 3       # quick
    python -m benchmarks.faults drive ...       # the child process the kill loop starts (used by tests too)

Kill loop: a child process builds the real local `App` (tiny CLIP model from the tests' fixture builder, or
`--model-path`) and indexes a folder of multi-chunk text files, printing progress; the parent SIGKILLs it at
a random point mid-indexing, then opens the store as a restarted server would and checks: `integrity_check`
passes, every key is unique and one the corpus produces, and every source that was committed (its segment-0
marker present) before the kill is still complete. Between kills some files change, so later runs replace
segments (and delete stale ones) as well as add. At the end a run to completion must hold exactly the keys a
clean run on a fresh data directory writes.

Async kill: a Nova core (fake Bedrock + S3 on a moto server shared by the processes) starts a segmented job
for a long video; once Bedrock reports it finished, the child is killed in the middle of ingesting its output
(writes are slowed; the kill comes as the commit marker is being written, after the segments landed). A restarted child takes the job over when the dead one's lease
runs out (shortened to 2 s here) and must end with exactly the job's keys.

Fault runs: Bedrock throttling/5xx at random rates and S3 Vectors batches that fail past the retries, each
followed by a re-run; bad inputs: random malformed tool calls through an in-process MCP client.
Prints the figures and writes `benchmarks/results/faults.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
INDEX = "crash"
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


# ---- corpus and store checks ------------------------------------------------------------------------------


def write_file(path: Path, rng: random.Random) -> None:
    """Multi-chunk text (local chunks are ~300 characters): 1 to 6 chunks, different words each time."""
    sentences = [" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(rng.randint(4, 26))]
    path.write_text(" ".join(sentences))


def write_shorter(path: Path, rng: random.Random) -> None:
    """A new version with fewer sentences than the file has now (so fewer segments): stale keys to delete."""
    now = path.read_text().count(".")
    sentences = [" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(max(1, now // 3))]
    path.write_text(" ".join(sentences))


def make_corpus(folder: Path, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(n):
        write_file(folder / f"doc{i:04d}.txt", rng)


def store_state(data_dir: Path, index: str = INDEX) -> dict[str, Any]:
    """What a restarted server finds: all keys, the committed sources (marker -> count, hash), problems."""
    from nova_mcp_server.errors import IndexNotFound
    from nova_mcp_server.stores.local import LocalVectorStore

    store = LocalVectorStore(data_dir / "store")
    try:
        try:
            problems = store.integrity_check(index)
        except IndexNotFound:
            return {"keys": [], "committed": {}, "problems": []}
        found: list[Any] = []
        token = None
        while True:
            page = store.list_vectors(index, max_results=1000, next_token=token, return_metadata=True)
            found += page.vectors
            token = page.next_token
            if token is None:
                break
        keys = [v.key for v in found]
        if len(keys) != len(set(keys)):
            problems.append("duplicate keys")
        if store.get_index(index).vector_count != len(keys):
            problems.append("vector_count differs from the listed keys")
        present = set(keys)
        committed: dict[str, tuple[int, str]] = {}
        for v in found:
            meta = v.metadata or {}
            if v.key.endswith("-00000") and "content_hash" in meta:
                if _file_hash(meta.get("source")) not in (None, meta["content_hash"]):
                    continue  # its file changed: mid-replacement (old stale segments may be gone), redone next run
                sid = v.key.rsplit("-", 1)[0]
                count = int(meta["segment_count"])
                missing = [n for n in range(count) if f"{sid}-{n:05d}" not in present]
                if missing:
                    problems.append(f"committed source {meta.get('source')} misses segments {missing}")
                committed[sid] = (count, meta["content_hash"])
        return {"keys": sorted(keys), "committed": committed, "problems": problems}
    finally:
        store.close()


def _file_hash(path: str | None) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(Path(path or "").read_bytes()).hexdigest()
    except OSError:
        return None


# ---- the child: index a folder on the local backend --------------------------------------------------------


def drive(args: argparse.Namespace) -> int:
    """Index `folder` into INDEX with the real local App, printing `progress <done>` lines (flushed)."""
    import anyio

    from nova_mcp_server.app import build_app
    from nova_mcp_server.models import ContentInput
    from nova_mcp_server.settings import Settings

    settings = Settings(
        backend="local",
        data_dir=Path(args.data_dir),
        local_model_path=Path(args.model_path),
        allowed_roots=[Path(args.folder)],
    )
    core = build_app(settings)

    async def progress(done: float, total: float | None, message: str) -> None:
        print(f"progress {int(done)} {total}", flush=True)

    async def run() -> Any:
        return await core.indexing.index([ContentInput(path=args.folder)], index=INDEX, progress=progress)

    report = anyio.run(run)
    print("finished " + report.model_dump_json(), flush=True)
    return 0


def start_child(*argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.faults", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_completion(data_dir: Path, model: Path, folder: Path) -> dict[str, Any]:
    child = start_child("drive", str(data_dir), str(model), str(folder))
    out, err = child.communicate(timeout=600)
    if child.returncode != 0:
        raise RuntimeError(f"driver failed: {err[-2000:]}")
    last = [line for line in out.splitlines() if line.startswith("finished ")][-1]
    return json.loads(last.removeprefix("finished "))


def kill_mid_run(data_dir: Path, model: Path, folder: Path, rng: random.Random, files: int) -> str:
    """Start the indexer and SIGKILL it at a random point of its progress; returns what happened."""
    child = start_child("drive", str(data_dir), str(model), str(folder))
    assert child.stdout is not None
    target = rng.randint(1, files)
    seen = 0
    for line in child.stdout:
        if line.startswith("finished"):
            child.wait(timeout=30)
            return "finished before the kill"
        if line.startswith("progress"):
            seen += 1
            if seen >= target:
                break
    time.sleep(rng.uniform(0, 0.05))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(f"driver exited with {child.returncode} before the kill")
    return "killed"


def kill_loop(kills: int, model: Path, work: Path, files: int = 400, seed: int = 1) -> dict[str, Any]:
    """`kills` SIGKILLs mid-indexing with checks after each; a final full run must match a clean run exactly."""
    rng = random.Random(seed)
    folder, data = work / "corpus", work / "data"
    make_corpus(folder, files, seed)
    survived = lost = 0
    problems: list[str] = []
    before = store_state(data)
    changed: set[str] = set()
    for _ in range(kills):
        outcome = kill_mid_run(data, model, folder, rng, files)
        after = store_state(data)
        problems += after["problems"]
        present = set(after["keys"])
        for sid, (count, digest) in before["committed"].items():
            if sid in changed:
                continue  # its file changed since: a new version may legitimately be replacing it
            if after["committed"].get(sid, (None, None))[1] != digest:
                lost += count
            lost += sum(f"{sid}-{n:05d}" not in present for n in range(count))
        if outcome == "killed":
            survived += 1
        # Change a few files so that later runs replace segments and delete stale ones, not only add.
        changed = set()
        for i, path in enumerate(rng.sample(sorted(folder.iterdir()), k=max(2, files // 20))):
            (write_shorter if i % 2 else write_file)(path, rng)  # half of them shrink: stale keys to delete
            changed.add(source_id(path))
        before = after
    final = run_to_completion(data, model, folder)
    after = store_state(data)
    problems += after["problems"]
    clean = work / "clean"
    run_to_completion(clean, model, folder)
    reference = store_state(clean)
    missing = set(reference["keys"]) - set(after["keys"])
    extra = set(after["keys"]) - set(reference["keys"])
    if extra:
        problems.append(f"{len(extra)} keys a clean run does not write")
    return {
        "kills": kills,
        "kills_survived": survived,
        "vectors_lost": lost + len(missing),
        "final_vectors": len(after["keys"]),
        "final_report": {k: final[k] for k in ("indexed_sources", "skipped_unchanged", "indexed_segments")},
        "problems": problems,
    }


def source_id(path: Path) -> str:
    from nova_mcp_server import keys

    return keys.source_id("file://" + os.path.realpath(path))


# ---- async job: kill while ingesting a finished Bedrock job ----------------------------------------------


def drive_async(args: argparse.Namespace) -> int:
    """Child: Nova core on the fake + moto server. `start`: index the long video (starts the job).
    `advance`: poll the job until it is done, with slow writes so a kill can land mid-ingest."""
    import anyio
    import boto3

    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.nova import FakeBedrockRuntime  # the tests' Bedrock double

    from nova_mcp_server.app import assemble, build_nova_async
    from nova_mcp_server.embedders.nova import NovaEmbedder
    from nova_mcp_server.ingest.pipeline import Ingest
    from nova_mcp_server.settings import Settings
    from nova_mcp_server.stores.local import LocalVectorStore

    data = Path(args.data_dir)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=args.endpoint)
    state_file = data / "fake-bedrock.pickle"
    fake = FakeBedrockRuntime(s3=s3, media_seconds=40.0, in_progress_polls=1)
    if state_file.exists():
        fake.jobs = pickle.loads(state_file.read_bytes())  # the "service" remembers its jobs across our restarts
    settings = Settings(backend="aws", data_dir=data, allowed_roots=[Path(args.folder)], dimension=256)
    embedder = NovaEmbedder(default_dimension=256, bedrock=fake, s3=s3, backoff_base=0.01)
    store = LocalVectorStore(data / "store")
    real_put = store.put_vectors

    def slow_put(index: str, vectors: Any) -> None:
        print("ingesting", flush=True)
        time.sleep(0.3)
        real_put(index, vectors)

    store.put_vectors = slow_put  # type: ignore[method-assign]
    settings = settings.model_copy(update={"staging_bucket": "nova-test-output", "segment_seconds": 10})
    ingest = Ingest(
        allowed_roots=[Path(args.folder)], allowed_buckets=[], download_dir=data / "downloads", s3_client=s3
    )
    nova_async = build_nova_async(settings, embedder, s3)
    core = assemble(settings, embedder, store, ingest, nova_async=nova_async, lease_seconds=2.0)
    # ^ a dead owner's claim on the job runs out in 2 s here instead of jobs.LEASE_SECONDS (5 minutes)

    async def run() -> None:
        from nova_mcp_server.models import ContentInput

        if args.step == "start":
            report = await core.indexing.index([ContentInput(path=str(Path(args.folder) / "talk.mp4"))], index="talks")
            state_file.write_bytes(pickle.dumps(fake.jobs))
            print("job " + report.jobs[0], flush=True)
            return
        for _ in range(200):
            await core.jobs.poll()
            state_file.write_bytes(pickle.dumps(fake.jobs))
            if not core.jobstore.active_ids():
                break
            await anyio.sleep(0.2)
        print("done " + json.dumps([j.model_dump(mode="json") for j in core.jobstore.recent(5)]), flush=True)

    anyio.run(run)
    return 0


def async_kill(work: Path) -> dict[str, Any]:
    """Kill during the ingest of a finished async job; a restart (after the lease) finishes it exactly once."""
    import boto3
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.media import BLUE, GREEN, RED, make_mp4

    folder, data = work / "media", work / "async-data"
    folder.mkdir(parents=True)
    data.mkdir(parents=True)
    make_mp4(folder / "talk.mp4", seconds=40.0, colors_per_block=(RED, GREEN, BLUE, RED), size=(64, 48), fps=2)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(Bucket="nova-test-output")
        base = ("drive-async", str(data), str(folder), endpoint)
        starter = start_child(*base, "start")
        out, err = starter.communicate(timeout=120)
        if starter.returncode:
            raise RuntimeError(err[-2000:])
        child = start_child(*base, "advance")
        assert child.stdout is not None
        killed = False
        puts = 0
        for line in child.stdout:
            puts += line.startswith("ingesting")
            if puts == 2:  # the segments have landed, the commit marker is being written: kill now
                child.send_signal(signal.SIGKILL)
                killed = True
                break
        child.communicate(timeout=30)
        mid = store_state(data, "talks")
        time.sleep(2.5)  # the dead process's lease on the job runs out
        finisher = start_child(*base, "advance")
        out, err = finisher.communicate(timeout=120)
        if finisher.returncode:
            raise RuntimeError(err[-2000:])
        jobs = json.loads([x for x in out.splitlines() if x.startswith("done ")][-1].removeprefix("done "))
        final = store_state(data, "talks")
        return {
            "killed_mid_ingest": killed,
            "keys_at_kill": len(mid["keys"]),
            "final_keys": len(final["keys"]),
            "job_status": jobs[0]["status"],
            "vectors_written": jobs[0]["vectors_written"],
            "problems": mid["problems"] + final["problems"] + ([] if len(final["keys"]) == 4 else ["expected 4 keys"]),
        }
    finally:
        server.stop()


# ---- fault injection runs (in process) --------------------------------------------------------------------


def fault_runs(work: Path, runs: int) -> dict[str, Any]:
    """Random Bedrock throttling/5xx and failing S3 Vectors batches; each run then re-runs clean and must end
    exactly on the keys a fault-free run writes."""
    import anyio
    import boto3
    from moto import mock_aws

    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.nova import FakeBedrockRuntime, client_error
    from stores_support import S3VectorsEmulator
    from support import nova_core

    from nova_mcp_server.models import ContentInput
    from nova_mcp_server.stores.s3vectors import S3VectorsStore

    class FlakyPuts:
        def __init__(self, client: Any, rate: float, rng: random.Random) -> None:
            self._client, self.rate, self.rng, self.failures = client, rate, rng, 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def put_vectors(self, **params: Any) -> Any:
            if self.rng.random() < self.rate:
                self.failures += 1
                raise client_error("ServiceUnavailableException", "injected", "PutVectors", 503)
            return self._client.put_vectors(**params)

    def keys_of(core: Any, index: str) -> list[str]:
        out, token = [], None
        while True:
            page = core.store.list_vectors(index, max_results=1000, next_token=token)
            out += [v.key for v in page.vectors]
            token = page.next_token
            if token is None:
                return sorted(out)

    folder = work / "fault-corpus"
    for i in range(40):
        folder.mkdir(exist_ok=True)
        (folder / f"f{i:03d}.txt").write_text(f"file {i} " + " ".join(f"w{i}x{j}" for j in range(700)))
    injected = reruns = lost = 0
    problems: list[str] = []
    with mock_aws():
        ref_core = nova_core(work / "fault-ref", FakeBedrockRuntime(), allowed_roots=[work])
        anyio.run(lambda: ref_core.indexing.index([ContentInput(path=str(folder))], index="ref"))
        reference = keys_of(ref_core, "ref")
        for run in range(runs):
            rng = random.Random(run)
            fake = FakeBedrockRuntime(throttle_rate=rng.uniform(0.05, 0.4), error_rate=rng.uniform(0.0, 0.2), seed=run)
            flaky = FlakyPuts(S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1")), 0.3, rng)
            store = S3VectorsStore(flaky, f"faults-{run}")
            core = nova_core(work / f"fault-{run}", fake, allowed_roots=[work], concurrency=4, store=store)
            anyio.run(lambda c=core: c.indexing.index([ContentInput(path=str(folder))], index="runs"))  # under faults
            fake.throttle_rate = fake.error_rate = 0.0
            flaky.rate = 0.0
            for _ in range(3):
                if keys_of(core, "runs") == reference:
                    break
                again = anyio.run(lambda c=core: c.indexing.index([ContentInput(path=str(folder))], index="runs"))
                reruns += 1
                if again.failed:
                    problems.append(f"run {run}: a clean re-run failed: {again.failed[0].reason}")
            injected += sum(c.error is not None for c in fake.calls) + flaky.failures
            got = keys_of(core, "runs")
            lost += len(set(reference) - set(got))
            if got != reference:
                problems.append(f"run {run}: keys differ from a fault-free run after re-runs")
    return {"runs": runs, "faults_injected": injected, "reruns": reruns, "vectors_lost": lost, "problems": problems}


# ---- bad inputs ------------------------------------------------------------------------------------------


def bad_inputs(work: Path, model: Path, count: int) -> dict[str, Any]:
    """Random malformed calls at every tool through an in-process MCP client: no crash, no state change."""
    import anyio
    from mcp import Client

    sys.path.insert(0, str(ROOT / "tests"))
    from support import local_core

    from nova_mcp_server.server import build_server

    rng = random.Random(3)
    junk: list[Any] = [
        None,
        True,
        -1,
        0,
        101,
        2**70,
        1e308,
        "",
        " ",
        "..",
        "../../etc/passwd",
        "s3://",
        "s3:/x",
        "A_B",
        "$and",
        {"$in": []},
        {"page": {"$gt": "x"}},
        [],
        [{}],
        {"a": {"b": 1}},
        "x" * 5000,
    ]
    tools = [
        "embed_content",
        "semantic_search",
        "index_content",
        "create_index",
        "delete_index",
        "delete_content",
        "job_status",
        "list_indexes",
    ]
    params = {
        "embed_content": ["contents", "purpose", "dimension"],
        "semantic_search": ["query", "index", "top_k", "filter"],
        "index_content": ["sources", "texts", "index", "metadata"],
        "create_index": ["name"],
        "delete_index": ["name"],
        "delete_content": ["source", "index"],
        "job_status": ["job_id"],
        "list_indexes": [],
    }
    core = local_core(work / "bad", model)
    tried = crashes = changed = 0

    async def run() -> None:
        nonlocal tried, crashes, changed
        async with Client(build_server(core, poll_seconds=0)) as client:
            await client.call_tool("index_content", {"texts": ["seed text"], "index": "docs"})
            snapshot = full_snapshot(core.store)
            for _ in range(count):
                tool = rng.choice(tools)
                args = {p: rng.choice(junk) for p in params[tool] if rng.random() < 0.8}
                result = await client.call_tool(tool, args)
                tried += 1
                text = " ".join(getattr(b, "text", "") for b in result.content)
                if result.is_error and text.strip() == f"Error executing tool {tool}":
                    crashes += 1
                now = full_snapshot(core.store)
                if result.is_error and now != snapshot:
                    changed += 1
                snapshot = now

    anyio.run(run)
    return {"inputs_tried": tried, "crashes": crashes, "failed_calls_that_changed_state": changed}


def full_snapshot(store: Any) -> dict[str, Any]:
    """Every index with every stored key, vector and metadata: what a failed call must leave as it was."""
    state: dict[str, Any] = {}
    for info in store.list_indexes():
        rows: list[tuple[str, Any, str]] = []
        token = None
        while True:
            page = store.list_vectors(info.name, next_token=token, return_data=True, return_metadata=True)
            rows += [(v.key, v.data, json.dumps(v.metadata, sort_keys=True)) for v in page.vectors]
            if not (token := page.next_token):
                break
        state[info.name] = (info.dimension, sorted(rows))
    return state


def tiny_model(work: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.tiny_clip import build_tiny_clip

    return Path(build_tiny_clip(work / "tiny-clip"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("drive", help="child: index a folder (killed by the parent)")
    d.add_argument("data_dir")
    d.add_argument("model_path")
    d.add_argument("folder")
    a = sub.add_parser("drive-async", help="child: start or advance an async Nova job")
    a.add_argument("data_dir")
    a.add_argument("folder")
    a.add_argument("endpoint")
    a.add_argument("step", choices=["start", "advance"])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--fault-runs", type=int, default=8)
    parser.add_argument("--bad-inputs", type=int, default=1000)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--model-path", type=Path, help="local CLIP folder (default: the tests' tiny model)")
    parser.add_argument("--smoke", action="store_true", help="2 kills, 1 fault run, 20 bad inputs, 20 files (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.kills, args.fault_runs, args.bad_inputs, args.files = 2, 1, 20, 20
    if args.command == "drive":
        return drive(args)
    if args.command == "drive-async":
        return drive_async(args)

    from benchmarks._common import fake_aws_env

    fake_aws_env()  # everything AWS here is moto or the fake: never a real profile or endpoint
    work = Path(tempfile.mkdtemp(prefix="nova-faults-"))
    try:
        model = args.model_path or tiny_model(work)
        started = time.monotonic()
        kills = kill_loop(args.kills, model, work / "kills", files=args.files)
        async_result = async_kill(work / "async")
        faults = fault_runs(work, args.fault_runs)
        bad = bad_inputs(work, model, args.bad_inputs)
        problems = kills["problems"] + async_result["problems"] + faults["problems"]
        figures = {
            "inputs_tried": bad["inputs_tried"],
            "input_crashes": bad["crashes"],
            "failed_inputs_that_changed_state": bad["failed_calls_that_changed_state"],
            "faults_injected": faults["faults_injected"],
            "fault_runs": faults["runs"],
            "kills": kills["kills"] + int(async_result["killed_mid_ingest"]),
            "kills_survived": kills["kills_survived"] + int(async_result["killed_mid_ingest"]),
            "vectors_lost": kills["vectors_lost"] + faults["vectors_lost"],
            "problems": problems,
            "seconds": round(time.monotonic() - started, 1),
        }
        result = {"figures": figures, "kill_loop": kills, "async_kill": async_result, "fault_runs": faults, "bad": bad}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
        ok = not problems and figures["vectors_lost"] == 0 and bad["crashes"] == 0
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
