"""boto3 clients built once from settings, and AWS failures translated into errors an agent can act on.

Clients are created lazily (so a server on the local backend never touches boto3 credentials) and under a
lock (boto3 sessions are not thread-safe; clients are). Every client uses botocore's *standard* retry mode
and a connection pool at least as large as our concurrency, so worker threads never queue for a socket.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from nova_mcp_server.errors import (
    AccessDenied,
    BackendUnavailable,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    NovaError,
)
from nova_mcp_server.schema import MODEL_ID

if TYPE_CHECKING:
    from nova_mcp_server.settings import Settings

BEDROCK_RUNTIME = "bedrock-runtime"
S3 = "s3"
S3VECTORS = "s3vectors"

DEFAULT_MAX_ATTEMPTS = 5  # total attempts per call, the first one included
DEFAULT_READ_TIMEOUT = 120.0  # sync video/audio calls can take tens of seconds
DEFAULT_CONNECT_TIMEOUT = 10.0

# Codes worth retrying with our own backoff after botocore's retries gave up.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "InternalServerException",
        "RequestTimeoutException",
        "SlowDown",
    }
)
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NotFoundException"})


class AwsClients:
    """Lazy, thread-safe provider of the three boto3 clients the server uses.

    Tests can pass ``overrides`` (service name -> client-like object, e.g. a fake Bedrock runtime or a moto
    client) so code that takes an ``AwsClients`` needs no other seam.
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        concurrency: int = 8,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self._region = region
        self._profile = profile
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._clients: dict[str, Any] = dict(overrides or {})
        self._session: boto3.session.Session | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AwsClients:
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

    def config(self) -> Config:
        return Config(
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            read_timeout=self.read_timeout,
            connect_timeout=self.connect_timeout,
            max_pool_connections=max(10, self.concurrency + 2),
        )

    def client(self, service: str) -> Any:
        """The client for ``service``, created on first use. Raises a NovaError if boto3 cannot build it."""
        found = self._clients.get(service)
        if found is not None:
            return found
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                session = self._get_session_locked()
                try:
                    found = session.client(service, region_name=self._region, config=self.config())
                except (BotoCoreError, ClientError) as exc:
                    raise to_nova_error(exc, service=service, region=self._region) from exc
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


# ---- error translation -----------------------------------------------------------------------------------

_URL_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")
_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_MAX_MESSAGE = 600


