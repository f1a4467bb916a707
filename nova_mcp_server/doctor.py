"""`doctor`: is this set-up right, before anything is indexed? Each check passes, fails or is skipped, with the fix.

Read-only and nearly free: the one call that costs anything is a single text embedding of one word (about
$0.0000002) to prove model access. IAM is simulated with `iam:SimulatePrincipalPolicy` where the principal
may call it; otherwise the read-only calls the other checks made stand in for their actions and the rest
are listed as untested. Nothing is created: a missing vector bucket or index is reported as what the server
will create on first use.

`run_doctor(settings)` is blocking (boto3); the CLI calls it directly, the MCP tool through a worker thread.
Tests pass `clients` (an `AwsClients` with overrides: Stubber, moto, the Nova fake) and `downloader`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from nova_mcp_server.aws import AwsClients, error_code, to_nova_error
from nova_mcp_server.model_download import ModelDownloader
from nova_mcp_server.models import Check, DoctorReport  # boundary models: the MCP surface needs no botocore
from nova_mcp_server.schema import EmbeddingPurpose, SingleEmbeddingParams, SingleEmbeddingRequest, TextInput

Status = Literal["pass", "fail", "skipped"]
NOVA_REGIONS = ("us-east-1",)  # documented at launch; used only when bedrock:GetFoundationModel is denied
TAG_PREFIX = "nova-mcp:"

# The IAM actions the aws backend needs, by the resource they apply to (README "AWS permissions" shows them).
BEDROCK_MODEL_ACTIONS = ("bedrock:InvokeModel",)
BEDROCK_JOB_ACTIONS = ("bedrock:GetAsyncInvoke", "bedrock:ListAsyncInvokes")
VECTOR_BUCKET_ACTIONS = ("s3vectors:CreateVectorBucket", "s3vectors:GetVectorBucket", "s3vectors:ListIndexes")
VECTOR_INDEX_ACTIONS = (
    "s3vectors:CreateIndex",
    "s3vectors:GetIndex",
    "s3vectors:DeleteIndex",
    "s3vectors:UpdateIndexMode",
    "s3vectors:PutVectors",
    "s3vectors:GetVectors",
    "s3vectors:ListVectors",
    "s3vectors:DeleteVectors",
    "s3vectors:QueryVectors",
    "s3vectors:TagResource",
    "s3vectors:ListTagsForResource",
)
STAGING_BUCKET_ACTIONS = ("s3:ListBucket",)
STAGING_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject")
ALL_ACTIONS = (
    BEDROCK_MODEL_ACTIONS
    + BEDROCK_JOB_ACTIONS
    + VECTOR_BUCKET_ACTIONS
    + VECTOR_INDEX_ACTIONS
    + STAGING_BUCKET_ACTIONS
    + STAGING_OBJECT_ACTIONS
)


def _failure(exc: BaseException, service: str, operation: str, region: str | None, resource: str) -> tuple[str, str]:
    """(what happened, what to do) from the one AWS translator: scrubbed, naming the action to check."""
    err = to_nova_error(exc, service=service, operation=operation, region=region, resource=resource)
    return err.message, err.hint or f"Check that the caller may call {operation}."


class _Run:
    """One doctor run: the checks in order, each able to see what earlier ones found."""

    def __init__(self, settings: Any, clients: AwsClients, downloader: ModelDownloader) -> None:
        self.s = settings
        self.clients = clients
        self.downloader = downloader
        self.checks: list[Check] = []
        self.region: str | None = None
        self.bedrock_region: str | None = None
        self.arn: str | None = None
        self.account: str | None = None
        self.tried: set[str] = set()  # actions a successful read-only call proved

    def add(self, name: str, status: Status, detail: str, fix: str | None = None) -> Check:
        check = Check(name=name, status=status, detail=detail, fix=fix)
        self.checks.append(check)
        return check

    def call(self, service: str, method: str, **params: Any) -> dict[str, Any]:
        return getattr(self.clients.client(service), method)(**params)

    # ---- both backends ---------------------------------------------------------------------------------

    def allowed_roots(self) -> None:
        roots = [Path(r).expanduser() for r in self.s.allowed_roots]
        missing = [str(r) for r in roots if not r.is_dir()]
        broad = [str(r) for r in roots if r.resolve() in (Path(r.anchor), Path.home().resolve())]
        if not roots:
            self.add("allowed folders", "fail", "none: no file can be indexed", "Set NOVA_MCP_ALLOWED_ROOTS.")
        elif missing:
            self.add("allowed folders", "fail", f"not folders: {', '.join(missing)}", "Fix NOVA_MCP_ALLOWED_ROOTS.")
        elif broad:
            self.add(
                "allowed folders",
                "fail",
                f"{', '.join(broad)} opens every file of the disk or home folder to the agent",
                "Set NOVA_MCP_ALLOWED_ROOTS to your project folders.",
            )
        else:
            self.add("allowed folders", "pass", ", ".join(str(r) for r in roots))

    def data_folder(self) -> None:
        """The folder for the job table, the local store and the models: a folder this process can write to."""
        folder = Path(self.s.data_dir).expanduser()
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if folder.exists() and not folder.is_dir():
            self.add("data folder", "fail", f"{folder} is a file, not a folder", "Point NOVA_MCP_DATA_DIR at a folder.")
        elif existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            where = existing if existing is not None else folder
            self.add(
                "data folder",
                "fail",
                f"{folder} cannot be written ({where} is not writable)",
                "Point NOVA_MCP_DATA_DIR at a folder you can write to.",
            )
        else:
            self.add("data folder", "pass", f"{folder}" + ("" if folder.exists() else " (created on first use)"))

    def local_model(self, backend: str) -> None:
        if backend != "local":
            self.add("local model", "skipped", "the aws backend embeds with Bedrock")
            return
        status = self.downloader.status()
        if status.source == "model folder":
            fix = f"Fix the folder or unset NOVA_MCP_LOCAL_MODEL_PATH ({status.error})" if status.error else None
            self.add("local model", "pass" if not fix else "fail", f"{status.model} from {status.folder}", fix)
        elif self.downloader.cached():
            self.add("local model", "pass", f"{status.model} downloaded in {status.folder}")
        else:
            self.add(
                "local model",
                "fail",
                f"{status.model} is not downloaded yet (~{self.downloader.family.download_gb} GB into {status.folder})",
                "Run `nova-multimodal-mcp download-model` once (or set NOVA_MCP_LOCAL_MODEL_PATH to a model folder).",
            )

    # ---- aws ---------------------------------------------------------------------------------------------

    def identity(self) -> bool:
        try:
            who = self.call("sts", "get_caller_identity")
        except (ClientError, BotoCoreError) as exc:
            detail, fix = _failure(exc, "sts", "GetCallerIdentity", self.clients.region, "the credential chain")
            self.add("identity", "fail", detail, fix)
            return False
        self.arn, self.account = who["Arn"], who["Account"]
        profile = self.s.profile or "the default credential chain"
        self.add("identity", "pass", f"{self.arn} (account {self.account}) from {profile}")
        return True

    def region_check(self) -> None:
        self.region = self.clients.region
        if not self.region:
            self.add("region", "fail", "no region configured", "Set AWS_REGION (or --region), e.g. us-east-1.")
            return
        self.bedrock_region = self.clients.region_for("bedrock-runtime") or self.region
        if self.bedrock_region != self.region:  # the bedrock control-plane client lives in the shared region
            offered = self.bedrock_region in NOVA_REGIONS
            self.add(
                "region",
                "pass" if offered else "fail",
                f"S3 and S3 Vectors in {self.region}, Bedrock in {self.bedrock_region}: "
                f"{'in' if offered else 'not in'} the documented Nova MME regions {', '.join(NOVA_REGIONS)}",
                None if offered else f"Set NOVA_MCP_BEDROCK_REGION to one of {', '.join(NOVA_REGIONS)}.",
            )
            return
        try:
            self.call("bedrock", "get_foundation_model", modelIdentifier=self.s.model_id)
        except ClientError as exc:
            if error_code(exc) in {"AccessDeniedException", "AccessDenied"}:
                offered = self.region in NOVA_REGIONS
                self.add(
                    "region",
                    "pass" if offered else "fail",
                    f"{self.region}: {'in' if offered else 'not in'} the documented Nova MME regions "
                    f"{', '.join(NOVA_REGIONS)} (bedrock:GetFoundationModel is not allowed, so not asked)",
                    None if offered else f"Use one of {', '.join(NOVA_REGIONS)}.",
                )
                return
            self.add(
                "region",
                "fail",
                f"{self.s.model_id} is not offered in {self.region} ({error_code(exc)})",
                f"Use a region that offers it, e.g. {NOVA_REGIONS[0]}.",
            )
            return
        except BotoCoreError as exc:
            self.add("region", "fail", *_failure(exc, "bedrock", "GetFoundationModel", self.region, self.s.model_id))
            return
        self.add("region", "pass", f"{self.region} offers {self.s.model_id}")

    def model_access(self) -> None:
        request = SingleEmbeddingRequest(
            single_embedding_params=SingleEmbeddingParams(
                embedding_purpose=EmbeddingPurpose.GENERIC_INDEX,
                embedding_dimension=self.s.dimension,
                text=TextInput(value="doctor"),
            )
        )
        try:
            response = self.call(
                "bedrock-runtime",
                "invoke_model",
                modelId=self.s.model_id,
                body=json.dumps(request.to_body()),
                contentType="application/json",
                accept="application/json",
            )
            vector = json.loads(response["body"].read())["embeddings"][0]["embedding"]
        except (ClientError, BotoCoreError) as exc:
            self.add("model access", "fail", *_failure(exc, "bedrock-runtime", "InvokeModel", self.bedrock_region, ""))
            return
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.add("model access", "fail", f"unexpected InvokeModel response ({exc!r})", "Report this as a bug.")
            return
        self.tried.add("bedrock:InvokeModel")
        wrong = len(vector) != self.s.dimension
        self.add(
            "model access",
            "fail" if wrong else "pass",
            f"one text embedding of {len(vector)} dimensions from {self.s.model_id}",
            f"The model returned {len(vector)} values for dimension {self.s.dimension}." if wrong else None,
        )

    def vector_bucket(self) -> bool:
        bucket = self.s.vector_bucket
        if not bucket:
            self.add("vector bucket", "fail", "NOVA_MCP_VECTOR_BUCKET is not set", "Set it (or --vector-bucket).")
            return False
        try:
            self.call("s3vectors", "get_vector_bucket", vectorBucketName=bucket)
        except ClientError as exc:
            if error_code(exc) in {"NotFoundException", "NoSuchBucket"}:
                self.add(
                    "vector bucket",
                    "pass",
                    f"{bucket} does not exist yet: the server creates it on first use",
                    None,
                )
                return False
            self.add("vector bucket", "fail", *_failure(exc, "s3vectors", "GetVectorBucket", self.region, bucket))
            return False
        self.tried.add("s3vectors:GetVectorBucket")
        self.add("vector bucket", "pass", f"{bucket} exists in {self.region}")
        return True

    def index(self, bucket_exists: bool) -> None:
        name = self.s.default_index
        if not bucket_exists:
            self.add("index", "skipped", f"{name}: no vector bucket yet; created with dimension {self.s.dimension}")
            return
        try:
            raw = self.call("s3vectors", "get_index", vectorBucketName=self.s.vector_bucket, indexName=name)["index"]
        except ClientError as exc:
            if error_code(exc) == "NotFoundException":
                self.add("index", "pass", f"{name} does not exist yet: created with dimension {self.s.dimension}")
                return
            self.add("index", "fail", *_failure(exc, "s3vectors", "GetIndex", self.region, name))
            return
        self.tried.add("s3vectors:GetIndex")
        mode = raw.get("indexMode") or "not reported (CLASSIC for indexes created before 2026-09-30)"
        stamp = self._stamp(raw.get("indexArn"))
        detail = f"{name}: dimension {raw['dimension']}, {raw['distanceMetric']}, index mode {mode}, embedder {stamp}"
        problems = []
        if raw["dimension"] != self.s.dimension:
            problems.append(f"the index has dimension {raw['dimension']}, the server embeds {self.s.dimension}")
        if stamp not in ("not recorded", "unreadable") and f"/{self.s.model_id}/" not in stamp:
            problems.append(f"the index was built by {stamp}, the server uses {self.s.model_id}")
        if problems:
            fix = f"Use --dimension {raw['dimension']} or another --default-index; " + "; ".join(problems) + "."
            self.add("index", "fail", detail, fix)
        else:
            self.add("index", "pass", detail)

    def _stamp(self, arn: str | None) -> str:
        if not arn:
            return "not recorded"
        try:
            tags = self.call("s3vectors", "list_tags_for_resource", resourceArn=arn).get("tags", {})
        except (ClientError, BotoCoreError):
            return "unreadable"
        self.tried.add("s3vectors:ListTagsForResource")
        keys = [f"{TAG_PREFIX}{k}" for k in ("provider", "model", "dimension")]
        return "/".join(tags[k] for k in keys) if all(k in tags for k in keys) else "not recorded"

    def staging_bucket(self) -> None:
        bucket = self.s.staging_bucket
        if not bucket:
            self.add(
                "staging bucket",
                "skipped",
                "none set: audio and video longer than 30 s cannot be embedded on AWS",
                "Set NOVA_MCP_STAGING_BUCKET to an S3 bucket in the same region.",
            )
            return
        try:
            self.call("s3", "list_objects_v2", Bucket=bucket, Prefix=self.s.staging_prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            self.add("staging bucket", "fail", *_failure(exc, "s3", "ListObjectsV2", self.region, f"s3://{bucket}"))
            return
        self.tried.add("s3:ListBucket")
        self.add("staging bucket", "pass", f"s3://{bucket}/{self.s.staging_prefix} is readable")

    def iam(self) -> None:
        groups = self._resources()
        simulated = sum(len(actions) for actions, _ in groups)
        try:
            source = self._policy_source()
            denied: list[str] = []
            for actions, resource in groups:
                page = self.call(
                    "iam", "simulate_principal_policy", PolicySourceArn=source, ActionNames=list(actions),
                    ResourceArns=[resource],
                )  # fmt: skip
                denied += [
                    f"{r['EvalActionName']} on {resource}"
                    for r in page["EvaluationResults"]
                    if r["EvalDecision"] != "allowed"
                ]
        except (ClientError, BotoCoreError, ValueError) as exc:
            untested = [a for a in ALL_ACTIONS if a not in self.tried]
            why = "iam:SimulatePrincipalPolicy is not allowed" if isinstance(exc, ClientError) else str(exc)
            self.add(
                "IAM actions",
                "skipped",
                f"not simulated ({why}); proved by the read-only calls above: "
                f"{', '.join(sorted(self.tried)) or 'none'}; untested: {', '.join(untested)}",
                "Compare the caller's policy with the README's 'AWS permissions' policy.",
            )
            return
        if denied:
            self.add(
                "IAM actions",
                "fail",
                f"denied: {'; '.join(denied)}",
                "Grant them (README 'AWS permissions' has the least-privilege policy).",
            )
        else:
            self.add("IAM actions", "pass", f"all {simulated} actions allowed for {source} (simulated)")

    def _policy_source(self) -> str:
        """The IAM user or role behind the caller ARN (an assumed-role session simulates as its role)."""
        assert self.arn is not None
        parts = self.arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
            role = parts[5].split("/")[1]
            try:
                return str(self.call("iam", "get_role", RoleName=role)["Role"]["Arn"])
            except (ClientError, BotoCoreError):
                return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
        if len(parts) == 6 and parts[2] == "iam":
            return self.arn
        raise ValueError(f"{self.arn} is not an IAM user or role session")

    def _resources(self) -> list[tuple[tuple[str, ...], str]]:
        r, acct, b, idx, stg = (
            self.region,
            self.account,
            self.s.vector_bucket,
            self.s.default_index,
            self.s.staging_bucket,
        )
        br = self.bedrock_region or r
        groups = [
            (BEDROCK_MODEL_ACTIONS, f"arn:aws:bedrock:{br}::foundation-model/{self.s.model_id}"),
            (BEDROCK_JOB_ACTIONS, f"arn:aws:bedrock:{br}:{acct}:async-invoke/*"),
        ]
        if b:
            groups += [
                (VECTOR_BUCKET_ACTIONS, f"arn:aws:s3vectors:{r}:{acct}:bucket/{b}"),
                (VECTOR_INDEX_ACTIONS, f"arn:aws:s3vectors:{r}:{acct}:bucket/{b}/index/{idx}"),
            ]
        if stg:
            groups += [
                (STAGING_BUCKET_ACTIONS, f"arn:aws:s3:::{stg}"),
                (STAGING_OBJECT_ACTIONS, f"arn:aws:s3:::{stg}/*"),
            ]
        return groups


def run_doctor(
    settings: Any,
    *,
    clients: AwsClients | None = None,
    downloader: ModelDownloader | None = None,
) -> DoctorReport:
    """Every check for the configured backend, in order; AWS checks after a failed identity are skipped."""
    backend = settings.resolved_backend
    run = _Run(
        settings,
        clients or AwsClients.from_settings(settings, max_attempts=2, read_timeout=20.0),
        downloader or ModelDownloader.from_settings(settings),
    )
    run.add("backend", "pass", f"{backend}" + (" (a vector bucket is set)" if backend == "aws" else ""))
    if backend == "aws":
        steps: list[Callable[[], Any]] = [run.region_check, run.model_access, lambda: run.index(run.vector_bucket())]
        steps += [run.staging_bucket, run.iam]
        if run.identity():
            for step in steps:
                step()
        else:
            for name in ("region", "model access", "vector bucket", "index", "staging bucket", "IAM actions"):
                run.add(name, "skipped", "needs working credentials (see identity)")
    else:
        for name in ("identity", "region", "model access", "vector bucket", "index", "staging bucket", "IAM actions"):
            run.add(name, "skipped", "local backend: no AWS calls", None)
    run.local_model(backend)
    run.data_folder()
    run.allowed_roots()
    return DoctorReport(backend=backend, ok=all(c.status != "fail" for c in run.checks), checks=run.checks)


async def run_doctor_in_thread(settings: Any, **kwargs: Any) -> DoctorReport:
    """For the MCP tool: the same checks off the event loop (boto3 and the cache probe block)."""
    import anyio

    return await anyio.to_thread.run_sync(lambda: run_doctor(settings, **kwargs))


def render(report: DoctorReport) -> str:
    """The report as text: one line per check, the fix indented under a failure."""
    marks = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP"}
    lines = [f"doctor ({report.backend} backend): {'all good' if report.ok else 'problems found'}"]
    for check in report.checks:
        lines.append(f"[{marks[check.status]}] {check.name}: {check.detail}")
        if check.fix:
            lines.append(f"       fix: {check.fix}")
    return "\n".join(lines)
