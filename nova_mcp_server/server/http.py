"""Serving MCP over streamable HTTP or SSE: bound to 127.0.0.1 by default, optional bearer token.

A loopback bind is reachable only from this machine, and the SDK's DNS-rebinding check (Host and Origin)
guards it against web pages. Any other bind is reachable from the network, and the SDK turns its Host check
off there, so `check_http_settings` refuses to start one without a bearer token of at least
`MIN_TOKEN_CHARS` characters and an explicit list of the Host values clients will send.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.settings import Settings

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 32  # ~190 bits as URL-safe base64 (`secrets.token_urlsafe(32)` gives 43 characters)
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
HOW_TO_TOKEN = 'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


class HttpSettingsError(InvalidInput):
    """The HTTP settings would expose the server; the message says which setting to change."""


def is_loopback(host: str) -> bool:
    """True for binds only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_http_settings(settings: Settings) -> None:
    """Refuse an empty or short token anywhere, and a non-loopback bind without a token and allowed hosts."""
    token = settings.auth_token.get_secret_value() if settings.auth_token is not None else None
    if token is not None and len(token.strip()) < MIN_TOKEN_CHARS:
        what = "empty" if not token.strip() else f"{len(token.strip())} characters long"
        raise HttpSettingsError(
            f"NOVA_MCP_AUTH_TOKEN is {what}; a bearer token needs at least {MIN_TOKEN_CHARS} characters. "
            + HOW_TO_TOKEN
        )
    if is_loopback(settings.host):
        return
    if token is None:
        raise HttpSettingsError(
            f"refusing to serve on {settings.host}: a non-loopback bind is reachable from the network and needs "
            f"a bearer token. Set NOVA_MCP_AUTH_TOKEN (at least {MIN_TOKEN_CHARS} characters; {HOW_TO_TOKEN}), "
            "or bind to 127.0.0.1."
        )
    if not settings.allowed_hosts:
        raise HttpSettingsError(
            f"refusing to serve on {settings.host} without NOVA_MCP_ALLOWED_HOSTS: name the Host header values "
            "clients will send (e.g. mcp.example.com:* or 10.0.0.5:8000), so DNS-rebinding protection stays on. "
            "Browser clients also need NOVA_MCP_ALLOWED_ORIGINS (e.g. https://app.example.com)."
        )


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The SDK's Host/Origin check, always on: loopback names, plus the hosts and origins named in settings."""
    hosts = list(settings.allowed_hosts)
    origins = list(settings.allowed_origins)
    if is_loopback(settings.host):
        hosts += LOOPBACK_HOSTS
        origins += LOOPBACK_ORIGINS
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


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
    """The ASGI app for ``settings.transport``; raises HttpSettingsError when the settings would expose it."""
    check_http_settings(settings)
    security = transport_security(settings)
    app: Any
    if settings.transport == "sse":
        app = mcp.sse_app(host=settings.host, transport_security=security)
    else:
        app = mcp.streamable_http_app(host=settings.host, transport_security=security)
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
