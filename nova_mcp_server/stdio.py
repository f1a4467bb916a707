"""Serve MCP over stdio so that every line gets an answer, including the ones the SDK cannot parse.

The SDK's stdio transport (mcp 2.3.0, `mcp/server/stdio.py`, `stdin_reader`) catches a line that fails
`jsonrpc_message_adapter.validate_json` and forwards the exception into the read stream; the dispatcher
(`mcp/shared/jsonrpc_dispatcher.py`, `_dispatch`) logs it at DEBUG and returns. No JSON-RPC error is written,
so a client that sent malformed JSON, or valid JSON nested deeper than pydantic-core's parser allows (about
200 levels: a filter 100 ``$and`` levels deep), waits for a reply forever. Over streamable HTTP the same
request gets ``-32700`` (`mcp/server/streamable_http.py`). `run_stdio` keeps the SDK transport (and its fd
diversion that keeps stray output off the wire) and answers those lines itself: ``-32700 Parse error`` with
``id: null`` for text that is not JSON, ``-32600 Invalid Request`` with the request's id when the JSON is
readable but not a message the SDK accepts (too deep, or the wrong shape).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError

log = logging.getLogger(__name__)
MAX_ECHOED_ID_CHARS = 200


def error_reply(exc: Exception) -> JSONRPCError:
    """The JSON-RPC error answering a line the SDK refused with ``exc`` (a pydantic ValidationError)."""
    errors: list[dict[str, Any]] = []
    with suppress(AttributeError, TypeError):
        errors = list(exc.errors())  # type: ignore[attr-defined]
    first = errors[0] if errors else {}
    raw = first.get("input")
    if first.get("type") == "json_invalid" and isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)  # Python's parser takes ~1,000 levels: enough to find the id
        except (ValueError, RecursionError):
            return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message="Parse error"))
        detail = str(first.get("msg", "")).removeprefix("Invalid JSON: ")
        message = f"Invalid Request: the message could not be read ({detail}); send it less deeply nested."
    else:
        message = "Invalid Request: not a JSON-RPC 2.0 message (an object with jsonrpc, and method or id)."
    if not isinstance(raw, dict):  # a shape error reports a part; some branch of the union saw the whole object
        raw = next((e["input"] for e in errors if isinstance(e.get("input"), dict) and "jsonrpc" in e["input"]), raw)
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if (
        isinstance(request_id, bool)
        or not isinstance(request_id, int | str)
        or len(str(request_id)) > MAX_ECHOED_ID_CHARS
    ):
        request_id = None
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=message))


async def run_stdio(mcp: MCPServer, on_handshake: Callable[[], None] | None = None) -> None:
    """Serve ``mcp`` over this process's stdin/stdout like `MCPServer.run_stdio_async`, answering unparsable
    lines with a JSON-RPC error instead of dropping them. ``on_handshake`` is called once, when the first
    message other than `initialize` arrives (the client has its answer): the moment to start heavy work."""
    lowlevel = mcp._lowlevel_server  # what run_stdio_async serves; the SDK offers no public handle
    async with stdio_server() as (read_stream, write_stream):
        relay_send, relay_receive = create_context_streams[SessionMessage | Exception](0)
        handshake = on_handshake

        async def relay() -> None:
            async with relay_send:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        reply = error_reply(item)
                        log.warning("answered an unreadable stdio line with JSON-RPC error %d", reply.error.code)
                        await write_stream.send(SessionMessage(reply))
                        continue
                    nonlocal handshake
                    if handshake is not None and getattr(item.message, "method", None) != "initialize":
                        call, handshake = handshake, None
                        call()
                    await relay_send.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay)
            await lowlevel.run(relay_receive, write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()
