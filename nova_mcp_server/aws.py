"""boto3 clients built once from settings, under one retry layer, with the SDK version we need checked.

Clients are created lazily (so a server on the local backend never touches boto3 credentials) and under a
lock (boto3 sessions are not thread-safe; clients are). botocore's retries are off (``total_max_attempts``
1) and its timeouts explicit per service; retries happen once, in `aws_retry` (a total time budget per
call). Bedrock may run in its own region (``NOVA_MCP_BEDROCK_REGION``): Nova Multimodal Embeddings is
offered in fewer regions than S3 Vectors. The connection pool is at least as large as our concurrency, so
worker threads never queue for a socket.

Error translation lives in `aws_errors` (one translator for Bedrock, S3 and S3 Vectors); the names below
(`to_nova_error`, `scrub`, `error_code`, `is_retryable`) are kept for existing callers.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from nova_mcp_server.aws_errors import (
    BEDROCK_RUNTIME,
    S3,
    S3VECTORS,
    error_code,
    http_status,
    is_transient,
    scrub,
    translate,
)
from nova_mcp_server.aws_retry import RetryingClient, RetryPolicy
from nova_mcp_server.errors import ModelUnavailable, NovaError

if TYPE_CHECKING:
    from nova_mcp_server.settings import Settings

__all__ = [
    "BEDROCK_RUNTIME",
    "S3",
    "S3VECTORS",
    "AwsClients",
    "check_sdk",
    "error_code",
    "http_status",
    "is_retryable",
    "scrub",
    "to_nova_error",
]

MIN_BOTOCORE = (1, 44, 0)  # QueryVectors nextToken, UpdateIndexMode, GetIndex indexMode, s3vectors tagging
DEFAULT_MAX_ATTEMPTS = 4  # total attempts per call, the first one included (our layer; botocore makes 1 each)
DEFAULT_BUDGET_S = 300.0  # total seconds one call may take, attempts and waits included
# (connect, read) timeouts per service: a sync video embedding can take tens of seconds; S3 Vectors answers fast
TIMEOUTS: dict[str, tuple[float, float]] = {BEDROCK_RUNTIME: (10.0, 120.0), S3VECTORS: (5.0, 30.0), S3: (10.0, 60.0)}
DEFAULT_READ_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 10.0

to_nova_error = translate
is_retryable = is_transient


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_sdk(version: str | None = None) -> None:
    """Raise one clear error when the installed botocore predates what the aws backend calls."""
    found = version or botocore.__version__
    if _version(found) < MIN_BOTOCORE:
        need = ".".join(map(str, MIN_BOTOCORE))
        raise ModelUnavailable(
            f"The aws backend needs boto3/botocore >= {need}; botocore {found} is installed (it lacks S3 Vectors "
            "query pagination, index modes and tagging).",
            f"Upgrade with: pip install -U 'boto3>={need}' 'botocore>={need}'",
        )


BEDROCK_AGENT_RUNTIME = "bedrock-agent-runtime"  # Rerank: a Bedrock API, in Bedrock's region


class AwsClients:
    """Lazy, thread-safe provider of the boto3 clients the server uses, each under the retry layer.

    Tests can pass ``overrides`` (service name -> client-like object, e.g. a fake Bedrock runtime or a moto
    client) so code that takes an ``AwsClients`` needs no other seam; overrides are used as given.
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        bedrock_region: str | None = None,
        concurrency: int = 8,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        budget_s: float = DEFAULT_BUDGET_S,
        read_timeout: float | None = None,
        connect_timeout: float | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self._region = region
        self._bedrock_region = bedrock_region
        self._profile = profile
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.budget_s = budget_s
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._clients: dict[str, Any] = dict(overrides or {})
        self._session: boto3.session.Session | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AwsClients:
        kwargs.setdefault("bedrock_region", getattr(settings, "bedrock_region", None))
        kwargs.setdefault("budget_s", getattr(settings, "aws_call_budget_s", DEFAULT_BUDGET_S))
        return cls(settings.region, settings.profile, concurrency=settings.concurrency, **kwargs)

    @property
    def region(self) -> str | None:
        """The configured region, else the session's (AWS_REGION / profile); None if nothing is set."""
        if self._region:
            return self._region
        try:
            return self._get_session().region_name
        except NovaError:
            return None

    def region_for(self, service: str) -> str | None:
        """Bedrock's own region when one is set, else the shared one."""
        if service in (BEDROCK_RUNTIME, BEDROCK_AGENT_RUNTIME) and self._bedrock_region:
            return self._bedrock_region
        return self._region

    def timeouts(self, service: str) -> tuple[float, float]:
        connect, read = TIMEOUTS.get(service, (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT))
        return (self.connect_timeout or connect, self.read_timeout or read)

    def config(self, service: str = BEDROCK_RUNTIME) -> Config:
        connect, read = self.timeouts(service)
        return Config(
            retries={"mode": "standard", "total_max_attempts": 1},  # the retry layer is ours (aws_retry)
            read_timeout=read,
            connect_timeout=connect,
            max_pool_connections=max(10, self.concurrency + 2),
        )

    def policy(self, service: str) -> RetryPolicy:
        connect, read = self.timeouts(service)
        return RetryPolicy(
            budget_s=self.budget_s,
            attempt_timeout_s=connect + read,
            max_attempts=self.max_attempts,
            cap_s=20.0 if service == BEDROCK_RUNTIME else 5.0,
            base_s=0.5 if service == BEDROCK_RUNTIME else 0.2,
        )

    def client(self, service: str) -> Any:
        """The client for ``service``, created on first use. Raises a NovaError if boto3 cannot build it."""
        found = self._clients.get(service)
        if found is not None:
            return found
        check_sdk()
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                session = self._get_session_locked()
                region = self.region_for(service)
                try:
                    raw = session.client(service, region_name=region, config=self.config(service))
                except (BotoCoreError, ClientError) as exc:
                    raise to_nova_error(exc, service=service, region=region) from exc
                found = RetryingClient(raw, self.policy(service))
                self._clients[service] = found
            return found

    def bedrock_runtime(self) -> Any:
        return self.client(BEDROCK_RUNTIME)

    def s3(self) -> Any:
        return self.client(S3)

    def s3vectors(self) -> Any:
        return self.client(S3VECTORS)

    def _get_session(self) -> boto3.session.Session:
        with self._lock:
            return self._get_session_locked()

    def _get_session_locked(self) -> boto3.session.Session:
        if self._session is None:
            try:
                self._session = boto3.session.Session(profile_name=self._profile, region_name=self._region)
            except BotoCoreError as exc:
                raise to_nova_error(exc, service="aws", region=self._region) from exc
        return self._session
