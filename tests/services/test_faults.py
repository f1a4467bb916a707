"""Faults in Bedrock and S3 Vectors: retried with backoff where a retry can help, a clear error where not,
and after a partial failure the index holds exactly what succeeded; re-running finishes the rest once.

Bedrock is the `FakeBedrockRuntime` (real error codes and statuses); vectors go to the local store, or to
`S3VectorsStore` on moto (through the query emulator) with faults injected below it. S3 Vectors retries are
our retry layer (`aws_retry`; botocore makes one attempt each), so they are exercised with faults injected at
the HTTP layer (`before-send`), where they fail an attempt as a real 503 would.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from fakes.nova import FakeBedrockRuntime, client_error
from fixtures.media import BLUE, GREEN, RED, make_mp4
from mcp import Client
from stores_support import S3VectorsEmulator
from support import nova_core

from nova_mcp_server import keys
from nova_mcp_server.app import App
from nova_mcp_server.aws import AwsClients
from nova_mcp_server.aws_retry import RetryPolicy
from nova_mcp_server.errors import BackendUnavailable
from nova_mcp_server.models import ContentInput
from nova_mcp_server.server import build_server
from nova_mcp_server.stores.base import IndexSpec, VectorRecord
from nova_mcp_server.stores.s3vectors import S3VectorsStore

pytestmark = pytest.mark.anyio
BUCKET = "nova-test-output"


def corpus(tmp_path: Path, n: int = 5, chunks: int = 3) -> Path:
    """n text files of `chunks` Nova chunks each (~2,000 characters a chunk)."""
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        paragraphs = [f"File {i} paragraph {p}. " + f"word{i}x{p} " * 330 for p in range(chunks)]
        (folder / f"doc{i}.txt").write_text("\n\n".join(paragraphs))
    return folder


def stored_keys(core: App, index: str) -> list[str]:
    page = core.store.list_vectors(index, max_results=1000)
    assert page.next_token is None
    return sorted(v.key for v in page.vectors)


async def reference_keys(tmp_path: Path, folder: Path) -> list[str]:
    """The keys a fault-free run writes: every segment of every file, from segmenting alone (no embedding)."""
    core = nova_core(tmp_path / "reference", FakeBedrockRuntime(), allowed_roots=[tmp_path])
    sources, failures = await core.ingest.resolve_contents([ContentInput(path=str(folder))])
    assert not failures
    out = []
    for source in sources:
        sid = keys.source_id(source.uri)
        out += [keys.vector_key(sid, seg.ordinal) for seg in await core.ingest.segment(source, core.embedder.info)]
    return sorted(out)


def content(path: Path) -> ContentInput:
    return ContentInput(path=str(path))


# ---- Bedrock: retried faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "codes",
    [
        ["ThrottlingException"] * 3,
        ["ServiceUnavailableException", "InternalServerException"],
        ["ModelNotReadyException", "ThrottlingException"],
    ],
    ids=["throttling", "5xx", "model-not-ready"],
)
async def test_transient_bedrock_faults_are_retried_with_backoff(
    tmp_path: Path, fake_bedrock: FakeBedrockRuntime, codes: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    core = nova_core(tmp_path, fake_bedrock, concurrency=1)
    for code in codes:
        fake_bedrock.fail_next(code)
    with caplog.at_level(logging.INFO, logger="nova_mcp_server.embedders.nova"):
        report = await core.indexing.index([ContentInput(text="solar panels on the roof")], index="faults")
    assert report.indexed_sources == 1 and not report.failed
    assert [c.error for c in fake_bedrock.calls] == [*codes, None]
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == len(codes)  # each failure waited (jittered backoff) before the next attempt
    assert len(stored_keys(core, "faults")) == 1


async def test_a_client_side_read_timeout_is_retried(tmp_path: Path, fake_bedrock: FakeBedrockRuntime) -> None:
    real = fake_bedrock.invoke_model
    timeouts = [ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")] * 2

    def flaky(**kwargs: Any) -> Any:
        if timeouts:
            raise timeouts.pop()
        return real(**kwargs)

    fake_bedrock.invoke_model = flaky  # type: ignore[method-assign]
    core = nova_core(tmp_path, fake_bedrock)
    report = await core.indexing.index([ContentInput(text="wind turbines at sea")], index="faults")
    assert report.indexed_sources == 1 and not timeouts


@pytest.mark.parametrize(
    ("code", "says", "todo", "attempts"),
    [
        ("ThrottlingException", "throttling or unavailable", "try again later", 8),  # "slow down": twice the attempts
        ("ServiceUnavailableException", "throttling or unavailable", "try again later", 4),
        ("ModelTimeoutException", "model timed out", "shorter clip", 2),  # one more attempt, on purpose
        ("AccessDeniedException", "denied access", "model access", 1),
        ("ValidationException", "rejected the request", "the same input fails again", 1),
    ],
)
async def test_persistent_bedrock_faults_are_clear_errors_that_write_nothing(
    tmp_path: Path, fake_bedrock: FakeBedrockRuntime, code: str, says: str, todo: str, attempts: int
) -> None:
    core = nova_core(tmp_path, fake_bedrock)
    async with Client(build_server(core, poll_seconds=0)) as client:
        seeded = await client.call_tool("index_content", {"texts": ["existing text"], "index": "faults"})
        assert not seeded.is_error
        before = stored_keys(core, "faults")
        calls = fake_bedrock.count()
        fake_bedrock.fail_next(code, times=20)
        result = await client.call_tool("index_content", {"texts": ["new text"], "index": "faults"})
        text = result.content[0].text
        assert result.is_error and says in text.lower() and todo in text.lower(), text
        assert fake_bedrock.count() - calls == attempts  # retried only when a retry can help
        assert stored_keys(core, "faults") == before
        search = await client.call_tool("semantic_search", {"query": "existing", "index": "faults"})
        assert search.is_error and says in search.content[0].text.lower()
        if code == "AccessDeniedException":
            status = (await client.read_resource("nova://capabilities")).contents[0].text
            assert "denied access" in status  # the model status says why, for the next call's benefit


async def test_random_throttling_and_5xx_under_load_lose_nothing(tmp_path: Path, moto_s3: Any) -> None:
    """20 % throttling + 10 % 5xx on every call, 8 calls in flight: everything lands, exactly once."""
    folder = corpus(tmp_path, n=8)
    fake = FakeBedrockRuntime(s3=moto_s3, throttle_rate=0.2, error_rate=0.1, seed=7)
    core = nova_core(tmp_path, fake, concurrency=8)
    core.embedder.max_attempts = 8  # type: ignore[attr-defined]  # 0.3 ** 8: no source fails by bad luck
    report = await core.indexing.index([content(folder)], index="faults")
    assert report.indexed_sources == 8 and not report.failed
    assert sum(c.error is not None for c in fake.calls) > 0
    assert stored_keys(core, "faults") == await reference_keys(tmp_path, folder)


# ---- partial failure in a folder, then a re-run --------------------------------------------------------------


async def test_a_source_that_keeps_failing_is_reported_and_a_rerun_finishes_the_rest(
    tmp_path: Path, fake_bedrock: FakeBedrockRuntime
) -> None:
    folder = corpus(tmp_path, n=5)
    real = fake_bedrock.invoke_model
    poisoned = {"word2x1 "}  # a word of doc2's second chunk: that one request always fails (5xx)

    def sometimes(**kwargs: Any) -> Any:
        if any(word in kwargs["body"] for word in poisoned):
            raise client_error("InternalServerException", "boom")
        return real(**kwargs)

    fake_bedrock.invoke_model = sometimes  # type: ignore[method-assign]
    core = nova_core(tmp_path, fake_bedrock)
    report = await core.indexing.index([content(folder)], index="faults")
    assert report.indexed_sources == 4 and [f.source.rsplit("/", 1)[1] for f in report.failed] == ["doc2.txt"]
    assert "after retries" in report.failed[0].reason
    reference = await reference_keys(tmp_path, folder)
    doc2 = keys.source_id("file://" + os.path.realpath(folder / "doc2.txt"))
    assert stored_keys(core, "faults") == [k for k in reference if not k.startswith(doc2)]  # exactly what succeeded

    poisoned.clear()
    rerun = await core.indexing.index([content(folder)], index="faults")
    assert (rerun.indexed_sources, rerun.skipped_unchanged, rerun.failed) == (1, 4, [])
    assert stored_keys(core, "faults") == reference  # the rest, once: no duplicates, nothing missing


# ---- S3 Vectors ---------------------------------------------------------------------------------------------


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry layer's backoff (aws_retry), recorded and then skipped so the test does not sleep for seconds."""
    from nova_mcp_server import aws_retry

    delays: list[float] = []
    monkeypatch.setattr(aws_retry, "_sleep", delays.append)
    return delays