def scrub(text: str) -> str:
    """Drop URL query strings (presigned signatures) and access key ids from text shown to an agent."""
    text = _URL_QUERY.sub(r"\1", text)
    text = _ACCESS_KEY.sub("<access-key-id>", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError (e.g. ``ThrottlingException``), else None."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def http_status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    return None


def is_retryable(exc: BaseException) -> bool:
    """True for throttling, model-not-ready and 5xx failures that a later attempt may survive."""
    if isinstance(exc, ClientError):
        status = http_status(exc) or 0
        return error_code(exc) in RETRYABLE_CODES or status >= 500 or status == 429
    return isinstance(exc, ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError)


def _where(region: str | None) -> str:
    return f"in region {region}" if region else "in the configured region"


def _service_name(service: str) -> str:
    return {BEDROCK_RUNTIME: "Amazon Bedrock", S3: "Amazon S3", S3VECTORS: "Amazon S3 Vectors"}.get(service, "AWS")


def to_nova_error(
    exc: BaseException,
    *,
    service: str,
    operation: str | None = None,
    region: str | None = None,
    model_id: str = MODEL_ID,
    resource: str | None = None,
) -> NovaError:
    """Translate a botocore failure into the NovaError an agent can act on; the caller raises it ``from exc``.

    ``service`` is the boto3 service name; ``resource`` (an s3:// URI, an index name) is named in the text.
    Messages never include credentials, signed URLs or request bodies.
    """
    if isinstance(exc, NovaError):
        return exc
    name = _service_name(service)
    what = f" ({operation})" if operation else ""
    on = f" on {resource}" if resource else ""

    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return AccessDenied(
            f"No usable AWS credentials for {name}{what}.",
            "Configure credentials (AWS_PROFILE or NOVA_MCP_PROFILE, plus AWS_REGION or NOVA_MCP_REGION), "
            "or run on the local backend (NOVA_MCP_BACKEND=local).",
        )
    if isinstance(exc, ProfileNotFound):
        return AccessDenied(
            f"The AWS profile {exc.kwargs.get('profile')!r} does not exist.",
            "Set AWS_PROFILE/NOVA_MCP_PROFILE to a profile in ~/.aws/config, or use NOVA_MCP_BACKEND=local.",
        )
    if isinstance(exc, NoRegionError):
        return ModelUnavailable(
            f"No AWS region is configured for {name}.",
            "Set AWS_REGION or NOVA_MCP_REGION (Nova Multimodal Embeddings launched in us-east-1).",
        )
    if isinstance(exc, ParamValidationError):
        return InvalidInput(f"{name}{what} rejected the parameters before sending: {scrub(str(exc))}")
    if isinstance(exc, ReadTimeoutError):
        return BackendUnavailable(
            f"{name}{what} did not answer in time {_where(region)}.",
            "Try again later, lower NOVA_MCP_CONCURRENCY, or send shorter media (long audio/video goes async).",
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        hint = "Check the network and that the service is offered in this region"
        if service == BEDROCK_RUNTIME:
            hint += " (Nova Multimodal Embeddings launched in us-east-1)"
        return BackendUnavailable(f"Could not reach {name} {_where(region)}{what}.", hint + "; try again later.")
    if not isinstance(exc, ClientError):
        if isinstance(exc, BotoCoreError):
            return BackendUnavailable(f"{name}{what} failed: {type(exc).__name__}: {scrub(str(exc))}")
        return BackendUnavailable(f"{name}{what} failed unexpectedly: {type(exc).__name__}")

    code = error_code(exc) or "Unknown"
    status = http_status(exc) or 0
    message = scrub(str(exc.response.get("Error", {}).get("Message") or "").strip())
    said = f": {message}" if message else ""

    if code in _CREDENTIAL_CODES:
        return AccessDenied(
            f"AWS rejected the credentials for {name}{what} ({code}).",
            "Refresh or fix them (e.g. `aws sso login`, or check AWS_PROFILE), or use NOVA_MCP_BACKEND=local.",
        )
    if code in {"AccessDeniedException", "AccessDenied", "Forbidden"} or status == 403:
        if service == BEDROCK_RUNTIME:
            return AccessDenied(
                f"Amazon Bedrock denied access to {model_id} {_where(region)}{what}{said}",
                f"Enable model access for {model_id} in the Bedrock console (Model access) in this region and "
                "grant the caller bedrock:InvokeModel (async jobs also need s3:PutObject on the output bucket).",
            )
        perms = {S3: "s3:GetObject/s3:PutObject/s3:ListBucket", S3VECTORS: "the s3vectors:* actions"}.get(
            service, "the needed permissions"
        )
        return AccessDenied(f"{name} denied access{on}{what}{said}", f"Grant the caller {perms} on it.")
    if service == BEDROCK_RUNTIME and (
        code == "ResourceNotFoundException" or (code == "ValidationException" and "model identifier" in message)
    ):
        return ModelUnavailable(
            f"Bedrock model {model_id} is not available {_where(region)}{said}",
            "Check NOVA_MCP_MODEL_ID and use a region that offers Nova Multimodal Embeddings (e.g. us-east-1).",
        )
    if code in {"ValidationException", "InvalidRequest", "InvalidArgument", "BadRequest"}:
        return InvalidInput(f"{name} rejected the request{what}{said}")
    if code == "ConflictException":
        return InvalidInput(
            f"{name} reported a conflict{what}{said}",
            "A client token was reused with different input, or the resource already exists.",
        )
    if code in _NOT_FOUND_CODES or status == 404:
        return NotFound(f"{name}: not found{on}{what}{said}")
    if code == "ServiceQuotaExceededException":
        return BackendUnavailable(
            f"{name} quota exceeded{what}{said}",
            "Wait for running jobs to finish, lower NOVA_MCP_CONCURRENCY, or request a quota increase.",
        )
    if code in RETRYABLE_CODES or status >= 500 or status == 429 or code == "ModelTimeoutException":
        return BackendUnavailable(
            f"{name} is throttling or unavailable{what} ({code}) after retries.",
            "Try again later or lower NOVA_MCP_CONCURRENCY.",
        )
    if code == "ModelErrorException":
        return BackendUnavailable(f"The model failed to process the input{what}{said}", "Check the input file.")
    return BackendUnavailable(f"{name}{what} failed with {code}{said}")
