"""Start-up: the MCP surface is ready before the App is built, and a refused configuration is told, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support import REPO, make_settings

from nova_mcp_server.server import build_server
from nova_mcp_server.server.handle import AppHandle

pytestmark = pytest.mark.anyio

HEAVY = ("numpy", "nova_mcp_server.app", "nova_mcp_server.services.search", "nova_mcp_server.stores.local")


def test_the_server_is_registered_without_importing_the_services(tmp_path: Path, tiny_model: Path) -> None:
    """What `serve` does before the client's `initialize`: settings, the server and every tool, nothing more."""
    script = f"""
import json, sys
from nova_mcp_server.cli import build_parser, settings_from
from nova_mcp_server.server import build_server
from nova_mcp_server.server.handle import AppHandle
settings = settings_from(build_parser().parse_args(["serve"]))
server = build_server(AppHandle(settings))
print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))
"""
    env = {
        "PYTHONPATH": str(REPO),
        "NOVA_MCP_DATA_DIR": str(tmp_path / "data"),
        "NOVA_MCP_LOCAL_MODEL_PATH": str(tiny_model),
        "NOVA_MCP_ALLOWED_ROOTS": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


async def test_tools_are_listed_and_work_once_the_app_is_built(tmp_path: Path, tiny_model: Path) -> None:
    built: list[int] = []

    def build(settings: Any) -> Any:
        from nova_mcp_server.app import build_app

        built.append(1)
        return build_app(settings)

    handle = AppHandle(make_settings(tmp_path, local_model_path=tiny_model), build=build)
    async with Client(build_server(handle, poll_seconds=0)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"semantic_search", "index_content", "fetch", "doctor"} <= names
        done = await client.call_tool("index_content", {"texts": ["a red car"], "index": "cars"})
        assert not done.is_error
        hits = await client.call_tool("semantic_search", {"query": "red car", "index": "cars"})
        assert hits.structured_content["hits"][0]["snippet"] == "a red car"
    assert built == [1]  # once, however many calls and the background start asked for it


async def test_a_refused_configuration_is_every_tools_answer_and_the_doctor_still_runs(tmp_path: Path) -> None:
    """The aws backend without a vector bucket: the server runs and says what to set, instead of exiting."""
    handle = AppHandle(make_settings(tmp_path, backend="aws", region="us-east-1"))
    async with Client(build_server(handle, poll_seconds=0)) as client:
        for tool, args in (("semantic_search", {"query": "x"}), ("list_indexes", {})):
            answer = await client.call_tool(tool, args)
            assert answer.is_error
            assert "needs a vector bucket" in answer.content[0].text
            assert "NOVA_MCP_VECTOR_BUCKET" in answer.content[0].text
        doctor = await client.call_tool("doctor", {})
        assert not doctor.is_error
        report = doctor.structured_content
        assert report["backend"] == "aws" and report["ok"] is False  # no credentials here: the checks say so
        assert "vector bucket" in {c["name"] for c in report["checks"]}


async def test_a_build_that_fails_unexpectedly_is_every_tools_answer_not_a_crash(tmp_path: Path) -> None:
    """A data dir that is a file (or unreadable) breaks the build with an OSError, not a NovaError: the
    server keeps running and every tool says what failed and where to look, instead of the process dying."""
    data = tmp_path / "data-is-a-file"
    data.write_text("not a folder")
    handle = AppHandle(make_settings(tmp_path, data_dir=data))
    async with Client(build_server(handle, poll_seconds=0)) as client:
        for tool, args in (("list_indexes", {}), ("semantic_search", {"query": "x"}), ("list_indexes", {})):
            with anyio.fail_after(30):  # a hang guard, not a speed bound
                answer = await client.call_tool(tool, args)
            text = answer.content[0].text
            assert answer.is_error, text
            assert "could not start" in text and str(data) in text and "NOVA_MCP_DATA_DIR" in text, text
            assert "NotADirectoryError" not in text and "Errno" not in text
        doctor = await client.call_tool("doctor", {})
        assert not doctor.is_error


async def test_the_job_poller_outlives_a_failed_tick(tmp_path: Path, tiny_model: Path) -> None:
    """A tick whose poll fails (Bedrock throttling, say: a NovaError) is logged; the next tick polls again."""
    import anyio

    from nova_mcp_server.app import build_app
    from nova_mcp_server.errors import BackendUnavailable

    app = build_app(make_settings(tmp_path, local_model_path=tiny_model))
    ticks: list[int] = []
    twice = anyio.Event()

    async def poll() -> None:
        ticks.append(1)
        if len(ticks) >= 2:
            twice.set()
        raise BackendUnavailable("throttled")

    app.jobs.poll = poll  # type: ignore[method-assign]
    async with Client(build_server(app, poll_seconds=0.01)):
        with anyio.fail_after(30):  # a hang guard, not a speed bound
            await twice.wait()
    assert len(ticks) >= 2
