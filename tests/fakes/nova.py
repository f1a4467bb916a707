"""A fake Bedrock runtime that speaks the documented Nova Multimodal Embeddings schema (tests only).

moto's bedrock-runtime returns ``b'{}'`` from ``invoke_model`` and does not implement the async calls, so
this stands in for ``boto3.client("bedrock-runtime")``: same method names and keyword arguments, same
response shapes (``body`` is a ``StreamingBody``), and failures raised as botocore ``ClientError``s with
the real error codes and HTTP statuses.

Vectors are deterministic unit vectors. Text is a hashed bag of words, so a query that shares words with a
chunk ranks that chunk first under cosine; media vectors are a hash of the content (the bytes, or the S3
object read through the ``s3`` client, or its URI when no client is given).

Async jobs write the documented output layout into S3 (normally a moto client):
``<prefix>/<job-id>/segmented-embedding-result.json`` plus one ``embedding-*.jsonl`` (``.json`` for
images) per embedding type. Knobs (constructor keywords or attributes, change them any time):

- ``latency`` (seconds, or a ``(low, high)`` range), ``throttle_rate``, ``error_rate`` (5xx),
  ``access_denied``: fault injection with a seeded RNG, applied to every call;
- ``fail_next(code, times)``: the next calls fail with that error code;
- ``media_seconds``: duration of async audio/video (a number, or ``f(source_uri) -> seconds``);
- ``in_progress_polls``: a job answers InProgress that many times before it completes;
- ``fail_job``: jobs fail with this message; ``failed_segments`` + ``segment_failure_reason``: those
  segment indexes are FAILURE lines (partial success);
- ``blog_field_names``: media lines use top-level ``startTime``/``endTime`` (as the AWS blogs parse)
  instead of ``segmentMetadata``;
- ``report_uri_with_job_id``: whether GetAsyncInvoke's ``s3Uri`` ends in the job id (the blog says it does);
- ``wrong_dimension``: return vectors of this length instead of the requested one;
- ``sync_media_seconds``: duration of sync audio/video (a number or ``f(raw_bytes) -> seconds``); by default
  the media is probed with PyAV, and bytes it cannot read are taken as short.

Requests are checked with `fakes.nova_docs` (rules written from the docs, independent of our schema.py).
A sync call refuses audio/video over 30 s, an S3 object over the sync S3 limits, and a missing S3 object
(ValidationException, as Bedrock answers when it cannot read the input); async jobs refuse missing inputs too.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from fakes.nova_docs import modality_of, problems_segmented, problems_single

# Facts from the Nova docs, restated here (not imported from our schema.py, so the fake can catch its mistakes)
MODEL_ID = "amazon.nova-2-multimodal-embeddings-v1:0"
MAX_SYNC_BODY_BYTES = 25_000_000  # "25 MB inline ... after Base64"; botocore InvokeModel.body max 25,000,000
MAX_SYNC_MEDIA_SECONDS = 30.0  # "Maximum audio/video duration: 30 seconds" (sync)
MAX_TEXT_SEGMENTS = 1900
MAX_MEDIA_SEGMENTS = 1434
S3_SYNC_MAX_BYTES = {"text": 1_000_000, "image": 50_000_000, "audio": 100_000_000, "video": 100_000_000}

TEST_BUCKET = "nova-test-output"  # the S3 bucket the moto_s3 fixture creates

STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ConflictException": 400,
    "ServiceQuotaExceededException": 400,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
_OPERATIONS = {
    "invoke_model": "InvokeModel",
    "start_async_invoke": "StartAsyncInvoke",
    "get_async_invoke": "GetAsyncInvoke",
    "list_async_invokes": "ListAsyncInvokes",
}
_S3_URI = re.compile(r"^s3://([a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9])(/.*)?$")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
    ]
)


def client_error(code: str, message: str, operation: str = "InvokeModel", status: int | None = None) -> ClientError:
    """A ClientError shaped like botocore's for a modeled AWS error."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "message": message,
            "ResponseMetadata": {"HTTPStatusCode": status or STATUS.get(code, 400), "RetryAttempts": 0},
        },
        operation,
    )


