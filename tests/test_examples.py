"""The client configs in `examples/` start a working server exactly as written, and `examples/client.py` runs.

Each config is parsed and its `command` + `args` + `env` are used as a client would use them, with one
checked substitution and a test-only environment overlay:

- **launcher**: the configs say `"command": "uvx", "args": ["nova-multimodal-mcp@latest", ...]` (or, on Windows,
  `uv tool run --from nova-multimodal-mcp@latest nova-multimodal-mcp.exe`). The package they name must be the
  distribution `[project].name` in `pyproject.toml`, and the command uv runs (for `uvx PKG`, the script named
  PKG) must be one of that distribution's `[project.scripts]`: a config naming any other package (for example
  `nova-mcp-server`, an unrelated project on PyPI) fails here. Tests have no network and must exercise *this*
  checkout, so that script is then run from the venv's installed copy of this distribution; every further
  argument is kept.
- **overlay** on top of the config's `env`: `NOVA_MCP_DATA_DIR` (a temp dir), `NOVA_MCP_LOCAL_MODEL_PATH` (the
  tiny CLIP test model; no download), `HF_HUB_OFFLINE=1`, and for the AWS configs `NOVA_MCP_BACKEND=local`,
  because tests have no AWS credentials (their AWS_PROFILE / buckets are kept but unused).
- for `streamable_http.json` the URL's port 8000 becomes a free port, and `${NOVA_MCP_AUTH_TOKEN}` in its headers
  is expanded from the environment, as Kiro does; the server is started as the README says:
  `NOVA_MCP_AUTH_TOKEN=... nova-multimodal-mcp --transport streamable-http --port 8000`.

Like real stdio clients, the SDK passes only the config's env plus a few safe variables (HOME, PATH, ...) to the
server, so nothing leaks in from the test process.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DIST = PROJECT["name"]
BIN = Path(sys.executable).parent
SCRIPT = str(BIN / DIST)
STDIO_CONFIGS = [
    "claude_desktop_config.json",
    "claude_desktop_local.json",
    "claude_desktop_windows.json",
    "kiro_mcp.json",
    "kiro-power/mcp.json",
    "amazonq_mcp.json",
]
AWS_CONFIGS = {"claude_desktop_config.json", "kiro_mcp.json", "amazonq_mcp.json"}
SERVER_NAME = DIST


def load_entry(name: str) -> dict[str, Any]:
    config = json.loads((EXAMPLES / name).read_text())
    assert list(config) == ["mcpServers"], f"{name}: top level must be just mcpServers"
    assert list(config["mcpServers"]) == [SERVER_NAME], name
    return config["mcpServers"][SERVER_NAME]


def launcher(entry: dict[str, Any]) -> tuple[str, list[str]]:
    """The installed script that the config's uv command would run, and the arguments after it.

    `uvx PKG@VERSION ARGS...` runs the script named PKG from distribution PKG; `uv tool run --from PKG@VERSION
    SCRIPT[.exe] ARGS...` runs SCRIPT from PKG. PKG must be this project's distribution and SCRIPT one of its
    console scripts; anything else fails the test.
    """
    argv = [entry["command"], *entry.get("args", [])]
    program = PureWindowsPath(argv[0]).name.removesuffix(".exe")  # a bare name or an absolute path (Windows)
    argv[0] = program
    if program == "uvx":
        spec, script, rest = argv[1], argv[1].partition("@")[0], argv[2:]
    elif argv[:4] == ["uv", "tool", "run", "--from"]:
        spec, script, rest = argv[4], argv[5].removesuffix(".exe"), argv[6:]
    else:
        raise AssertionError(f"configs launch the published package with uvx or uv tool run, got {argv}")
    package, _, version = spec.partition("@")
    assert package == DIST, f"the config runs the PyPI project {package!r}, but this project is {DIST!r}"
    assert version == "latest", f"pin nothing or @latest, got {spec!r}"
    assert script in PROJECT["scripts"], f"{script!r} is not a console script of {DIST}"
    installed = {ep.name for ep in metadata.distribution(DIST).entry_points if ep.group == "console_scripts"}
    assert script in installed, f"the venv's {DIST} has no {script!r}: pip install -e . again"
    return str(BIN / script), rest


def overlay(name: str, tmp_path: Path, tiny_model: Path) -> dict[str, str]:
    env = {
        "NOVA_MCP_DATA_DIR": str(tmp_path / "data"),
        "NOVA_MCP_LOCAL_MODEL_PATH": str(tiny_model),
        "HF_HUB_OFFLINE": "1",
    }
    if name in AWS_CONFIGS:
        env["NOVA_MCP_BACKEND"] = "local"  # no AWS credentials in tests
    return env


def expand(value: str, env: dict[str, str]) -> str:
    """`${VAR}` from the client's environment, as Kiro expands it; an unknown variable is an error."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], value)


