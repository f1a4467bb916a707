"""Tells subscribers of nova://jobs/{id} when a job changes, on both protocol eras.

2026-07-28 clients listen through `subscriptions/listen` (the SDK's subscription bus, public API); earlier
clients send `resources/subscribe`, and their sessions get `notifications/resources/updated`. The SDK serves
the legacy request only through its low-level server (its own docs say to re-provide removed spec methods
with `Server.add_request_handler`), which `MCPServer` does not expose publicly: this module is the one place
that reaches it, and without it legacy clients still poll `job_status`.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

log = logging.getLogger(__name__)


class JobWatchers:
    def __init__(self, bus: InMemorySubscriptionBus) -> None:
        self._bus = bus
        self._sessions: dict[str, list[Any]] = {}

    def install(self, mcp: MCPServer) -> None:
        lowlevel = getattr(mcp, "_lowlevel_server", None)
        if lowlevel is None or not hasattr(lowlevel, "add_request_handler"):
            log.warning("this mcp SDK serves no legacy resources/subscribe; 2025-era clients must poll job_status")
            return
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe)

    async def _subscribe(self, ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        sessions = self._sessions.setdefault(str(params.uri), [])
        if ctx.session not in sessions:
            sessions.append(ctx.session)
        return EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        sessions = self._sessions.get(str(params.uri), [])
        if ctx.session in sessions:
            sessions.remove(ctx.session)
        return EmptyResult()

    async def changed(self, job_id: str) -> None:
        uri = f"nova://jobs/{job_id}"
        await self._bus.publish(ResourceUpdated(uri=uri))
        for session in list(self._sessions.get(uri, [])):
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a closed session stops listening
                self._sessions[uri].remove(session)