# ---- deterministic vectors -------------------------------------------------------------------------------


def _normalise(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def hash_vector(seed: bytes, dimension: int) -> list[float]:
    """A unit vector determined by ``seed`` alone."""
    rng = random.Random(hashlib.sha256(seed).digest())
    return _normalise([rng.gauss(0.0, 1.0) for _ in range(dimension)])


def words(text: str) -> list[str]:
    """Lower-cased words minus stopwords, with a naive plural strip so "dogs" matches "dog"."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        out.append(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


def text_vector(text: str, dimension: int) -> list[float]:
    """Hashed bag of words plus a faint per-text component (never a zero vector, distinct texts differ)."""
    values = [0.0] * dimension
    for word in words(text):
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=16).digest()
        for probe in (digest[:8], digest[8:]):  # two slots per word make a collision cost half as much
            values[int.from_bytes(probe[:7], "big") % dimension] += 1.0 if probe[7] & 1 else -1.0
    noise = hash_vector(b"text:" + text.encode("utf-8"), dimension)
    weight = 0.05 * (math.sqrt(sum(v * v for v in values)) or 20.0)
    return _normalise([v + weight * n for v, n in zip(values, noise, strict=True)])


# ---- call log and jobs -----------------------------------------------------------------------------------


@dataclass
class FakeCall:
    operation: str  # boto3 method name, e.g. "invoke_model"
    kwargs: dict[str, Any]
    body: dict[str, Any] | None = None  # parsed InvokeModel body or StartAsyncInvoke modelInput
    error: str | None = None  # error code raised, if any


@dataclass
class FakeJob:
    arn: str
    job_id: str
    token: str | None
    model_input: dict[str, Any]
    s3_uri: str
    submit_time: datetime
    polls_left: int
    status: str = "InProgress"
    failure_message: str | None = None
    end_time: datetime | None = None
    last_modified_time: datetime | None = None
    files: dict[str, str] = field(default_factory=dict)  # key -> content, written on completion


class FakeBedrockRuntime:
    """Drop-in for ``boto3.client("bedrock-runtime")`` for Nova; see the module docstring for the knobs."""

    def __init__(
        self,
        *,
        s3: Any | None = None,
        model_id: str = MODEL_ID,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        seed: int = 0,
        latency: float | tuple[float, float] = 0.0,
        throttle_rate: float = 0.0,
        error_rate: float = 0.0,
        access_denied: bool = False,
        media_seconds: float | Callable[[str], float] = 60.0,
        in_progress_polls: int = 0,
        fail_job: str | None = None,
        failed_segments: Collection[int] = (),
        segment_failure_reason: str = "INTERNAL_SERVER_EXCEPTION",
        blog_field_names: bool = False,
        report_uri_with_job_id: bool = True,
        wrong_dimension: int | None = None,
        sync_media_seconds: float | Callable[[bytes], float | None] | None = None,
    ) -> None:
        self.s3 = s3
        self.model_id = model_id
        self.region = region
        self.account_id = account_id
        self.latency = latency
        self.throttle_rate = throttle_rate
        self.error_rate = error_rate
        self.access_denied = access_denied
        self.media_seconds = media_seconds
        self.in_progress_polls = in_progress_polls
        self.fail_job = fail_job
        self.failed_segments = set(failed_segments)
        self.segment_failure_reason = segment_failure_reason
        self.blog_field_names = blog_field_names
        self.report_uri_with_job_id = report_uri_with_job_id
        self.wrong_dimension = wrong_dimension
        self.sync_media_seconds = sync_media_seconds
        self.calls: list[FakeCall] = []
        self.jobs: dict[str, FakeJob] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._queued: list[tuple[str, str | None]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    # -- assertions helpers

    def count(self, operation: str = "invoke_model") -> int:
        return sum(1 for c in self.calls if c.operation == operation)

    @property
    def invoke_bodies(self) -> list[dict[str, Any]]:
        """Parsed bodies of the InvokeModel calls that passed validation, in call order."""
        return [c.body for c in self.calls if c.operation == "invoke_model" and c.body is not None]

    def fail_next(self, code: str, times: int = 1, message: str | None = None) -> None:
        """Make the next ``times`` calls (any operation) fail with ``code``."""
        with self._lock:
            self._queued.extend([(code, message)] * times)

    # -- boto3 surface

    def invoke_model(self, **kwargs: Any) -> dict[str, Any]:
        op = "InvokeModel"
        call = self._begin("invoke_model", kwargs)
        try:
            self._require(op, kwargs, "modelId", "body")
            self._check_model(op, kwargs["modelId"])
            for header in ("contentType", "accept"):
                if kwargs.get(header) not in (None, "application/json", "*/*"):
                    raise self._error("ValidationException", f"{header} must be application/json")
            raw = kwargs["body"]
            raw = raw.read() if hasattr(raw, "read") else raw
            raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            if len(raw) > MAX_SYNC_BODY_BYTES:
                raise self._error("ValidationException", "Input is too long for requested model.")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise self._error(
                    "ValidationException", "Malformed input request, please reformat your input and try again."
                ) from None
            problems = problems_single(body)
            if problems:
                raise self._error(
                    "ValidationException",
                    f"Malformed input request: {'; '.join(problems)}, please reformat your input and try again.",
                )
            payload = {"embeddings": self._single_embeddings(body["singleEmbeddingParams"])}
            call.body = body
            data = json.dumps(payload).encode("utf-8")
            return {
                "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0},
                "body": StreamingBody(io.BytesIO(data), len(data)),
                "contentType": "application/json",
            }
        except ClientError as exc:
            call.error = exc.response["Error"]["Code"]
            raise
        finally:
            self._end()

    def start_async_invoke(self, **kwargs: Any) -> dict[str, Any]:
        op = "StartAsyncInvoke"
        call = self._begin("start_async_invoke", kwargs)
        try:
            self._require(op, kwargs, "modelId", "modelInput", "outputDataConfig")
            self._check_model(op, kwargs["modelId"])
            model_input = kwargs["modelInput"]
            if not isinstance(model_input, dict):
                raise self._error("ValidationException", "modelInput must be a JSON object", op)
            problems = problems_segmented(model_input)
            if problems:
                raise self._error("ValidationException", f"Malformed input request: {'; '.join(problems)}", op)
            params = model_input["segmentedEmbeddingParams"]
            source = (params[modality_of(params)].get("source") or {}).get("s3Location")
            if source and self.s3 is not None and self._read_s3(source["uri"], missing_ok=True) is None:
                raise self._error("ValidationException", f"Unable to access the S3 object {source['uri']}.", op)
            s3_uri = ((kwargs["outputDataConfig"] or {}).get("s3OutputDataConfig") or {}).get("s3Uri", "")
            if not _S3_URI.match(s3_uri):
                raise self._error("ValidationException", "outputDataConfig.s3OutputDataConfig.s3Uri is invalid", op)
            if self.s3 is None:
                raise RuntimeError("FakeBedrockRuntime needs an s3 client (e.g. moto) to run async jobs")
            call.body = model_input
            token = kwargs.get("clientRequestToken")
            with self._lock:
                for job in self.jobs.values():
                    if token and job.token == token:
                        if job.model_input != model_input or job.s3_uri != s3_uri:
                            raise self._error("ConflictException", "The client request token was already used.", op)
                        return {"invocationArn": job.arn, "ResponseMetadata": {"HTTPStatusCode": 200}}
                job_id = "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
            arn = f"arn:aws:bedrock:{self.region}:{self.account_id}:async-invoke/{job_id}"
            now = datetime.now(UTC)
            job = FakeJob(arn, job_id, token, model_input, s3_uri, now, self.in_progress_polls, last_modified_time=now)
            if self.fail_job:
                job.failure_message = self.fail_job
            else:
                self._plan_outputs(job, params)
            with self._lock:
                self.jobs[arn] = job
            return {"invocationArn": arn, "ResponseMetadata": {"HTTPStatusCode": 200}}
        except ClientError as exc:
            call.error = exc.response["Error"]["Code"]
            raise
        finally:
            self._end()

    def get_async_invoke(self, **kwargs: Any) -> dict[str, Any]:
        op = "GetAsyncInvoke"
        call = self._begin("get_async_invoke", kwargs)
        try:
            self._require(op, kwargs, "invocationArn")
            with self._lock:
                job = self.jobs.get(kwargs["invocationArn"])
                if job is None:
                    raise self._error("ValidationException", "The provided invocation ARN is invalid.", op)
                if job.status == "InProgress":
                    if job.polls_left > 0:
                        job.polls_left -= 1
                    else:
                        self._finish(job)
                return self._describe(job)
        except ClientError as exc:
            call.error = exc.response["Error"]["Code"]
            raise
        finally:
            self._end()

    def list_async_invokes(self, **kwargs: Any) -> dict[str, Any]:
        self._begin("list_async_invokes", kwargs)
        try:
            with self._lock:
                summaries = [self._describe(j) for j in self.jobs.values()]
            wanted = kwargs.get("statusEquals")
            return {"asyncInvokeSummaries": [s for s in summaries if not wanted or s["status"] == wanted]}
        finally:
            self._end()

    # -- internals

    def _begin(self, operation: str, kwargs: dict[str, Any]) -> FakeCall:
        call = FakeCall(operation, dict(kwargs))
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            delay = self.latency if isinstance(self.latency, int | float) else self._rng.uniform(*self.latency)
            queued = self._queued.pop(0) if self._queued else None
            throttled = self.throttle_rate > 0 and self._rng.random() < self.throttle_rate
            failed = self.error_rate > 0 and self._rng.random() < self.error_rate
            five_xx = self._rng.choice(["ServiceUnavailableException", "InternalServerException"])
        if delay:
            time.sleep(delay)
        code, message = (None, None)
        if queued:
            code, message = queued
        elif self.access_denied:
            code = "AccessDeniedException"
            message = "You don't have access to the model with the specified model ID."
        elif throttled:
            code, message = "ThrottlingException", "Too many requests, please wait before trying again."
        elif failed:
            code, message = five_xx, "The service is temporarily unable to handle the request."
        if code:
            call.error = code
            self._end()
            raise client_error(code, message or code, _OPERATIONS[operation])
        return call

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    @staticmethod
    def _error(code: str, message: str, operation: str = "InvokeModel") -> ClientError:
        return client_error(code, message, operation)

    def _require(self, operation: str, kwargs: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if kwargs.get(n) is None]
        if missing:
            # botocore would raise ParamValidationError before sending; a fake can only approximate.
            raise self._error("ValidationException", f"Missing required parameter(s): {', '.join(missing)}", operation)

    def _check_model(self, operation: str, model_id: str) -> None:
        if model_id != self.model_id:
            raise self._error("ValidationException", "The provided model identifier is invalid.", operation)

    def _dim(self, requested: int) -> int:
        return self.wrong_dimension or requested

    def _source_bytes(self, source: dict[str, Any], kind: str, sync: bool) -> bytes:
        """The input's bytes: inline base64, or the S3 object (which must exist, and fit the sync S3 limits)."""
        if "bytes" in source:
            return base64.b64decode(source["bytes"])
        uri = source["s3Location"]["uri"]
        if self.s3 is None:
            return uri.encode("utf-8")  # no S3 behind the fake: the URI stands in for the content
        data = self._read_s3(uri, missing_ok=True)
        if data is None:
            raise self._error("ValidationException", f"Unable to access the S3 object {uri}.")
        if sync and len(data) > S3_SYNC_MAX_BYTES[kind]:
            raise self._error("ValidationException", f"The S3 {kind} object {uri} exceeds the size limit.")
        return data

    def _check_sync_duration(self, data: bytes, kind: str) -> None:
        knob = self.sync_media_seconds
        seconds = knob(data) if callable(knob) else knob if knob is not None else probe_seconds(data)
        if seconds is not None and seconds > MAX_SYNC_MEDIA_SECONDS + 0.5:  # container padding of a 30 s window
            raise self._error(
                "ValidationException", f"The {kind} is {seconds:.1f} s long; the maximum duration is 30 seconds."
            )

    def _read_s3(self, uri: str, missing_ok: bool = False) -> bytes | None:
        if self.s3 is None:
            return None
        match = _S3_URI.match(uri)
        assert match, uri
        try:
            return self.s3.get_object(Bucket=match.group(1), Key=(match.group(2) or "/")[1:])["Body"].read()
        except ClientError:
            if missing_ok:
                return None
            raise self._error("ValidationException", f"Unable to access the S3 object {uri}.") from None

    def _single_embeddings(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        dim = self._dim(params.get("embeddingDimension", 3072))
        kind = modality_of(params)
        spec = params[kind]
        if kind == "text":
            text = spec.get("value")
            if text is None:
                text = self._source_bytes(spec["source"], "text", sync=True).decode("utf-8", "replace")
            return [{"embeddingType": "TEXT", "embedding": text_vector(text, dim)}]
        seed = self._source_bytes(spec["source"], kind, sync=True)
        if kind == "image":
            return [{"embeddingType": "IMAGE", "embedding": hash_vector(b"image:" + seed, dim)}]
        self._check_sync_duration(seed, kind)
        if kind == "audio":
            return [{"embeddingType": "AUDIO", "embedding": hash_vector(b"audio:" + seed, dim)}]
        if spec["embeddingMode"] == "AUDIO_VIDEO_SEPARATE":
            return [
                {"embeddingType": "VIDEO", "embedding": hash_vector(b"video:" + seed, dim)},
                {"embeddingType": "AUDIO", "embedding": hash_vector(b"audio:" + seed, dim)},
            ]
        return [{"embeddingType": "AUDIO_VIDEO_COMBINED", "embedding": hash_vector(b"av:" + seed, dim)}]

    def _plan_outputs(self, job: FakeJob, params: dict[str, Any]) -> None:
        """Compute the job's output files now (inputs are read at submit time); they are written on completion."""
        dim = self._dim(params.get("embeddingDimension", 3072))
        folder = f"{job.s3_uri.rstrip('/')}/{job.job_id}"
        source_uri: str | None = None
        outputs: list[tuple[str, str, list[dict[str, Any]]]] = []
        kind = modality_of(params)
        spec = params[kind]
        if kind == "text":
            if spec.get("value") is not None:
                text = spec["value"]
            else:
                source_uri = spec["source"]["s3Location"]["uri"]
                text = self._source_bytes(spec["source"], "text", sync=False).decode("utf-8", "replace")
            spans = split_text(text, spec["segmentationConfig"].get("maxLengthChars", 32_000))
            if len(spans) > MAX_TEXT_SEGMENTS:
                job.failure_message = f"The text produces {len(spans)} segments; at most {MAX_TEXT_SEGMENTS}."
                return
            lines = []
            for i, (start, end) in enumerate(spans):
                meta = {"segmentIndex": i, "segmentStartCharPosition": start, "segmentEndCharPosition": end}
                lines.append(self._line(i, meta, lambda s=start, e=end: text_vector(text[s:e], dim)))
            outputs.append(("TEXT", "embedding-text.jsonl", lines))
        elif kind == "image":
            source_uri = spec["source"]["s3Location"]["uri"]
            seed = self._source_bytes(spec["source"], "image", sync=False)
            line = self._line(0, {"segmentIndex": 0}, lambda: hash_vector(b"image:" + seed, dim))
            outputs.append(("IMAGE", "embedding-image.json", [line]))
        else:
            source_uri = spec["source"]["s3Location"]["uri"]
            seed = self._source_bytes(spec["source"], kind, sync=False)
            step = spec["segmentationConfig"].get("durationSeconds", 5)
            total = self.media_seconds(source_uri) if callable(self.media_seconds) else float(self.media_seconds)
            count = max(1, math.ceil(total / step))
            if count > MAX_MEDIA_SEGMENTS:
                job.failure_message = f"The media produces {count} segments; at most {MAX_MEDIA_SEGMENTS}."
                return
            if kind == "audio":
                kinds = [("AUDIO", "embedding-audio.jsonl", b"audio:")]
            elif spec["embeddingMode"] == "AUDIO_VIDEO_SEPARATE":
                kinds = [("VIDEO", "embedding-video.jsonl", b"video:"), ("AUDIO", "embedding-audio.jsonl", b"audio:")]
            else:
                kinds = [("AUDIO_VIDEO_COMBINED", "embedding-audio-video.jsonl", b"av:")]
            for embedding_type, name, salt in kinds:
                lines = []
                for i in range(count):
                    start, end = float(i * step), float(min(total, (i + 1) * step))
                    vec = lambda i=i, salt=salt: hash_vector(salt + seed + f"#{i}".encode(), dim)  # noqa: E731
                    if self.blog_field_names:
                        lines.append(self._line(i, None, vec, {"startTime": start, "endTime": end}))
                    else:
                        meta = {"segmentIndex": i, "segmentStartSeconds": start, "segmentEndSeconds": end}
                        lines.append(self._line(i, meta, vec))
                outputs.append((embedding_type, name, lines))

        bucket, _, key_prefix = folder[len("s3://") :].partition("/")
        key_base = f"{key_prefix}/" if key_prefix else ""
        results = []
        for kind, name, lines in outputs:
            failed = sum(1 for line in lines if line["status"] == "FAILURE")
            status = "SUCCESS" if not failed else "FAILURE" if failed == len(lines) else "PARTIAL_SUCCESS"
            entry: dict[str, Any] = {"embeddingType": kind, "status": status, "outputFileUri": f"{folder}/{name}"}
            if failed:
                entry["failureReason"] = self.segment_failure_reason
                entry["message"] = f"{failed} of {len(lines)} segments failed"
            results.append(entry)
            job.files[f"{bucket}\n{key_base}{name}"] = "\n".join(json.dumps(line) for line in lines) + "\n"
        summary: dict[str, Any] = {"embeddingDimension": dim, "embeddingResults": results}
        if source_uri:
            summary["sourceFileUri"] = source_uri
        job.files[f"{bucket}\n{key_base}segmented-embedding-result.json"] = json.dumps(summary)

    def _line(
        self,
        index: int,
        meta: dict[str, Any] | None,
        vector: Callable[[], list[float]],
        top: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        line: dict[str, Any] = dict(top or {})
        if meta is not None:
            line["segmentMetadata"] = meta
        if index in self.failed_segments:
            line.update(status="FAILURE", failureReason=self.segment_failure_reason, message="segment failed")
        else:
            line.update(embedding=vector(), status="SUCCESS")
        return line

    def _finish(self, job: FakeJob) -> None:
        now = datetime.now(UTC)
        job.end_time = job.last_modified_time = now
        if job.failure_message:
            job.status = "Failed"
            return
        for where, content in job.files.items():
            bucket, key = where.split("\n", 1)
            self.s3.put_object(Bucket=bucket, Key=key, Body=content.encode("utf-8"))
        job.status = "Completed"

    def _describe(self, job: FakeJob) -> dict[str, Any]:
        uri = f"{job.s3_uri.rstrip('/')}/{job.job_id}" if self.report_uri_with_job_id else job.s3_uri
        out: dict[str, Any] = {
            "invocationArn": job.arn,
            "modelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{self.model_id}",
            "status": job.status,
            "submitTime": job.submit_time,
            "lastModifiedTime": job.last_modified_time,
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": uri}},
        }
        if job.token:
            out["clientRequestToken"] = job.token
        if job.end_time:
            out["endTime"] = job.end_time
        if job.status == "Failed":
            out["failureMessage"] = job.failure_message
        return out


def probe_seconds(data: bytes) -> float | None:
    """Duration of audio/video bytes as PyAV reads them; None when it cannot (not real media)."""
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            if container.duration:
                return container.duration / 1_000_000
            streams = [s for s in container.streams if s.duration and s.time_base]
            return max(float(s.duration * s.time_base) for s in streams) if streams else None
    except Exception:  # noqa: BLE001 - anything PyAV cannot open is "unknown", as a fake may be fed stand-in bytes
        return None


def split_text(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Greedy spans of at most ``max_chars``, cut at whitespace when possible; end positions exclusive."""
    spans: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        end = min(start + max_chars, n)
        if end < n:
            cut = text.rfind(" ", start + 1, end)
            if cut > start:
                end = cut
        spans.append((start, end))
        start = end
    return spans
