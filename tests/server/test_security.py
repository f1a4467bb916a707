"""Nobody reads what they should not: allowed roots, the bucket allow-list, read-only mode, HTTP binding,
Host/Origin checks, the bearer token, and no secrets or signed URLs in tool output or logs.

HTTP checks run against the real ASGI app from `build_http_app` through an in-process httpx2 transport, and
against the console script as a subprocess for a full authenticated session with DEBUG logs captured.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import make_image
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import ListRootsResult
from support import SCRIPT, free_port, local_core, make_settings, nova_core, server_env

from nova_mcp_server.server import build_server
from nova_mcp_server.server.http import MIN_TOKEN_CHARS, HttpSettingsError, build_http_app, check_http_settings
from nova_mcp_server.settings import Settings

pytestmark = pytest.mark.anyio
WRITERS = {"index_content", "create_index", "delete_index", "delete_content"}
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "tok-9f8e7d6c5b4a-very-secret-3c2b1a0f9e8d"  # >= 32 characters, as required


# ---- files and buckets --------------------------------------------------------------------------------------


async def test_files_are_read_only_under_the_allowed_roots(tmp_path: Path, tiny_model: Path) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub" / "ok.txt").write_text("green meadow")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the vault code is 4711")
    make_image(outside / "secret.png", "png", (1, 2, 3), (8, 8))
    os.symlink(outside / "secret.txt", allowed / "sub" / "leak.txt")
    os.symlink(outside, allowed / "tunnel")
    core = local_core(tmp_path, tiny_model, allowed_roots=[allowed])
    async with Client(build_server(core, poll_seconds=0)) as client:
        report = (
            await client.call_tool("index_content", {"sources": [str(allowed)], "index": "docs"})
        ).structured_content
        assert report["indexed_sources"] == 1  # ok.txt only: the symlinked file and folder are refused
        assert sorted(f["source"].rsplit("/", 1)[1] for f in report["failed"]) == ["leak.txt", "tunnel"]
        assert all("outside the allowed roots" in f["reason"] for f in report["failed"])
        for args in (
            {"contents": [{"path": str(outside / "secret.txt")}]},
            {"contents": [{"path": str(allowed / "sub" / ".." / ".." / "outside" / "secret.txt")}]},
            {"contents": [{"path": "file://" + str(allowed / "tunnel" / "secret.txt")}]},
        ):
            result = await client.call_tool("embed_content", args)
            assert result.is_error and "outside the allowed roots" in result.content[0].text
        image = await client.call_tool(
            "semantic_search", {"image": {"path": str(outside / "secret.png")}, "index": "docs"}
        )
        assert image.is_error and "outside the allowed roots" in image.content[0].text
        hits = (
            await client.call_tool("semantic_search", {"query": "vault code", "index": "docs", "top_k": 10})
        ).structured_content["hits"]
        assert all("4711" not in (h["snippet"] or "") for h in hits)


async def test_s3_buckets_are_limited_to_the_allow_list(tmp_path: Path, moto_s3: Any) -> None:
    for bucket in ("team-docs", "payroll"):
        if bucket != "nova-test-output":
            moto_s3.create_bucket(Bucket=bucket)
        moto_s3.put_object(Bucket=bucket, Key="a.txt", Body=f"{bucket} text".encode())
    reads: list[str] = []

    def spying(real: Any) -> Any:
        def spy(**kwargs: Any) -> Any:
            reads.append(kwargs["Bucket"])
            return real(**kwargs)

        return spy

    moto_s3.get_object = spying(moto_s3.get_object)
    moto_s3.head_object = spying(moto_s3.head_object)  # objects are resolved by HEAD (and read by reference)
    core = nova_core(tmp_path, FakeBedrockRuntime(), s3=moto_s3, allowed_buckets=["team-docs"])
    async with Client(build_server(core, poll_seconds=0)) as client:
        ok = await client.call_tool("index_content", {"sources": ["s3://team-docs/a.txt"], "index": "docs"})
        assert not ok.is_error and ok.structured_content["indexed_sources"] == 1
        for args in ({"sources": ["s3://payroll/a.txt"]}, {"sources": ["s3://payroll/"]}):
            denied = await client.call_tool("index_content", {**args, "index": "docs"})
            text = denied.content[0].text
            assert denied.is_error and "not in the allowed buckets" in text and "team-docs" in text
        embed = await client.call_tool("embed_content", {"contents": [{"s3_uri": "s3://payroll/a.txt"}]})
        assert embed.is_error and "not in the allowed buckets" in embed.content[0].text
    assert reads and set(reads) == {"team-docs"}  # the refused bucket was never read, not even listed


async def test_read_only_mode_removes_every_writing_tool(tmp_path: Path, tiny_model: Path) -> None:
    """Through the console script with --read-only: writers are neither listed nor callable."""
    params = StdioServerParameters(command=SCRIPT, args=["--read-only"], env=server_env(tmp_path, tiny_model))
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names and not names & WRITERS
        for tool in WRITERS:
            result = await client.call_tool(tool, {"name": "docs", "texts": ["x"], "source": "x"})
            assert result.is_error and "runs read-only" in result.content[0].text  # not callable, and why
        assert not (await client.call_tool("list_indexes", {})).is_error
    assert not (await read_only_env_listing(tmp_path, tiny_model)) & WRITERS


async def read_only_env_listing(tmp_path: Path, tiny_model: Path) -> set[str]:
    """NOVA_MCP_READ_ONLY=1 does the same as the flag."""
    env = {**server_env(tmp_path, tiny_model), "NOVA_MCP_READ_ONLY": "1"}
    async with Client(StdioServerParameters(command=SCRIPT, args=[], env=env)) as client:
        return {t.name for t in (await client.list_tools()).tools}


# ---- HTTP ---------------------------------------------------------------------------------------------------

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx2.AsyncClient]:
    """An httpx2 client on the ASGI app, with the Starlette lifespan running (the session manager needs it)."""
    inner = app
    while not hasattr(inner, "router"):
        inner = inner.app  # through BearerAuth
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        inner.router.lifespan_context(inner),
        httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        yield http


def test_http_binds_to_loopback_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.host == "127.0.0.1" and settings.auth_token is None


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
@pytest.mark.parametrize("token", [None, TOKEN])
async def test_foreign_host_and_origin_are_refused(
    tmp_path: Path, tiny_model: Path, transport: str, token: str | None
) -> None:
    settings = make_settings(tmp_path, local_model_path=tiny_model, transport=transport, auth_token=token)
    app = build_http_app(build_server(local_core(tmp_path, tiny_model), poll_seconds=0), settings)
    path = "/mcp" if transport == "streamable-http" else "/messages/?session_id=0123456789abcdef0123456789abcdef"
    auth = {"authorization": f"Bearer {token}"} if token else {}
    async with serving(app) as http:
        host = await http.post(path, json=INIT, headers={**ACCEPT, **auth, "host": "evil.example:8000"})
        assert host.status_code == 421
        origin = await http.post(path, json=INIT, headers={**ACCEPT, **auth, "origin": "http://evil.example"})
        assert origin.status_code == 403
        rebinding = await http.post(path, json=INIT, headers={**ACCEPT, **auth, "host": "attacker.test"})
        assert rebinding.status_code == 421
        if transport == "sse":
            stream = await http.get("/sse", headers={**auth, "host": "evil.example"})
            assert stream.status_code == 421


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_bearer_token_is_required_when_configured(tmp_path: Path, tiny_model: Path, transport: str) -> None:
    settings = make_settings(tmp_path, local_model_path=tiny_model, transport=transport, auth_token=TOKEN)
    app = build_http_app(build_server(local_core(tmp_path, tiny_model), poll_seconds=0), settings)
    path = "/mcp" if transport == "streamable-http" else "/sse"
    async with serving(app) as http:
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": TOKEN},  # no scheme
            {"authorization": f"Basic {TOKEN}"},
            {"authorization": f"Bearer {TOKEN}x"},
            {"authorization": f"bearer {TOKEN[:-1]}"},
        ):
            response = await http.post(path, json=INIT, headers={**ACCEPT, **headers})
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in response.text


@pytest.mark.parametrize("token", ["", "   ", "short", "x" * (MIN_TOKEN_CHARS - 1)])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_empty_or_short_tokens_are_refused(tmp_path: Path, token: str, host: str) -> None:
    settings = make_settings(tmp_path, transport="streamable-http", host=host, auth_token=token, allowed_hosts=["h:*"])
    with pytest.raises(HttpSettingsError, match=f"at least {MIN_TOKEN_CHARS} characters"):
        check_http_settings(settings)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "mcp.example.com"])
def test_a_non_loopback_bind_needs_a_token_and_allowed_hosts(tmp_path: Path, host: str) -> None:
    bare = make_settings(tmp_path, transport="streamable-http", host=host)
    with pytest.raises(HttpSettingsError, match="needs a bearer token"):
        check_http_settings(bare)
    no_hosts = make_settings(tmp_path, transport="streamable-http", host=host, auth_token=TOKEN)
    with pytest.raises(HttpSettingsError, match="NOVA_MCP_ALLOWED_HOSTS"):
        check_http_settings(no_hosts)
    check_http_settings(make_settings(tmp_path, host=host, auth_token=TOKEN, allowed_hosts=["mcp.example.com:*"]))
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_http_settings(make_settings(tmp_path, transport="streamable-http", host=loopback))


def test_the_console_script_refuses_an_exposed_bind_before_serving(tmp_path: Path, tiny_model: Path) -> None:
    env = server_env(tmp_path, tiny_model)
    for extra, expected in (
        ({}, "needs a bearer token"),
        ({"NOVA_MCP_AUTH_TOKEN": ""}, "NOVA_MCP_AUTH_TOKEN is empty"),
        ({"NOVA_MCP_AUTH_TOKEN": TOKEN}, "NOVA_MCP_ALLOWED_HOSTS"),
    ):
        done = subprocess.run(
            [SCRIPT, "--transport", "streamable-http", "--host", "0.0.0.0", "--port", str(free_port())],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert TOKEN not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_non_loopback_bind_checks_host_and_origin_against_the_named_lists(
    tmp_path: Path, tiny_model: Path, transport: str
) -> None:
    settings = make_settings(
        tmp_path,
        local_model_path=tiny_model,
        transport=transport,
        host="0.0.0.0",
        auth_token=TOKEN,
        allowed_hosts=["mcp.example.com:*"],
        allowed_origins=["https://app.example.com"],
    )
    app = build_http_app(build_server(local_core(tmp_path, tiny_model), poll_seconds=0), settings)
    path = "/mcp" if transport == "streamable-http" else "/messages/?session_id=0123456789abcdef0123456789abcdef"
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with serving(app) as http:
        foreign = await http.post(path, json=INIT, headers={**ACCEPT, **auth, "host": "evil.example:8000"})
        assert foreign.status_code == 421
        bad_origin = await http.post(
            path, json=INIT, headers={**ACCEPT, **auth, "host": "mcp.example.com:8000", "origin": "http://evil.example"}
        )
        assert bad_origin.status_code == 403
        named = await http.post(
            path,
            json=INIT,
            headers={**ACCEPT, **auth, "host": "mcp.example.com:8000", "origin": "https://app.example.com"},
        )
        assert named.status_code not in (401, 403, 421)  # past the checks (SSE: the unknown session is 404)


def wait_for_port(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert proc.poll() is None, "server exited"
            time.sleep(0.1)
    raise AssertionError("HTTP server did not start")


@pytest.fixture
def token_server(tmp_path: Path, tiny_model: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The console script over streamable HTTP with a bearer token, logging at DEBUG to a captured stderr."""
    port = free_port()
    env = {
        **server_env(tmp_path, tiny_model),
        "NOVA_MCP_AUTH_TOKEN": TOKEN,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [SCRIPT, "--transport", "streamable-http", "--port", str(port), "--log-level", "DEBUG"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(proc, port)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def test_right_token_works_and_no_secret_reaches_the_logs(tmp_path: Path, token_server: Any) -> None:
    url, _ = token_server
    async with httpx2.AsyncClient(headers={"authorization": "Bearer nope"}) as bad:
        assert (await bad.post(url, json=INIT, headers=ACCEPT)).status_code == 401
    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert "semantic_search" in names
        done = await client.call_tool("index_content", {"texts": ["private memo"], "index": "docs"})
        assert not done.is_error
        missing = await client.call_tool("embed_content", {"contents": [{"path": "/etc/shadow"}]})
        assert missing.is_error
        for result in (done, missing):
            text = " ".join(getattr(b, "text", "") for b in result.content)
            assert TOKEN not in text and SECRET_KEY not in text and ACCESS_KEY not in text
    logs = (tmp_path / "server.log").read_text()
    assert "DEBUG" in logs  # the capture really was at DEBUG
    for secret in (TOKEN, SECRET_KEY, ACCESS_KEY, "Bearer nope"):
        assert secret not in logs


async def test_aws_errors_never_echo_keys_or_signed_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    signed = (
        "https://nova-out.s3.us-east-1.amazonaws.com/job/out.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={ACCESS_KEY}%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=deadbeef"
    )
    fake = FakeBedrockRuntime()
    core = nova_core(tmp_path, fake)
    with caplog.at_level(logging.DEBUG):
        async with Client(build_server(core, poll_seconds=0)) as client:
            for code in (
                "AccessDeniedException",
                "ValidationException",
                "ThrottlingException",
                "InternalServerException",
            ):
                fake.fail_next(
                    code, times=10, message=f"User {ACCESS_KEY} cannot read {signed} (secret {SECRET_KEY[:4]}...)"
                )
                result = await client.call_tool("embed_content", {"contents": [{"text": "hello"}]})
                text = result.content[0].text
                assert result.is_error and ACCESS_KEY not in text and "X-Amz-Signature" not in text, text
                assert "deadbeef" not in text and SECRET_KEY not in text
                fake._queued.clear()
            caps = (await client.read_resource("nova://capabilities")).contents[0].text
            assert ACCESS_KEY not in caps and "X-Amz" not in caps
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ACCESS_KEY not in logged and SECRET_KEY not in logged and "X-Amz-Signature" not in logged


# ---- names are matched whole --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc\n", "docs\n", "\ndocs"])
def test_index_names_with_a_newline_are_refused(name: str) -> None:
    from nova_mcp_server.errors import InvalidInput
    from nova_mcp_server.stores.base import check_index_name

    with pytest.raises(InvalidInput, match="Invalid index name"):
        check_index_name(name)
    assert check_index_name(name.strip()) == name.strip()


@pytest.mark.parametrize("uri", ["s3://team-docs\n/a.txt", "s3://team-docs\n"])
def test_bucket_names_with_a_newline_are_refused(uri: str) -> None:
    from nova_mcp_server.errors import InvalidInput
    from nova_mcp_server.ingest.sources import parse_s3_uri

    with pytest.raises(InvalidInput, match="not a valid bucket name"):
        parse_s3_uri(uri)


# ---- races between the root check and the read, through the tools -------------------------------------------


@pytest.mark.parametrize("portable", [False, True], ids=["openat", "portable"])
async def test_each_race_fails_only_its_own_file(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, portable: bool
) -> None:
    from nova_mcp_server.ingest import loading, opening

    monkeypatch.setattr(opening, "OPENAT", opening.OPENAT and not portable)
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a-link", "b-fifo", "c-rewrite", "d-delete", "e-steady"):
        (folder / f"{name}.txt").write_text(f"{name} original words about gardens")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the vault code is 4711")

    def rewrite(path: Path) -> None:
        path.write_text("c-rewrite brand new words about oceans")

    def fifo(path: Path) -> None:
        path.unlink()
        os.mkfifo(path)

    def link(path: Path) -> None:
        path.unlink()
        path.symlink_to(secret)

    # Resolution only looks at the files; each is opened once, by its worker. Links, FIFOs and deletions are
    # swapped in between the root check and that open; the rewrite between hashing and segmenting, the only
    # moment a rewrite could still split what is hashed from what is indexed.
    swaps = {"a-link.txt": link, "b-fifo.txt": fifo, "d-delete.txt": Path.unlink}
    rewrites = {"c-rewrite.txt": rewrite}

    def between_resolution_and_reading(path: Path, purpose: str) -> None:
        swap = swaps.pop(path.name, None) if purpose == "read" else None
        if swap is not None:
            swap(path)

    def between_hashing_and_segmenting(path: Path) -> None:
        swap = rewrites.pop(path.name, None)
        if swap is not None:
            swap(path)

    monkeypatch.setattr(opening, "BEFORE_OPEN", between_resolution_and_reading)
    monkeypatch.setattr(loading, "AFTER_HASH", between_hashing_and_segmenting)
    core = local_core(tmp_path, tiny_model, allowed_roots=[folder])
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("index_content", {"sources": [str(folder)], "index": "races"})
        assert not result.is_error, result.content
        report = result.structured_content
        assert swaps == {} and rewrites == {}  # every swap happened where it was meant to
        assert report["indexed_sources"] == 1
        reasons = {Path(f["source"]).name: f["reason"] for f in report["failed"]}
        assert sorted(reasons) == ["a-link.txt", "b-fifo.txt", "c-rewrite.txt", "d-delete.txt"]
        assert "symbolic link" in reasons["a-link.txt"]
        assert "FIFO" in reasons["b-fifo.txt"]
        assert "changed while it was being read" in reasons["c-rewrite.txt"]
        assert "does not exist" in reasons["d-delete.txt"]
        hits = (
            await client.call_tool("semantic_search", {"query": "vault code oceans", "index": "races", "top_k": 10})
        ).structured_content["hits"]
        assert [Path(h["source"]).name for h in hits] == ["e-steady.txt"]
        again = (
            await client.call_tool("index_content", {"sources": [str(folder)], "index": "races"})
        ).structured_content
        assert again["skipped_unchanged"] == 1 and again["indexed_sources"] == 1  # the rewritten file, now new


# ---- roots: none implicit -----------------------------------------------------------------------------------


def test_the_working_directory_is_never_a_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    monkeypatch.delenv("NOVA_MCP_ALLOWED_ROOTS", raising=False)
    assert Settings(data_dir=tmp_path).allowed_roots == []


def test_client_roots_join_configured_ones_but_never_the_disk_or_home(tmp_path: Path) -> None:
    from nova_mcp_server.roots import combine_roots

    home = tmp_path / "home"
    project = home / "project"
    project.mkdir(parents=True)
    declared = [
        project.as_uri(),
        "file:///",
        home.as_uri(),
        "https://example.com/repo",
        "file://fileserver/share",
        "file:relative/path",
    ]
    roots = combine_roots([tmp_path / "configured"], declared, home=home.resolve())
    assert roots.allowed == [(tmp_path / "configured").resolve(), project.resolve()]
    reasons = {r.root: r.reason for r in roots.refused}
    assert "root of the file system" in reasons["file:///"] and "home folder" in reasons[home.as_uri()]
    assert "only file://" in reasons["https://example.com/repo"] and "remote host" in reasons["file://fileserver/share"]
    assert "not absolute" in reasons["file:relative/path"]
    explicit = combine_roots(["/", home], ["file:///"], home=home.resolve())
    assert explicit.allowed == [Path("/"), home.resolve()] and explicit.refused == []  # named explicitly: taken
    assert combine_roots([], None).allowed == []  # no capability, nothing configured: nothing


async def test_without_roots_file_tools_say_how_to_set_them(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "note.txt").write_text("hello")
    core = local_core(tmp_path, tiny_model, allowed_roots=[])
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("index_content", {"sources": [str(tmp_path / "note.txt")], "index": "docs"})
        assert result.is_error  # nothing could be indexed: the call fails with each source's reason
        for needed in ("No folders are allowed", "NOVA_MCP_ALLOWED_ROOTS", "Claude Desktop", "Kiro", "Amazon Q"):
            assert needed in result.content[0].text
        inline = await client.call_tool("index_content", {"texts": ["inline needs no root"], "index": "docs"})
        assert inline.structured_content["indexed_sources"] == 1


# ---- every stdio line gets an answer ------------------------------------------------------------------------


def test_stdio_answers_lines_the_sdk_cannot_parse(tmp_path: Path, tiny_model: Path) -> None:
    """Over real stdio: a request nested ~200 JSON levels deep and a broken line each get a JSON-RPC error
    (the SDK's transport alone drops both and the client hangs), and the session keeps working."""
    import json
    import queue
    import threading

    proc = subprocess.Popen(
        [SCRIPT],
        env=server_env(tmp_path, tiny_model),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()

    def send(message: Any) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        proc.stdin.write(text.encode() + b"\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    def answer() -> dict[str, Any]:
        return json.loads(lines.get(timeout=60))  # a hang guard only: without the fix no line ever comes

    deep: dict[str, Any] = {"modality": "text"}
    for _ in range(100):
        deep = {"$and": [deep]}
    try:
        send({"jsonrpc": "2.0", "id": 1, **INIT})
        assert answer()["id"] == 1
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"name": "semantic_search", "arguments": {"query": "x", "index": "docs", "filter": deep}}
        send({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call})
        nested = answer()
        assert nested["id"] == 7 and nested["error"]["code"] == -32600
        assert "nested" in nested["error"]["message"]
        send('{"jsonrpc": "2.0", "id": 8, "method": ')
        broken = answer()
        assert broken == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        send("[1, 2]")
        assert answer()["error"]["code"] == -32600
        send({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
        listed = answer()
        assert listed["id"] == 9 and any(t["name"] == "semantic_search" for t in listed["result"]["tools"])
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_error_reply_shapes() -> None:
    import mcp_types
    from pydantic import ValidationError

    from nova_mcp_server.stdio import error_reply

    def reply(line: str) -> dict[str, Any]:
        try:
            mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValidationError as exc:
            return error_reply(exc).model_dump(mode="json", exclude_unset=True)
        raise AssertionError("the SDK accepted it")

    assert reply("{") == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
    assert reply('{"jsonrpc": "2.0", "id": "a", "method": 5}')["id"] == "a"
    assert reply('{"jsonrpc": "2.0", "id": true, "method": 5}')["id"] is None  # not a valid id: not echoed
    assert reply('{"jsonrpc": "2.0", "id": "' + "x" * 500 + '", "method": 5}')["id"] is None


def ask_roots(ctx: Context) -> Any:
    """The resolver the server's file tools take (`Annotated[ListRootsResult | None, Resolve(ask_roots)]`)."""
    from mcp.server.mcpserver.resolve import ListRoots

    caps = ctx.client_capabilities
    return ListRoots() if caps is not None and caps.roots is not None else None


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("offers_roots", [True, False])
async def test_client_roots_through_the_sdk_recipe_the_server_uses(
    tmp_path: Path, mode: str, offers_roots: bool
) -> None:
    """The way the server asks: a `Resolve` parameter returning `ListRoots()` only when the client declared the
    roots capability (roots/list on 2025 sessions, the input-required round on 2026-07-28), then
    `combine_roots`. A client without the capability is never asked and gets the configured roots only."""
    from mcp.server import MCPServer
    from mcp_types import Root

    from nova_mcp_server.ingest.sources import resolve_sources
    from nova_mcp_server.roots import combine_roots

    project, configured = tmp_path / "project", tmp_path / "configured"
    for folder in (project, configured):
        folder.mkdir()
        (folder / "note.txt").write_text(f"{folder.name} words")
    asked: list[bool] = []
    server = MCPServer("roots-recipe")

    @server.tool()
    async def readable(roots: Annotated[ListRootsResult | None, Resolve(ask_roots)]) -> list[str]:
        allowed = combine_roots([configured], roots.roots if roots is not None else None).allowed
        items = [str(project / "note.txt"), str(configured / "note.txt")]
        sources, _ = resolve_sources(items, allowed_roots=allowed, download_dir=tmp_path / "dl")
        return [Path(s.display).parent.name for s in sources]

    async def list_roots(ctx: Any) -> ListRootsResult:
        asked.append(True)
        return ListRootsResult(roots=[Root(uri=project.as_uri()), Root(uri="file:///")])

    async with Client(server, mode=mode, list_roots_callback=list_roots if offers_roots else None) as client:
        result = await client.call_tool("readable", {})
    assert not result.is_error, result.content
    expected = ["project", "configured"] if offers_roots else ["configured"]
    assert result.structured_content == {"result": expected}
    assert asked == ([True] if offers_roots else [])
