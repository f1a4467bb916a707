"""The one AWS error translator: Bedrock, S3 and S3 Vectors failures become NovaErrors an agent can act on.

Every AWS call site funnels its botocore exception through `translate`. The text that comes out:

- never carries credentials: access key ids, secret keys, session tokens, SigV4 signatures and whole
  presigned URLs are replaced (`scrub`), because AWS error messages echo them (an AccessDenied from S3 can
  quote the presigned URL it refused, and Bedrock's quotes the caller's key id);
- names the IAM action to check (`iam_actions`), e.g. `s3:GetObject` for a denied download,
  `s3vectors:TagResource` for a CreateIndex with tags, `s3vectors:ListTagsForResource` for reading the
  index's embedder stamp;
- says what to do next.

`ScrubbingFilter` applies the same scrubbing to log records, so the log holds what the agent sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    IndexNotFound,
    InvalidInput,
    LimitExceeded,
    ModelUnavailable,
    NotFound,
    NovaError,
)
from nova_mcp_server.redact import ScrubbingFilter, install_log_scrubber, scrub
from nova_mcp_server.schema import MODEL_ID

__all__ = ["ScrubbingFilter", "install_log_scrubber", "iam_actions", "is_transient", "scrub", "translate"]

BEDROCK_RUNTIME = "bedrock-runtime"
S3 = "s3"
S3VECTORS = "s3vectors"

# ---- facts about a botocore exception --------------------------------------------------------------------


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


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return scrub(str(exc.response.get("Error", {}).get("Message") or "").strip())
    return scrub(str(exc))


THROTTLING_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "SlowDown", "RequestLimitExceeded", "Throttling"}
)
TRANSIENT_CODES = frozenset(
    {
        *THROTTLING_CODES,
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalError",
        "RequestTimeoutException",
        "RequestTimeout",
    }
)
MODEL_TIMEOUT = "ModelTimeoutException"
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
        "InvalidToken",
    }
)
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "Forbidden", "AllAccessDisabled"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NotFoundException"})


def is_throttling(exc: BaseException) -> bool:
    """True when the service asked us to slow down (a throttling code or HTTP 429)."""
    return isinstance(exc, ClientError) and (error_code(exc) in THROTTLING_CODES or http_status(exc) == 429)


def is_transient(exc: BaseException) -> bool:
    """True for throttling, model-not-ready, 5xx and connection failures a later attempt may survive.

    ``ModelTimeoutException`` is not in this set: the retry layer treats it on its own (one more attempt).
    """
    if isinstance(exc, ClientError):
        status = http_status(exc) or 0
        return error_code(exc) in TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError | EndpointConnectionError)


# ---- IAM actions per call --------------------------------------------------------------------------------

_S3_ACTIONS = {
    "GetObject": ["s3:GetObject"],
    "HeadObject": ["s3:GetObject"],  # HEAD is authorised by s3:GetObject
    "HeadBucket": ["s3:ListBucket"],
    "DownloadFile": ["s3:GetObject"],
    "PutObject": ["s3:PutObject"],
    "UploadFile": ["s3:PutObject"],
    "DeleteObject": ["s3:DeleteObject"],
    "ListObjectsV2": ["s3:ListBucket"],
    "ReadAsyncOutput": ["s3:GetObject", "s3:ListBucket"],
}
_BEDROCK_ACTIONS = {
    "InvokeModel": ["bedrock:InvokeModel"],
    # documented: StartAsyncInvoke needs bedrock:InvokeModel; the job reads the input and writes the output
    "StartAsyncInvoke": ["bedrock:InvokeModel", "s3:GetObject on the input", "s3:PutObject on the output prefix"],
    "GetAsyncInvoke": ["bedrock:GetAsyncInvoke"],
    "ListAsyncInvokes": ["bedrock:ListAsyncInvokes"],
}


def iam_actions(service: str, operation: str | None, params: Mapping[str, Any] | None = None) -> list[str]:
    """The IAM actions a call needs, as the service documents them."""
    params = params or {}
    if not operation:
        return []
    if service == S3:
        return list(_S3_ACTIONS.get(operation, [f"s3:{operation}"]))
    if service == BEDROCK_RUNTIME:
        return list(_BEDROCK_ACTIONS.get(operation, [f"bedrock:{operation}"]))
    if service == S3VECTORS:
        actions = [f"s3vectors:{operation}"]
        if operation in ("CreateIndex", "CreateVectorBucket") and params.get("tags"):
            actions.append("s3vectors:TagResource")  # documented: creating with tags needs TagResource too
        if operation == "QueryVectors" and (params.get("filter") or params.get("returnMetadata")):
            actions.append("s3vectors:GetVectors")  # documented: filters and returned metadata need it
        if operation == "ListVectors" and (params.get("returnData") or params.get("returnMetadata")):
            actions.append("s3vectors:GetVectors")
        return actions
    return []


# ---- translation -----------------------------------------------------------------------------------------


def _service_name(service: str) -> str:
    return {BEDROCK_RUNTIME: "Amazon Bedrock", S3: "Amazon S3", S3VECTORS: "Amazon S3 Vectors"}.get(service, "AWS")


def _where(region: str | None) -> str:
    return f"in region {region}" if region else "in the configured region"


def translate(
    exc: BaseException,
    *,
    service: str,
    operation: str | None = None,
    resource: str | None = None,
    region: str | None = None,
    model_id: str = MODEL_ID,
    params: Mapping[str, Any] | None = None,
    index: str | None = None,
    attempts: int | None = None,
) -> NovaError:
    """The NovaError for a botocore failure; the caller raises it ``from exc``.

    ``service`` is the boto3 service name, ``operation`` the API operation (``GetObject``, ``CreateIndex``),
    ``resource`` what was acted on (an s3:// URI, a vector bucket), ``index`` an S3 Vectors index name (a 404
    then means that index), ``params`` the request parameters (to name the IAM actions they need), and
    ``attempts`` how many attempts were made (said in the message when more than one).
    """
    if isinstance(exc, NovaError):
        return exc
    name = _service_name(service)
    what = f" ({operation})" if operation else ""
    on = f" on {scrub(resource)}" if resource else ""
    tried = f" after retries ({attempts} attempts)" if attempts and attempts > 1 else ""

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
            "Set AWS_REGION or NOVA_MCP_REGION (and NOVA_MCP_BEDROCK_REGION if Bedrock runs elsewhere).",
        )
    if isinstance(exc, ParamValidationError):
        return InvalidInput(f"{name}{what} rejected the parameters before sending: {scrub(str(exc))}")
    if isinstance(exc, ReadTimeoutError):
        return BackendUnavailable(
            f"{name}{what} did not answer in time {_where(region)}{tried}.",
            "Try again later, lower NOVA_MCP_CONCURRENCY, or send shorter media (long audio/video goes async).",
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        hint = "Check the network and that the service is offered in this region"
        if service == BEDROCK_RUNTIME:
            hint += " (set NOVA_MCP_BEDROCK_REGION to a region that offers Nova Multimodal Embeddings)"
        return BackendUnavailable(f"Could not reach {name} {_where(region)}{what}{tried}.", hint + "; try again later.")
    if not isinstance(exc, ClientError):
        if isinstance(exc, BotoCoreError):
            return BackendUnavailable(f"{name}{what} failed: {type(exc).__name__}: {scrub(str(exc))}")
        return BackendUnavailable(f"{name}{what} failed unexpectedly: {type(exc).__name__}")

    code = error_code(exc) or "Unknown"
    status = http_status(exc) or 0
    message = error_message(exc)
    said = f": {message}" if message else ""
    actions = iam_actions(service, operation, params)
    grant = " and ".join(actions) if actions else "the needed permissions"

    if code in _CREDENTIAL_CODES:
        return AccessDenied(
            f"AWS rejected the credentials for {name}{what} ({code}).",
            "Refresh or fix them (e.g. `aws sso login`, or check AWS_PROFILE), or use NOVA_MCP_BACKEND=local.",
        )
    if code in _DENIED_CODES or status == 403:
        if service == BEDROCK_RUNTIME:
            return AccessDenied(
                f"Amazon Bedrock denied access to {model_id} {_where(region)}{what}{said}",
                f"Enable model access for {model_id} in the Bedrock console (Model access) in this region and "
                f"grant the caller {grant}.",
            )
        return AccessDenied(f"{name} denied {operation or 'access'}{on}{said}", f"Grant the caller {grant}{on}.")
    if code.startswith("Kms"):
        return AccessDenied(
            f"{name} could not use the KMS key{on}{what} ({code}){said}",
            "Check the key is enabled and the caller may use it (kms:Decrypt, kms:GenerateDataKey).",
        )
    if service == BEDROCK_RUNTIME and (
        code == "ResourceNotFoundException" or (code == "ValidationException" and "model identifier" in message)
    ):
        return ModelUnavailable(
            f"Bedrock model {model_id} is not available {_where(region)}{said}",
            "Check NOVA_MCP_MODEL_ID, and set NOVA_MCP_BEDROCK_REGION to a region that offers Nova Multimodal "
            "Embeddings (e.g. us-east-1).",
        )
    if code == MODEL_TIMEOUT:
        return BackendUnavailable(
            f"The model timed out processing the input{what}{tried}{said}",
            "Send a shorter clip or a smaller file (media longer than 30 s goes through the async path).",
        )
    if service == S3VECTORS and (code == "NotFoundException" or status == 404):
        if index is not None and "bucket" not in message.lower():
            return IndexNotFound(index)
        return NotFound(
            f"Vector bucket{on} does not exist{said}", "Create it, or let the server create it on first use."
        )
    if code in {"ValidationException", "InvalidRequest", "InvalidArgument", "BadRequest"}:
        return InvalidInput(
            f"{name} rejected the request{what}{said}",
            "The same input fails again: check its format, size and length against nova://capabilities, "
            "or index a smaller or converted copy.",
        )
    if code == "ConflictException":
        return InvalidInput(
            f"{name} reported a conflict{what}{said}",
            "A client token was reused with different input, or the resource already exists.",
        )
    if code in _NOT_FOUND_CODES or status == 404:
        return NotFound(f"{name}: not found{on}{what}{said}")
    if code == "ServiceQuotaExceededException":
        quota = LimitExceeded if service == S3VECTORS else BackendUnavailable
        return quota(
            f"{name} quota exceeded{what}{said}",
            "Wait for running jobs to finish, lower NOVA_MCP_CONCURRENCY, or request a quota increase.",
        )
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return BackendUnavailable(
            f"{name} is throttling or unavailable{what} ({code}){tried}{said}",
            "Try again later or lower NOVA_MCP_CONCURRENCY.",
        )
    if code == "ModelErrorException":
        return BackendUnavailable(f"The model failed to process the input{what}{said}", "Check the input file.")
    if status == 400:
        return InvalidInput(f"{name} rejected the request{what} ({code}){said}")
    return BackendUnavailable(f"{name}{what} failed with {code}{said}")