class HttpFaults:
    """Answers the next sends of chosen S3 Vectors operations with an HTTP error, below botocore's retries.

    Every before-send handler runs, so moto would still execute the request behind our error response; an
    injected attempt is pointed at a host moto does not serve (and restored for the next attempt), so the
    service really does not see it, as with a 503 from a front end.
    """

    def __init__(self) -> None:
        self.plan: list[tuple[str, int, str]] = []  # (operation, status, error code), consumed in order
        self.injected = 0
        self._mangled: tuple[Any, str] | None = None  # the request we redirected, held (ids get reused)

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        operation = kwargs["event_name"].rsplit(".", 1)[-1]
        if self._mangled is not None and self._mangled[0] is request:
            request.url = self._mangled[1]
        self._mangled = None
        if self.plan and self.plan[0][0] == operation:
            _, status, code = self.plan.pop(0)
            self.injected += 1
            self._mangled = (request, request.url)
            request.url = "https://faults.invalid/"
            body = f'{{"message": "injected {code}"}}'.encode()
            return AWSResponse(request.url, status, {"x-amzn-ErrorType": code}, _Raw(body))
        return None


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *args: Any) -> bytes:
        body, self._body = self._body, b""
        return body


@pytest.fixture
def s3v() -> Iterator[tuple[S3VectorsStore, HttpFaults]]:
    """S3VectorsStore on moto through a client built exactly as the aws backend builds it (our retry layer)."""
    from moto import mock_aws

    with mock_aws():
        client = AwsClients("us-east-1").client("s3vectors")
        faults = HttpFaults()
        client.meta.events.register_first("before-send.s3vectors", faults)
        yield S3VectorsStore(S3VectorsEmulator(client), "fault-vectors"), faults


