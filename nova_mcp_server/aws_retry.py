"""The one retry layer for AWS calls: jittered backoff inside a total time budget per call.

botocore's own retries are switched off (``total_max_attempts=1`` in `aws.AwsClients.config`) so retries
never multiply: before, our 4 attempts wrapped botocore's 5, each with a 120 s read timeout. Here a call
gets at most ``max_attempts`` attempts, and a new attempt starts only when it could still finish inside the
budget if it ran into the client's full connect + read timeout. So a request/response call never outlives
``budget_s``; a streaming transfer (upload_file of a large video) that keeps moving bytes is bounded per
read by the timeouts, not in total, and the budget then limits how often it is retried.

What is retried: throttling, model-not-ready, 5xx and connection failures (`aws_errors.is_transient`), and
``ModelTimeoutException`` once. Throttling gets twice the attempts of other faults (8 for the default 4;
``max_attempts=1`` still means no retry): it is the service asking us to slow down, not a sign the call is broken, and at 10 %
throttling 4 attempts still lost about one call in 7,000 (`benchmarks/bedrock_path.py`, files under faults),
8 lose about one in 100 million; the budget still bounds the whole call (a slow model may answer a second time; a clip that is simply too long will
not, and its own message says so). Everything else fails at once.

`RetryingClient` applies the policy to every method of a boto3 client (what the ingest and staging code
get); `NovaEmbedder` runs the same `RetryPolicy.delay` from its async loop so a backoff never holds a thread.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nova_mcp_server.aws_errors import MODEL_TIMEOUT, error_code, is_throttling, is_transient, scrub

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How long one call may take in all, and how attempts are spaced."""

    budget_s: float = 300.0  # the whole call: every attempt and every wait
    attempt_timeout_s: float = 130.0  # the longest one attempt can take (the client's connect + read timeout)
    max_attempts: int = 6
    throttle_factor: int = 2  # attempts x this when the service says "slow down" (429 / Throttling)
    base_s: float = 0.5
    cap_s: float = 20.0
    model_timeout_retries: int = 1
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, exc: BaseException, attempt: int, elapsed: float, model_timeouts: int = 0) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        ``attempt`` counts the attempts made so far (1 after the first failure), ``elapsed`` the seconds
        since the call began, ``model_timeouts`` how many of the failures were ModelTimeoutException.
        """
        code = error_code(exc)
        if code == MODEL_TIMEOUT:
            if model_timeouts > self.model_timeout_retries:
                return None
        elif not is_transient(exc):
            return None
        limit = self.max_attempts
        if is_throttling(exc) and limit > 1:
            limit *= self.throttle_factor
        if attempt >= limit:
            return None
        wait = self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
        if elapsed + wait + self.attempt_timeout_s > self.budget_s:
            return None  # the next attempt might not finish inside the budget
        return wait


class RetriesExhausted:
    """Marks an exception with the number of attempts made (read by `aws_errors.translate`)."""

    @staticmethod
    def mark(exc: BaseException, attempts: int) -> BaseException:
        with contextlib.suppress(AttributeError):  # builtin exceptions without __dict__
            exc.attempts = attempts  # type: ignore[attr-defined]
        return exc


def _sleep(seconds: float) -> None:
    """The blocking wait between attempts (a module function, so tests can record and skip it)."""
    time.sleep(seconds)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    operation: str = "call",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``fn`` under ``policy`` (blocking); re-raises the last failure with ``.attempts`` set."""
    started = clock()
    attempt = 0
    model_timeouts = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            attempt += 1
            model_timeouts += error_code(exc) == MODEL_TIMEOUT
            wait = policy.delay(exc, attempt, clock() - started, model_timeouts)
            if wait is None:
                RetriesExhausted.mark(exc, attempt)
                raise
            log.info("%s: %s, retry %d in %.2fs", operation, error_code(exc) or scrub(str(exc)), attempt, wait)
            (sleep or _sleep)(wait)


_NOT_WRAPPED = frozenset(
    {"get_paginator", "get_waiter", "can_paginate", "generate_presigned_url", "generate_presigned_post", "close"}
)


class RetryingClient:
    """A boto3 client (or a fake with its method names) whose calls go through `call_with_retries`.

    Attributes that are not API methods (``meta``, ``exceptions``) pass through untouched; `unwrap`
    gives the client underneath (for callers that run the policy themselves, like the async embedder).
    """

    def __init__(
        self,
        client: Any,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._client = client
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    @property
    def unwrapped(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or name in _NOT_WRAPPED or not callable(attr) or isinstance(attr, type):
            return attr
        mapping = getattr(getattr(self._client, "meta", None), "method_to_api_mapping", None) or {}
        operation = mapping.get(name) or "".join(part.capitalize() for part in name.split("_"))

        def call(*args: Any, **kwargs: Any) -> Any:
            return call_with_retries(
                lambda: attr(*args, **kwargs), self.policy, operation=operation, clock=self._clock, sleep=self._sleep
            )

        return call


def unwrap(client: Any) -> Any:
    """The client under any `RetryingClient` (or a lazy proxy of one); the client itself otherwise."""
    inner = getattr(client, "unwrapped", None)
    return client if inner is None else inner


def retrying(client: Any, policy: RetryPolicy, **kwargs: Any) -> Any:
    """``client`` under ``policy``, unless it already runs under a retry layer (then unchanged)."""
    if getattr(client, "unwrapped", None) is not None:
        return client
    return RetryingClient(client, policy, **kwargs)
