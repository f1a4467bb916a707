"""`doctor` against moto (sts, S3, S3 Vectors), botocore's Stubber (bedrock, iam) and the Nova fake (runtime).

Each scenario breaks one thing a first AWS user gets wrong and checks that exactly that check fails, with a fix
that names what to do, and that what depends on it is skipped rather than reported as a second failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from fakes.nova import FakeBedrockRuntime
from moto import mock_aws

from nova_mcp_server import doctor
from nova_mcp_server.aws import AwsClients
from nova_mcp_server.embedders.families import family_named
from nova_mcp_server.model_download import ModelDownloader
from nova_mcp_server.schema import MODEL_ID
from nova_mcp_server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
VECTORS, STAGING, INDEX = "doc-vectors", "doc-staging", "docs"
ACCOUNT = "123456789012"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/indexer"


class World:
    """moto plus stubs for the calls moto does not play; `clients()` builds the AwsClients the doctor uses."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3vectors = boto3.client("s3vectors", region_name="us-east-1")
        self.sts = boto3.client("sts", region_name="us-east-1")
        self.bedrock = boto3.client("bedrock", region_name="us-east-1")
        self.iam = boto3.client("iam", region_name="us-east-1")
        self.runtime = FakeBedrockRuntime()
        self.bedrock_stub, self.iam_stub = Stubber(self.bedrock), Stubber(self.iam)
        self.model_offered: str | None = None  # None: offered; else the error code get_foundation_model raises
        self.simulate: str | dict[str, str] = {}  # error code, or action -> decision (default allowed)

    def make_buckets(self, *, index_dimension: int | None = 1024, model: str = MODEL_ID) -> None:
        self.s3.create_bucket(Bucket=STAGING)
        self.s3vectors.create_vector_bucket(vectorBucketName=VECTORS)
        if index_dimension:
            self.s3vectors.create_index(
                vectorBucketName=VECTORS,
                indexName=INDEX,
                dataType="float32",
                dimension=index_dimension,
                distanceMetric="cosine",
                tags={"nova-mcp:provider": "nova", "nova-mcp:model": model, "nova-mcp:dimension": str(index_dimension)},
            )

    def settings(self, **overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "backend": "aws",
            "vector_bucket": VECTORS,
            "staging_bucket": STAGING,
            "default_index": INDEX,
            "region": "us-east-1",
            "data_dir": self.tmp / "data",
            "allowed_roots": [self.tmp],
        }
        return Settings(**{**base, **overrides})

    def clients(self, region: str = "us-east-1") -> AwsClients:
        if self.model_offered is None:
            self.bedrock_stub.add_response(
                "get_foundation_model",
                {
                    "modelDetails": {
                        "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{MODEL_ID}",
                        "modelId": MODEL_ID,
                    }
                },
                {"modelIdentifier": MODEL_ID},
            )
        else:
            self.bedrock_stub.add_client_error("get_foundation_model", self.model_offered, http_status_code=400)
        if isinstance(self.simulate, str):
            self.iam_stub.add_client_error("simulate_principal_policy", self.simulate, http_status_code=403)
        sts_stub = Stubber(self.sts)  # moto's caller ARN is arn:aws:sts::...:user/moto; IAM users get arn:aws:iam::
        sts_stub.add_response("get_caller_identity", {"Arn": USER_ARN, "Account": ACCOUNT, "UserId": "AIDAEXAMPLE"})
        sts_stub.activate()
        self.bedrock_stub.activate()
        self.iam_stub.activate()
        overrides = {
            "s3": self.s3,
            "s3vectors": self.s3vectors,
            "sts": self.sts,
            "bedrock": self.bedrock,
            "iam": _Simulator(self.iam, self.simulate),
            "bedrock-runtime": self.runtime,
        }
        return AwsClients(region, overrides=overrides)

    def run(self, settings: Settings | None = None, region: str = "us-east-1") -> dict[str, doctor.Check]:
        settings = settings or self.settings()
        report = doctor.run_doctor(settings, clients=self.clients(region), downloader=_no_model(self.tmp))
        return {c.name: c for c in report.checks}