def test_s3vectors_throttling_and_503_on_a_batch_are_retried(s3v: Any, fast_retries: list[float]) -> None:
    store, faults = s3v
    store.create_index(IndexSpec(name="idx", dimension=4))
    batch = [VectorRecord(key=f"k{i:03d}", data=[1, i, 0, 1]) for i in range(500)]
    faults.plan = [
        ("PutVectors", 503, "ServiceUnavailableException"),
        ("PutVectors", 429, "TooManyRequestsException"),
        ("PutVectors", 503, "ServiceUnavailableException"),
    ]
    store.put_vectors("idx", batch)
    assert faults.injected == 3 and not faults.plan
    # one backoff per failed attempt, each a real wait within botocore's 20 s cap (not skipped)
    assert len(fast_retries) == 3 and all(0 < d <= 20 for d in fast_retries), fast_retries
    listed = store.list_vectors("idx", max_results=1000).vectors
    assert sorted(v.key for v in listed) == [r.key for r in batch]  # all 500, once

    faults.plan = [("QueryVectors", 503, "ServiceUnavailableException")]
    assert store.query_vectors("idx", [1, 0, 0, 1], top_k=1)[0].key == "k000"


def test_s3vectors_503_past_the_retries_is_a_clear_error_and_writes_nothing(
    s3v: Any, fast_retries: list[float]
) -> None:
    store, faults = s3v
    store.create_index(IndexSpec(name="idx", dimension=4))
    store.put_vectors("idx", [VectorRecord(key="kept", data=[1, 0, 0, 0])])
    faults.plan = [("PutVectors", 503, "ServiceUnavailableException")] * 4  # AwsClients: 4 attempts in all
    with pytest.raises(BackendUnavailable, match="after retries.*Try again later"):
        store.put_vectors("idx", [VectorRecord(key="lost", data=[0, 1, 0, 0])])
    assert faults.injected == 4 and len(fast_retries) == 3
    assert [v.key for v in store.list_vectors("idx").vectors] == ["kept"]


class FailingPuts:
    """A client proxy whose chosen put_vectors calls fail as botocore reports a 503 that outlived its retries."""

    def __init__(self, client: Any, fail_calls: set[int]) -> None:
        self._client = client
        self.fail_calls = fail_calls
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_vectors(self, **params: Any) -> Any:
        self.puts += 1
        if self.puts in self.fail_calls:
            raise client_error("ServiceUnavailableException", "Service unavailable", "PutVectors", 503)
        return self._client.put_vectors(**params)