async def index_and_search(client: Client) -> dict[str, Any]:
    """List tools, index two texts inline (no file roots needed), then semantic_search; return the tools by name."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"semantic_search", "index_content", "list_indexes", "job_status", "embed_content"} <= set(tools)
    texts = ["green grass in the park", "a red car on the road"]
    indexed = await client.call_tool("index_content", {"texts": texts, "index": "configs"})
    assert not indexed.is_error, indexed.content[0].text
    assert indexed.structured_content["indexed_sources"] == 2
    found = await client.call_tool("semantic_search", {"query": "red car", "index": "configs", "top_k": 2})
    assert not found.is_error, found.content[0].text
    hits = found.structured_content["hits"]
    assert [h["snippet"] for h in hits] == ["a red car on the road", "green grass in the park"]
    assert hits[0]["score"] > hits[1]["score"]
    return tools


@pytest.mark.parametrize("name", STDIO_CONFIGS)
async def test_stdio_config_starts_the_server(name: str, tmp_path: Path, tiny_model: Path) -> None:
    entry = load_entry(name)
    command, args = launcher(entry)
    env = {**entry.get("env", {}), **overlay(name, tmp_path, tiny_model)}
    assert all(isinstance(v, str) for v in env.values()), "client configs take string env values only"
    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(tmp_path))
    async with Client(params, mode="legacy") as client:  # Claude Desktop, Kiro and Q do the initialize handshake
        tools = await index_and_search(client)
        capabilities = json.loads((await client.read_resource("nova://capabilities")).contents[0].text)
    assert capabilities["backend"] == "local"
    # Kiro's autoApprove may only name tools that exist and never write or delete.
    for tool in entry.get("autoApprove", []):
        assert tool in tools and tools[tool].annotations.read_only_hint, f"{name}: auto-approves {tool}"
    if name.startswith("kiro"):
        assert entry["disabled"] is False and entry["autoApprove"]
    if name == "amazonq_mcp.json":
        assert isinstance(entry["timeout"], int) and entry["timeout"] >= 60_000  # milliseconds
    if name in AWS_CONFIGS:
        assert {"AWS_PROFILE", "AWS_REGION", "NOVA_MCP_VECTOR_BUCKET"} <= set(entry["env"])


def test_aws_configs_select_the_aws_backend_without_the_test_overlay() -> None:
    """Without our NOVA_MCP_BACKEND=local overlay, the AWS configs really configure the AWS backend."""
    from nova_mcp_server.settings import Settings

    for name in sorted(AWS_CONFIGS):
        env = load_entry(name)["env"]
        values = {k.removeprefix("NOVA_MCP_").lower(): v for k, v in env.items() if k.startswith("NOVA_MCP_")}
        settings = Settings(**{"backend": None, **values})  # None: ignore any NOVA_MCP_BACKEND of this shell
        assert settings.resolved_backend == "aws", name
        assert settings.vector_bucket and settings.staging_bucket, name
    local = load_entry("claude_desktop_local.json")["env"]
    assert local["NOVA_MCP_BACKEND"] == "local" and not any(k.startswith("AWS_") for k in local)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def http_config(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`streamable_http.json`'s server, started with a bearer token; yields (url, headers) as the client sends them."""
    tmp = tmp_path_factory.mktemp("http-config")
    entry = load_entry("streamable_http.json")
    port = free_port()
    parts = urlsplit(entry["url"])
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", 8000, "/mcp")
    url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
    client_env = {"NOVA_MCP_AUTH_TOKEN": secrets.token_urlsafe(24)}
    headers = {k: expand(v, client_env) for k, v in entry["headers"].items()}
    assert headers["Authorization"] == f"Bearer {client_env['NOVA_MCP_AUTH_TOKEN']}"

    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_MCP_")}
    env.update(overlay("streamable_http.json", tmp, tiny_model), **client_env)
    proc = subprocess.Popen(
        [SCRIPT, "--transport", "streamable-http", "--port", str(port)],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
                assert time.monotonic() < deadline, "HTTP server did not start"
                time.sleep(0.1)
        yield url, headers
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_streamable_http_config_with_bearer_token(http_config: tuple[str, dict[str, str]]) -> None:
    url, headers = http_config
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        tools = await index_and_search(client)
    for tool in load_entry("streamable_http.json").get("autoApprove", []):
        assert tools[tool].annotations.read_only_hint, tool


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic abc"])
async def test_streamable_http_refuses_a_request_without_the_token(
    http_config: tuple[str, dict[str, str]], authorization: str | None
) -> None:
    url, _ = http_config
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization:
        headers["Authorization"] = authorization
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(url, json=initialize, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "mcp-session-id" not in response.headers


def test_scripted_client_indexes_and_searches(tmp_path: Path, tiny_model: Path) -> None:
    """`examples/client.py` builds its demo folder, indexes it over stdio and prints text and image search hits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_MCP_")}
    env.update(NOVA_MCP_DATA_DIR=str(tmp_path / "data"), NOVA_MCP_LOCAL_MODEL_PATH=str(tiny_model), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "client.py"), "--query", "something red"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"indexed 6 source\(s\) \(6 segments\), 0 unchanged, 0 failed", out), out
    text_hits = _hits(out, "text query 'something red'")
    assert {text_hits[0][2], text_hits[1][2]} == {"red.png", "red-fox.txt"}, out
    image_hits = _hits(out, "image query blue.png")
    assert image_hits[0][:3] == ("image", 1.0, "blue.png"), out
    assert image_hits[1][2] == "blue-sea.md", out
    assert "chars 0-" in out  # text hits cite their character range
    assert "deleted demo index" in out
    # the demo cleaned up after itself: no index left behind in the data dir
    listing = subprocess.run([SCRIPT, "indexes", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(listing.stdout) == []


def _hits(out: str, header: str) -> list[tuple[str, float, str]]:
    """(modality, score, file name) of the hits printed under `header`."""
    block = out.split(header, 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\s+\d+\.\s+(-?[\d.]+)\s+(\w+)\s+(\S+)", block, flags=re.M)
    assert rows, out
    return [(modality, round(float(score), 2), Path(source).name) for score, modality, source in rows]
