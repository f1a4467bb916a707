"""The console script as a client starts it: over stdio, streamable HTTP and SSE, each as a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from support import SCRIPT, free_port, server_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def http_server(tmp_path: Path, tiny_model: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    transport = request.param
    port = free_port()
    proc = subprocess.Popen(
        [SCRIPT, "--transport", transport, "--port", str(port)],
        env=server_env(tmp_path, tiny_model),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
                time.sleep(0.1)
        else:
            pytest.fail("HTTP server did not start")
        yield f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def exercise(client: Client) -> None:
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"embed_content", "index_content", "semantic_search", "job_status"} <= names
    indexed = await client.call_tool("index_content", {"texts": ["green grass in spring"], "index": "topics"})
    assert not indexed.is_error, indexed.content[0].text
    result = await client.call_tool("semantic_search", {"query": "green grass", "index": "topics", "top_k": 1})
    assert not result.is_error, result.content[0].text
    hit = result.structured_content["hits"][0]
    assert hit["modality"] == "text" and hit["snippet"] == "green grass in spring"


async def test_stdio_console_script(tmp_path: Path, tiny_model: Path) -> None:
    params = StdioServerParameters(command=SCRIPT, args=[], env=server_env(tmp_path, tiny_model))
    async with Client(params) as client:
        await exercise(client)


@pytest.mark.parametrize("http_server", ["streamable-http"], indirect=True)
async def test_streamable_http(http_server: str) -> None:
    async with Client(http_server) as client:
        await exercise(client)


@pytest.mark.parametrize("http_server", ["sse"], indirect=True)
async def test_sse(http_server: str) -> None:
    async with Client(sse_client(http_server)) as client:
        await exercise(client)


def test_python_dash_m_matches_console_script() -> None:
    out = subprocess.run([sys.executable, "-m", "nova_mcp_server", "--version"], capture_output=True, text=True)
    script = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True)
    assert out.returncode == script.returncode == 0
    assert out.stdout == script.stdout and out.stdout.startswith("nova-multimodal-mcp ")


def test_stdio_writes_nothing_but_protocol_before_a_request(tmp_path: Path, tiny_model: Path) -> None:
    proc = subprocess.run([SCRIPT], env=server_env(tmp_path, tiny_model), input=b"", capture_output=True, timeout=30)
    assert proc.stdout == b""


def test_stdio_stdout_carries_only_protocol_while_indexing_a_pdf_and_a_video(tmp_path: Path, tiny_model: Path) -> None:
    """PDFium, PyAV and the model loader run inside the call: none of them may print on stdout."""
    import json
    import threading

    from fixtures.media import make_mp4, make_pdf

    pdf = make_pdf(tmp_path / "guide.pdf", ["first page about gardens", "second page about rivers"])
    video = make_mp4(tmp_path / "clip.mp4", seconds=2.0, with_audio=False)
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw-stdio-test", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "index_content", "arguments": {"sources": [str(pdf), str(video)], "index": "media"}},
        },
    ]
    proc = subprocess.Popen(
        [SCRIPT], env=server_env(tmp_path, tiny_model), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[bytes] = []
    answered = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if b'"id":2' in line.replace(b" ", b""):
                answered.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for message in requests:
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()
    try:
        assert answered.wait(180), f"no answer to tools/call; stdout so far: {lines!r}"
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=30)
    messages = [json.loads(line) for line in lines]  # every stdout line is one JSON-RPC message
    assert all(m.get("jsonrpc") == "2.0" for m in messages), messages
    result = next(m for m in messages if m.get("id") == 2)["result"]
    assert not result.get("isError"), result
    report = result["structuredContent"]
    assert report["indexed_sources"] == 2 and not report["failed"], report