class _Simulator:
    """IAM `simulate_principal_policy` answered from a decision table, or the Stubber's error (iam:... denied).

    The table's answers have the documented EvaluationResults shape; moto does not evaluate policies.
    """

    def __init__(self, client: Any, decisions: str | dict[str, str]) -> None:
        self.client, self.decisions, self.calls = client, decisions, []

    def get_role(self, RoleName: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        return {"Role": {"Arn": f"arn:aws:iam::{ACCOUNT}:role/service/{RoleName}"}}

    def simulate_principal_policy(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if isinstance(self.decisions, str):
            return self.client.simulate_principal_policy(**params)  # the stubbed error
        results = [
            {
                "EvalActionName": a,
                "EvalResourceName": params["ResourceArns"][0],
                "EvalDecision": self.decisions.get(a, "allowed"),
            }
            for a in params["ActionNames"]
        ]
        return {"EvaluationResults": results, "IsTruncated": False}


def _no_model(tmp: Path) -> ModelDownloader:
    def absent(*_: Any) -> Path:
        raise RuntimeError("not in the cache")

    return ModelDownloader(family_named("Qdrant/clip-ViT-B-32"), tmp / "models", download=absent)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with mock_aws():
        yield World(tmp_path)


def test_a_right_set_up_passes_every_check(world: World) -> None:
    world.make_buckets()
    checks = world.run()
    assert {n: c.status for n, c in checks.items()} == {
        "backend": "pass",
        "identity": "pass",
        "region": "pass",
        "model access": "pass",
        "vector bucket": "pass",
        "index": "pass",
        "staging bucket": "pass",
        "IAM actions": "pass",
        "local model": "skipped",
        "data folder": "pass",
        "allowed folders": "pass",
    }
    assert f"account {ACCOUNT}" in checks["identity"].detail
    assert "dimension 1024" in checks["index"].detail and f"nova/{MODEL_ID}/1024" in checks["index"].detail
    assert "one text embedding of 1024 dimensions" in checks["model access"].detail
    assert re.search(rf"all {len(doctor.ALL_ACTIONS)} actions allowed for {USER_ARN}", checks["IAM actions"].detail)
    world.bedrock_stub.assert_no_pending_responses()


def test_no_credentials_fails_identity_and_skips_what_needs_it(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    settings = world.settings()
    report = doctor.run_doctor(settings, clients=AwsClients("us-east-1"), downloader=_no_model(world.tmp))
    checks = {c.name: c for c in report.checks}
    assert checks["identity"].status == "fail" and "No usable AWS credentials" in checks["identity"].detail
    assert "AWS_PROFILE" in (checks["identity"].fix or "")
    for name in ("region", "model access", "vector bucket", "index", "staging bucket", "IAM actions"):
        assert checks[name].status == "skipped", name
    assert not report.ok


def test_model_access_denied_names_the_console_and_the_action(world: World) -> None:
    world.make_buckets()
    world.runtime.access_denied = True
    check = world.run()["model access"]
    assert check.status == "fail"
    assert "Model access" in (check.fix or "") and "bedrock:InvokeModel" in (check.fix or "")


def test_a_region_without_the_model(world: World) -> None:
    world.make_buckets()
    world.model_offered = "ValidationException"
    check = world.run()["region"]
    assert check.status == "fail" and "not offered in us-east-1" in check.detail and "us-east-1" in (check.fix or "")


def test_region_falls_back_to_the_documented_list_when_get_foundation_model_is_denied(world: World) -> None:
    world.make_buckets()
    world.model_offered = "AccessDeniedException"
    check = world.run(world.settings(region="eu-west-1"), region="eu-west-1")["region"]
    assert check.status == "fail" and "not in the documented Nova MME regions" in check.detail


def test_an_index_of_another_dimension_or_embedder_fails_with_the_fix(world: World) -> None:
    world.make_buckets(index_dimension=384)
    check = world.run()["index"]
    assert check.status == "fail" and "--dimension 384" in (check.fix or "")


def test_an_index_stamped_by_another_model(world: World) -> None:
    world.make_buckets(model="some.other-model")
    check = world.run()["index"]
    assert check.status == "fail" and "some.other-model" in (check.fix or "")


def test_missing_bucket_is_what_the_server_creates_and_the_index_waits_for_it(world: World) -> None:
    world.s3.create_bucket(Bucket=STAGING)
    checks = world.run()
    assert checks["vector bucket"].status == "pass" and "creates it on first use" in checks["vector bucket"].detail
    assert checks["index"].status == "skipped"


def test_a_staging_bucket_that_does_not_exist_fails(world: World) -> None:
    world.make_buckets()
    check = world.run(world.settings(staging_bucket="no-such-staging"))["staging bucket"]
    assert check.status == "fail" and "no-such-staging" in check.detail


def test_iam_simulation_names_the_denied_actions(world: World) -> None:
    world.make_buckets()
    world.simulate = {"s3vectors:PutVectors": "implicitDeny", "s3:PutObject": "explicitDeny"}
    check = world.run()["IAM actions"]
    assert check.status == "fail"
    assert "s3vectors:PutVectors on arn:aws:s3vectors:us-east-1:" in check.detail and "s3:PutObject" in check.detail


def test_iam_without_simulation_lists_what_was_proved_and_what_was_not(world: World) -> None:
    world.make_buckets()
    world.simulate = "AccessDenied"
    check = world.run()["IAM actions"]
    assert check.status == "skipped" and "iam:SimulatePrincipalPolicy is not allowed" in check.detail
    proved, untested = check.detail.split("untested: ")
    assert "bedrock:InvokeModel" in proved and "s3vectors:GetIndex" in proved and "s3:ListBucket" in proved
    assert "s3vectors:PutVectors" in untested and "bedrock:InvokeModel" not in untested


def test_an_assumed_role_is_simulated_as_its_role(world: World) -> None:
    world.make_buckets()
    clients = world.clients()
    sts = boto3.client("sts", region_name="us-east-1")
    with Stubber(sts) as stub:
        arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/indexer/session-1"
        stub.add_response("get_caller_identity", {"Arn": arn, "Account": ACCOUNT, "UserId": "AROAEXAMPLE:session-1"})
        clients._clients["sts"] = sts
        report = doctor.run_doctor(world.settings(), clients=clients, downloader=_no_model(world.tmp))
    simulator = clients._clients["iam"]
    assert {c["PolicySourceArn"] for c in simulator.calls} == {f"arn:aws:iam::{ACCOUNT}:role/service/indexer"}
    assert {c.name: c.status for c in report.checks}["IAM actions"] == "pass"


def test_the_readme_policy_grants_exactly_the_actions_doctor_checks() -> None:
    readme = (ROOT / "README.md").read_text()
    policy = json.loads(readme.split("## AWS permissions", 1)[1].split("```json", 1)[1].split("```", 1)[0])
    granted = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert granted == set(doctor.ALL_ACTIONS)


def test_local_backend_checks_the_model_and_the_folders(tmp_path: Path, tiny_model: Path) -> None:
    settings = Settings(backend="local", data_dir=tmp_path / "d", local_model_path=tiny_model, allowed_roots=[tmp_path])
    report = doctor.run_doctor(settings)
    checks = {c.name: c for c in report.checks}
    assert report.ok and checks["local model"].status == "pass" and str(tiny_model) in checks["local model"].detail
    assert checks["identity"].status == "skipped" and "local backend" in checks["identity"].detail
    text = doctor.render(report)
    assert text.startswith("doctor (local backend): all good") and "[PASS] local model:" in text


def test_local_model_not_downloaded_points_at_download_model(tmp_path: Path) -> None:
    settings = Settings(
        backend="local", data_dir=tmp_path / "d", local_model="Qdrant/clip-ViT-B-32", allowed_roots=[tmp_path]
    )
    check = {c.name: c for c in doctor.run_doctor(settings, downloader=_no_model(tmp_path)).checks}["local model"]
    assert check.status == "fail" and "download-model" in (check.fix or "")


def test_a_data_folder_that_is_a_file_fails(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "d").write_text("not a folder")
    settings = Settings(backend="local", data_dir=tmp_path / "d", local_model_path=tiny_model, allowed_roots=[tmp_path])
    report = doctor.run_doctor(settings)
    check = {c.name: c for c in report.checks}["data folder"]
    assert not report.ok and check.status == "fail" and "is a file" in check.detail
    assert "NOVA_MCP_DATA_DIR" in (check.fix or "")
    fresh = Settings(
        backend="local", data_dir=tmp_path / "new" / "d", local_model_path=tiny_model, allowed_roots=[tmp_path]
    )
    assert {c.name: c for c in doctor.run_doctor(fresh).checks}["data folder"].status == "pass"  # created on use


@pytest.mark.parametrize("root", ["/", "~", "missing"])
def test_allowed_folders_refuse_the_disk_the_home_folder_and_missing_ones(tmp_path: Path, root: str) -> None:
    path = tmp_path / root if root == "missing" else Path(root).expanduser()
    settings = Settings(backend="local", data_dir=tmp_path / "d", allowed_roots=[path])
    check = {c.name: c for c in doctor.run_doctor(settings, downloader=_no_model(tmp_path)).checks}["allowed folders"]
    assert check.status == "fail" and "NOVA_MCP_ALLOWED_ROOTS" in (check.fix or "")


@pytest.mark.anyio
async def test_the_tool_form_runs_the_same_checks_off_the_event_loop(tmp_path: Path, tiny_model: Path) -> None:
    settings = Settings(backend="local", data_dir=tmp_path / "d", local_model_path=tiny_model, allowed_roots=[tmp_path])
    report = await doctor.run_doctor_in_thread(settings)
    assert report == doctor.run_doctor(settings)


def test_a_separate_bedrock_region_is_checked_against_the_documented_list(world: World) -> None:
    world.make_buckets()
    clients = world.clients()
    clients._bedrock_region = "eu-central-1"  # as AwsClients.from_settings sets it from NOVA_MCP_BEDROCK_REGION
    report = doctor.run_doctor(world.settings(), clients=clients, downloader=_no_model(world.tmp))
    check = {c.name: c for c in report.checks}["region"]
    assert check.status == "fail" and "Bedrock in eu-central-1" in check.detail
    assert "NOVA_MCP_BEDROCK_REGION" in (check.fix or "")


@pytest.mark.anyio
async def test_the_doctor_tool_on_the_aws_backend_through_the_mcp_client(world: World) -> None:
    """The read-only tool runs the same checks over the app's own AWS clients (here moto, Stubber, the fake)."""
    from mcp import Client

    from nova_mcp_server.app import build_app
    from nova_mcp_server.server import build_server

    world.make_buckets()
    app = build_app(world.settings(), clients=world.clients())
    async with Client(build_server(app, poll_seconds=0)) as client:
        result = await client.call_tool("doctor", {})
    assert not result.is_error, result.content[0].text
    report = result.structured_content
    checks = {c["name"]: c for c in report["checks"]}
    assert report["backend"] == "aws"
    assert checks["identity"]["status"] == "pass" and USER_ARN in checks["identity"]["detail"]
    assert checks["model access"]["status"] == "pass" and checks["vector bucket"]["status"] == "pass"
    assert world.runtime.count("invoke_model") == 1, "one minimal embedding, no more"
