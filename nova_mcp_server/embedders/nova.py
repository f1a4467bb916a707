"""Nova Multimodal Embeddings on Amazon Bedrock: sync ``InvokeModel`` and the async segmented jobs.

boto3 blocks, so every call runs in a worker thread; a ``CapacityLimiter`` bounds how many are in flight
(Bedrock quotas are per account and region, and exceeding them only buys throttling). Retries are the one
retry layer's (`aws_retry.RetryPolicy`: jittered backoff inside a total time budget per call; botocore's
own retries are off), run from this async loop so a backoff never holds a worker thread. Failures go
through the one AWS translator (`aws_errors.translate`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from nova_mcp_server.aws import AwsClients
from nova_mcp_server.aws_errors import BEDROCK_RUNTIME, MODEL_TIMEOUT, S3, error_code, is_transient, translate
from nova_mcp_server.aws_retry import RetryPolicy, unwrap
from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import AccessDenied, BackendUnavailable, InvalidInput, ModelUnavailable, NovaError
from nova_mcp_server.schema import (
    DEFAULT_DIMENSION,
    DIMENSIONS,
    MAX_INLINE_TEXT_CHARS,
    MAX_SYNC_MEDIA_SECONDS,
    MODEL_ID,
    EmbeddingItem,
    EmbeddingResponse,
    EmbeddingType,
    ResultStatus,
    SegmentedEmbeddingRequest,
    SegmentedEmbeddingResult,
    SegmentRecord,
    SingleEmbeddingRequest,
    VideoEmbeddingMode,
    check_dimension,
)

if TYPE_CHECKING:
    from nova_mcp_server.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

RESULT_FILE = "segmented-embedding-result.json"
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")
_JOB_ID = re.compile(r"/([a-z0-9]{12})$")


# ---- async job models ------------------------------------------------------------------------------------


# GetAsyncInvoke's enum is InProgress | Completed | Failed today; AWS samples also check "Expired". A status
# outside the enum must neither crash the poller nor be read as success: a known ending is Failed, anything
# else is still running (and logged), and `raw_status` keeps what the service said.
_ENDED_BADLY = frozenset({"failed", "expired", "stopped", "stopping", "cancelled", "canceled", "timedout", "timed_out"})


def normalise_job_status(raw: Any) -> tuple[Literal["InProgress", "Completed", "Failed"], str | None]:
    """(status in our three values, a note when the service said something else)."""
    text = str(raw or "").strip()
    if text in ("InProgress", "Completed", "Failed"):
        return text, None  # type: ignore[return-value]
    folded = text.lower().replace(" ", "")
    if folded in ("completed", "complete", "succeeded", "success"):
        return "Completed", None
    if folded in _ENDED_BADLY:
        return "Failed", f"the job ended with status {text!r}"
    log.warning("unknown async job status %r; treating the job as still running", text)
    return "InProgress", f"unknown status {text!r}"


class AsyncJobState(BaseModel):
    """What ``GetAsyncInvoke`` says about a job, in our names (status parsed leniently, see above)."""

    invocation_arn: str
    job_id: str
    status: Literal["InProgress", "Completed", "Failed"]
    raw_status: str | None = None
    failure_message: str | None = None
    output_s3_uri: str | None = None
    submit_time: datetime | None = None
    last_modified_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"


class AsyncOutput(BaseModel):
    """A finished job's output: the result summary plus every segment line (failed ones included)."""

    result_uri: str  # the s3:// URI of segmented-embedding-result.json that was read
    result: SegmentedEmbeddingResult
    records: list[SegmentRecord]

    @property
    def succeeded(self) -> list[SegmentRecord]:
        return [r for r in self.records if r.status == ResultStatus.SUCCESS and r.embedding is not None]

    @property
    def failed(self) -> list[SegmentRecord]:
        return [r for r in self.records if r.status != ResultStatus.SUCCESS or r.embedding is None]


