"""Serving MCP over streamable HTTP or SSE: bound to 127.0.0.1 by default, optional bearer token."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from mcp.server import MCPServer

from nova_mcp_server.settings import Settings

log = logging.getLogger(__name__)


class BearerAuth:
    """Pure ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`.

    The compare is constant-time and the token is never logged.
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized", "detail": "send Authorization: Bearer <token>"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def build_http_app(mcp: MCPServer, settings: Settings) -> Any:
    if settings.transport == "sse":
        app = mcp.sse_app(host=settings.host)
    else:
        app = mcp.streamable_http_app(host=settings.host)
    if settings.auth_token is not None:
        app = BearerAuth(app, settings.auth_token.get_secret_value())
    return app


def serve_http(mcp: MCPServer, settings: Settings) -> None:
    import uvicorn

    app = build_http_app(mcp, settings)
    path = "/sse" if settings.transport == "sse" else "/mcp"
    log.warning("serving MCP (%s) on http://%s:%d%s", settings.transport, settings.host, settings.port, path)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep uvicorn on our stderr logging
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    uvicorn.Server(config).run()