async def test_a_failed_s3vectors_batch_mid_folder_then_a_rerun(tmp_path: Path, moto_s3: Any) -> None:
    """A put_vectors batch fails for good (503 past botocore's retries) in the middle of a folder.

    Whatever way the core groups writes into batches, afterwards: every source reported indexed is complete
    with its commit marker; every failed source has no marker (so the next run redoes it); nothing outside
    the fault-free key set exists. A re-run indexes exactly the failed sources and ends on the exact key set.
    """
    folder = corpus(tmp_path, n=90, chunks=4)  # ~580 segments: more than one 500-vector batch
    fake = FakeBedrockRuntime(s3=moto_s3)
    proxy = FailingPuts(S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1")), {1})
    core = nova_core(
        tmp_path, fake, concurrency=4, store=S3VectorsStore(proxy, "core-vectors", retry=RetryPolicy(max_attempts=1))
    )  # a 503 past the retries
    report = await core.indexing.index([content(folder)], index="faults")
    assert proxy.puts >= 2 and report.failed and report.indexed_sources + len(report.failed) == 90
    assert report.indexed_sources > 0  # a partial failure: some sources landed, some did not
    assert all("try again later" in f.reason.lower() for f in report.failed)
    reference = await reference_keys(tmp_path, folder)
    written = stored_keys(core, "faults")
    assert set(written) <= set(reference) and len(written) == len(set(written))
    failed = {keys.source_id("file://" + os.path.realpath(f.source)) for f in report.failed}
    for sid in {k.rsplit("-", 1)[0] for k in reference}:
        mine = [k for k in reference if k.startswith(sid)]
        if sid in failed:
            assert keys.vector_key(sid, 0) not in written  # no marker: the next run redoes this source
        else:
            assert set(mine) <= set(written)  # reported indexed: every segment and the marker are there

    rerun = await core.indexing.index([content(folder)], index="faults")
    assert (rerun.indexed_sources, rerun.skipped_unchanged, rerun.failed) == (len(failed), 90 - len(failed), [])
    assert stored_keys(core, "faults") == reference


# ---- async jobs ---------------------------------------------------------------------------------------------


def long_video(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir(exist_ok=True)
    return make_mp4(folder / "talk.mp4", seconds=40.0, colors_per_block=(RED, GREEN, BLUE, RED), size=(64, 48), fps=2)


async def test_async_job_failure_partial_failure_and_rerun(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    sid = keys.source_id("file://" + os.path.realpath(video))
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, fail_job="Input video could not be decoded")
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET, segment_seconds=10)

    failed = (await core.indexing.index([content(video)], index="talks")).jobs[0]
    job = (await core.jobs.status(failed))[0]
    assert job.status == "failed" and "could not be decoded" in (job.error or "")
    assert stored_keys(core, "talks") == []

    fake.fail_job = None
    fake.failed_segments = {1, 3}
    partial = (await core.indexing.index([content(video)], index="talks")).jobs[0]
    fake.fail_next("ThrottlingException", times=20)  # polling is throttled past the retries: the job waits
    with pytest.raises(BackendUnavailable):
        await core.jobs.advance(partial)
    await core.jobs.poll()  # the poller keeps the job and notes why
    assert core.jobstore.get(partial).status == "running" and "throttling" in (core.jobstore.get(partial).error or "")
    fake._queued.clear()
    job = (await core.jobs.status(partial))[0]
    assert job.status == "partial" and job.vectors_written == 2 and len(job.segment_failures) == 2
    # exactly what succeeded, numbered over the successes so segment 0 (the marker) always exists
    assert stored_keys(core, "talks") == [keys.vector_key(sid, n) for n in range(2)]
    marker = core.store.get_vectors("talks", [keys.vector_key(sid, 0)])[0].metadata or {}
    assert marker["partial"] is True  # so the next index_content retries the source instead of skipping it

    fake.failed_segments = set()
    rerun = await core.indexing.index([content(video)], index="talks")
    assert rerun.skipped_unchanged == 0 and len(rerun.jobs) == 1
    assert (await core.jobs.status(rerun.jobs[0]))[0].vectors_written == 4
    assert stored_keys(core, "talks") == [keys.vector_key(sid, n) for n in range(4)]
    again = await core.indexing.index([content(video)], index="talks")
    assert again.skipped_unchanged == 1 and not again.jobs