def job_id_of(invocation_arn: str) -> str:
    """The job id is the last path segment of the invocation ARN (``...:async-invoke/<job-id>``)."""
    return invocation_arn.rstrip("/").rsplit("/", 1)[-1]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); raises InvalidInput for anything else."""
    match = _S3_URI.fullmatch(uri)  # the whole URI: "s3://b/k\n" is not an object's name
    if not match:
        raise InvalidInput(f"'{uri}' is not an s3:// URI (expected s3://bucket/prefix).")
    return match.group(1), match.group(2) or ""


# ---- the embedder ----------------------------------------------------------------------------------------


class NovaEmbedder:
    """The ``Embedder`` for Amazon Nova Multimodal Embeddings, plus the async segmented-job API.

    Pass ``bedrock``/``s3`` (any objects with the boto3 method names, e.g. ``FakeBedrockRuntime`` and a moto
    S3 client) or an ``AwsClients``; without either, clients are built from the default AWS configuration on
    first use.
    """

    def __init__(
        self,
        *,
        model_id: str = MODEL_ID,
        default_dimension: int = DEFAULT_DIMENSION,
        concurrency: int = 8,
        region: str | None = None,
        clients: AwsClients | None = None,
        bedrock: Any | None = None,
        s3: Any | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        budget_s: float | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.model_id = model_id
        self.concurrency = concurrency
        self._clients = clients or AwsClients(region, concurrency=concurrency)
        self._region = region
        self._bedrock = bedrock
        self._s3 = s3
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget_s = budget_s if budget_s is not None else self._clients.budget_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(concurrency)
        # run_sync needs its own limiter: the default one caps at 40 threads, and the task already holds
        # a token of ``_limiter`` while it waits for its thread.
        self._threads = anyio.CapacityLimiter(concurrency)
        self._last_error: NovaError | None = None
        self.info = EmbedderInfo(
            provider="nova",
            model=model_id,
            dimensions=list(DIMENSIONS),
            default_dimension=check_dimension(default_dimension),
            modalities=["text", "image", "audio", "video"],
            max_text_chars=MAX_INLINE_TEXT_CHARS,
            max_sync_media_seconds=MAX_SYNC_MEDIA_SECONDS,
            supports_async=True,
        )

    @classmethod
    def from_settings(cls, settings: Settings, clients: AwsClients | None = None, **kwargs: Any) -> NovaEmbedder:
        return cls(
            model_id=settings.model_id,
            default_dimension=settings.dimension,
            concurrency=settings.concurrency,
            region=getattr(settings, "bedrock_region", None) or settings.region,
            clients=clients or AwsClients.from_settings(settings),
            **kwargs,
        )

    # -- clients

    @property
    def region(self) -> str | None:
        return self._region or self._clients.region_for(BEDROCK_RUNTIME) or self._clients.region

    def _bedrock_client(self) -> Any:
        if self._bedrock is None:
            self._bedrock = self._clients.client(BEDROCK_RUNTIME)
        return unwrap(self._bedrock)  # our _call runs the retry policy; never a second layer under it

    def _s3_client(self) -> Any:
        if self._s3 is None:
            self._s3 = self._clients.client(S3)
        return unwrap(self._s3)

    def policy(self, service: str) -> RetryPolicy:
        """The retry policy for one call: attempts, backoff and budget (read at call time; tests tune them)."""
        connect, read = self._clients.timeouts(service)
        return RetryPolicy(
            budget_s=self.budget_s,
            attempt_timeout_s=connect + read,
            max_attempts=self.max_attempts,
            base_s=self.backoff_base,
            cap_s=self.backoff_cap,
            rng=self._rng,
        )

    # -- Embedder protocol

    def status(self) -> str:
        if self._last_error is not None:
            return f"error: {self._last_error.text}"
        return "ready"

    async def embed(self, requests: Sequence[SingleEmbeddingRequest]) -> list[list[EmbeddingItem]]:
        """Embed every request concurrently (bounded by ``concurrency``); results keep the input order.

        Raises the first NovaError any request hit (InvalidInput, AccessDenied, ModelUnavailable,
        BackendUnavailable); the other requests are then cancelled.
        """
        for i, request in enumerate(requests):
            if not isinstance(request, SingleEmbeddingRequest):
                raise InvalidInput(f"request {i} is a {type(request).__name__}, not a SingleEmbeddingRequest")
        results: list[list[EmbeddingItem] | None] = [None] * len(requests)
        failure: list[NovaError] = []

        async def one(i: int, request: SingleEmbeddingRequest) -> None:
            try:
                results[i] = await self._embed_one(request)
            except NovaError as exc:
                if not failure:
                    failure.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for i, request in enumerate(requests):
                tg.start_soon(one, i, request)
        if failure:
            raise failure[0]
        return [r for r in results if r is not None]

    async def _embed_one(self, request: SingleEmbeddingRequest) -> list[EmbeddingItem]:
        body = json.dumps(request.to_body(), separators=(",", ":"))
        raw = await self._call("InvokeModel", lambda: self._invoke_sync(body))
        items = self._parse_response(raw)
        params = request.params
        dimension = params.embedding_dimension
        for item in items:
            if len(item.embedding) != dimension:
                raise BackendUnavailable(
                    f"Bedrock returned a {len(item.embedding)}-value vector for a {dimension}-dimension request.",
                    f"Check that NOVA_MCP_MODEL_ID ({self.model_id}) is a Nova Multimodal Embeddings model.",
                )
        expected = (
            2
            if params.video is not None and params.video.embedding_mode == VideoEmbeddingMode.AUDIO_VIDEO_SEPARATE
            else 1
        )
        if len(items) != expected:
            raise BackendUnavailable(f"Bedrock returned {len(items)} embeddings where {expected} were expected.")
        return items

    def _invoke_sync(self, body: str) -> bytes:
        response = self._bedrock_client().invoke_model(
            modelId=self.model_id, body=body, contentType="application/json", accept="application/json"
        )
        stream = response["body"]
        try:
            return stream.read()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _parse_response(raw: bytes) -> list[EmbeddingItem]:
        try:
            return EmbeddingResponse.model_validate_json(raw).embeddings
        except ValidationError as exc:
            raise BackendUnavailable(
                f"Bedrock returned a body that is not a Nova embedding response ({exc.error_count()} problems, "
                f"first: {exc.errors(include_url=False)[0]['msg']})."
            ) from None

    # -- async segmented jobs

    async def start_segmented(
        self, request: SegmentedEmbeddingRequest, output_s3_uri: str, client_token: str | None = None
    ) -> str:
        """Start a ``SEGMENTED_EMBEDDING`` job writing under ``output_s3_uri``; returns the invocation ARN.

        ``client_token`` makes the call idempotent (Bedrock returns the same job for the same token). Without
        one we make one up, so that our own retries of a call that may have reached Bedrock cannot start a
        second job.
        """
        if not isinstance(request, SegmentedEmbeddingRequest):
            raise InvalidInput("start_segmented needs a SegmentedEmbeddingRequest")
        split_s3_uri(output_s3_uri)
        kwargs: dict[str, Any] = {
            "modelId": self.model_id,
            "modelInput": request.to_body(),
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": output_s3_uri}},
            "clientRequestToken": client_token or str(uuid.uuid4()),
        }
        response = await self._call("StartAsyncInvoke", lambda: self._bedrock_client().start_async_invoke(**kwargs))
        return str(response["invocationArn"])

    async def get_async_job(self, invocation_arn: str) -> AsyncJobState:
        """The job's status; ``output_s3_uri`` is what Bedrock reports (it may or may not end in the job id)."""
        response = await self._call(
            "GetAsyncInvoke", lambda: self._bedrock_client().get_async_invoke(invocationArn=invocation_arn)
        )
        output = (response.get("outputDataConfig") or {}).get("s3OutputDataConfig") or {}
        status, note = normalise_job_status(response.get("status"))
        message = response.get("failureMessage") or (note if status == "Failed" else None)
        return AsyncJobState(
            invocation_arn=response.get("invocationArn") or invocation_arn,
            job_id=job_id_of(invocation_arn),
            status=status,
            raw_status=response.get("status"),
            failure_message=message,
            output_s3_uri=output.get("s3Uri"),
            submit_time=response.get("submitTime"),
            last_modified_time=response.get("lastModifiedTime"),
            end_time=response.get("endTime"),
        )

    async def read_async_output(self, output_s3_uri: str, job_id: str | None = None) -> AsyncOutput:
        """Read a completed job's ``segmented-embedding-result.json`` and every output file it names.

        The result file is looked for directly under ``output_s3_uri`` and then under
        ``<output_s3_uri>/<job-id>/`` (``job_id`` given, or the single job folder found under the prefix),
        because Bedrock may report the output URI with or without the job id.
        """
        return await self._call("ReadAsyncOutput", lambda: self._read_output_sync(output_s3_uri, job_id), s3=True)

    def _read_output_sync(self, output_s3_uri: str, job_id: str | None) -> AsyncOutput:
        bucket, prefix = split_s3_uri(output_s3_uri.rstrip("/"))
        prefix = prefix.rstrip("/")
        base = f"{prefix}/" if prefix else ""
        candidates = [f"{base}{RESULT_FILE}"]
        if job_id:
            candidates.append(f"{base}{job_id}/{RESULT_FILE}")
        text = None
        result_key = candidates[0]
        denied: AccessDenied | None = None
        for key in candidates:
            try:
                text = self._get_text(bucket, key, missing_ok=True)
            except AccessDenied as exc:  # S3 answers 403 for a missing key when s3:ListBucket is not granted
                denied = denied or exc
                continue
            if text is not None:
                result_key = key
                break
        if text is None and denied is not None:
            raise denied
        if text is None and not job_id:
            result_key = self._find_single_result(bucket, base)
            text = self._get_text(bucket, result_key)
        if text is None:
            raise InvalidInput(
                f"No {RESULT_FILE} under s3://{bucket}/{base} (nor in a job folder below it).",
                "Is the job Completed? Pass the output URI that get_async_job reported.",
            )
        try:
            result = SegmentedEmbeddingResult.model_validate_json(text)
        except ValidationError as exc:
            raise BackendUnavailable(f"s3://{bucket}/{result_key} is not a valid segmented result: {exc}") from None
        folder = result_key.rsplit("/", 1)[0] if "/" in result_key else ""
        records: list[SegmentRecord] = []
        for entry in result.embedding_results:
            if not entry.output_file_uri:
                continue
            uri = entry.output_file_uri
            if uri.startswith("s3://"):
                file_bucket, file_key = split_s3_uri(uri)
            else:  # a bare file name: resolve next to the result file
                file_bucket, file_key = bucket, f"{folder}/{uri}" if folder else uri
            body = self._get_text(file_bucket, file_key) or ""
            records.extend(self._parse_records(body, entry.embedding_type, result.embedding_dimension, uri))
        return AsyncOutput(result_uri=f"s3://{bucket}/{result_key}", result=result, records=records)

    def _find_single_result(self, bucket: str, base: str) -> str:
        """Find ``<base><job-id>/segmented-embedding-result.json`` when the caller knows no job id."""
        s3 = self._s3_client()
        found: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": base}
        while True:
            page = s3.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(base) :]
                if rest.count("/") == 1 and rest.endswith("/" + RESULT_FILE):
                    found.append(obj["Key"])
            if not page.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
        if len(found) == 1:
            return found[0]
        if not found:
            raise InvalidInput(
                f"No {RESULT_FILE} under s3://{bucket}/{base}.",
                "Is the job Completed? Pass the output URI that get_async_job reported.",
            )
        raise InvalidInput(
            f"{len(found)} job folders under s3://{bucket}/{base}; pass the job id to pick one.",
        )

    def _get_text(self, bucket: str, key: str, missing_ok: bool = False) -> str | None:
        try:
            response = self._s3_client().get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if missing_ok and error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            if is_transient(exc):
                raise  # let _call back off and retry
            raise translate(exc, service=S3, operation="GetObject", resource=f"s3://{bucket}/{key}") from exc
        return response["Body"].read().decode("utf-8")

    @staticmethod
    def _parse_records(body: str, embedding_type: EmbeddingType, dimension: int, uri: str) -> list[SegmentRecord]:
        lines: list[dict[str, Any]] = []
        try:
            whole = json.loads(body)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            lines = [whole]
        elif isinstance(whole, list):
            lines = [x for x in whole if isinstance(x, dict)]
        else:
            for n, text_line in enumerate(body.splitlines()):
                if not text_line.strip():
                    continue
                try:
                    parsed = json.loads(text_line)
                except json.JSONDecodeError:
                    raise BackendUnavailable(f"{uri} line {n + 1} is not JSON.") from None
                if isinstance(parsed, dict):
                    lines.append(parsed)
        records = []
        for position, line in enumerate(lines):
            try:
                record = SegmentRecord.from_line(line, embedding_type, position)
            except ValidationError as exc:
                raise BackendUnavailable(f"{uri} record {position} is malformed: {exc}") from None
            if record.embedding is not None and len(record.embedding) != dimension:
                raise BackendUnavailable(
                    f"{uri} record {position} has {len(record.embedding)} values; the job asked for {dimension}."
                )
            records.append(record)
        return records

    # -- calling AWS with backoff

    async def _call(self, operation: str, fn: Callable[[], T], s3: bool = False) -> T:
        """Run ``fn`` in a worker thread under the capacity limit and the retry policy; translate failures."""
        service = S3 if s3 else BEDROCK_RUNTIME
        policy = self.policy(service)
        async with self._limiter:
            started = self._clock()
            attempt = 0
            model_timeouts = 0
            while True:
                try:
                    result = await anyio.to_thread.run_sync(fn, limiter=self._threads)
                except (ClientError, BotoCoreError) as exc:
                    attempt += 1
                    model_timeouts += error_code(exc) == MODEL_TIMEOUT
                    delay = policy.delay(exc, attempt, self._clock() - started, model_timeouts)
                    if delay is not None:
                        log.info(
                            "%s: %s, retry %d in %.2fs",
                            operation,
                            error_code(exc) or type(exc).__name__,
                            attempt,
                            delay,
                        )
                        await anyio.sleep(delay)
                        continue
                    error = translate(
                        exc,
                        service=service,
                        operation=operation,
                        region=self.region if not s3 else None,
                        model_id=self.model_id,
                        attempts=attempt,
                    )
                    if isinstance(error, AccessDenied | ModelUnavailable):
                        self._last_error = error
                    raise error from exc
                if not s3:
                    self._last_error = None
                return result
