"""The MCP surface: assembles tools, resources, prompts and job subscriptions over the App's services.

No business logic lives here; each module registers one kind of thing through the SDK's public API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
from mcp.server import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from nova_mcp_server import __version__
from nova_mcp_server.errors import NovaError
from nova_mcp_server.server.arguments import NovaMCPServer, StrictArguments
from nova_mcp_server.server.completions import register_completions
from nova_mcp_server.server.handle import AppHandle
from nova_mcp_server.server.prompts import register_prompts
from nova_mcp_server.server.resources import register_resources
from nova_mcp_server.server.subscriptions import JobWatchers
from nova_mcp_server.server.tools import WRITE_TOOLS, register_read_tools, register_write_tools

if TYPE_CHECKING:
    from nova_mcp_server.app import App

log = logging.getLogger(__name__)
POLL_SECONDS = 15.0
Transport = Literal["stdio", "sse", "streamable-http"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

INSTRUCTIONS = """\
Multimodal retrieval: text, documents (PDF pages), images, audio and video share one vector space.
- index_content puts files, folders, s3:// objects or text into a named index (created on first use;
  unchanged sources are skipped). Long audio/video may go to an async job: follow it with job_status.
- semantic_search takes a text query or an image and returns ranked hits with source, page or time range,
  and a nova:// URI. Narrow with modality=[...] or a filter in the S3 Vectors language, e.g.
  {"page": {"$gte": 3}}, {"source": {"$eq": "/docs/a.pdf"}}, {"$and": [...]}. top_k is 1-100.
- embed_content returns vectors (preview + handle; full vector only if include_vector) and a similarity matrix.
- Read nova://capabilities for the backend, model, dimension and limits.
"""


def build_server(app: App | AppHandle, *, poll_seconds: float = POLL_SECONDS) -> MCPServer:
    """The MCP server over ``app``: an App already built, or a handle that builds it once the server runs."""
    handle = app if isinstance(app, AppHandle) else AppHandle.of(app)
    settings = handle.settings
    bus = InMemorySubscriptionBus()
    watchers = JobWatchers(bus)

    handle.when_ready(lambda app: app.jobs.listeners.append(watchers.changed))
    spawn: Any = None

    def wire(app: App) -> None:  # per run of the server; in the building thread, before a call sees the App
        app.jobs.spawn = spawn
        if app.downloader is not None:  # the local model arrives in the background, never inside a call
            app.downloader.start()

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[dict[str, Any]]:
        nonlocal spawn
        async with anyio.create_task_group() as tg:
            spawn = tg.start_soon
            handle.when_ready(wire)
            handle.on_kick(lambda: tg.start_soon(_build, handle))
            if poll_seconds > 0 and not settings.read_only:  # read-only: jobs are reported, not advanced
                tg.start_soon(_poll_forever, handle, poll_seconds)
            try:
                yield {"handle": handle}
            finally:
                handle.on_kick(None)
                spawn = None
                handle.when_ready(_unspawn)
                tg.cancel_scope.cancel()

    strict = StrictArguments(withheld=WRITE_TOOLS if settings.read_only else ())
    mcp = NovaMCPServer(
        "nova-multimodal-mcp",
        extensions=[strict],
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=cast(LogLevel, settings.log_level.upper()),
        subscriptions=bus,
    )
    strict.install(mcp)
    watchers.install(mcp)
    register_read_tools(mcp, handle)
    if not settings.read_only:
        register_write_tools(mcp, handle)
    register_resources(mcp, handle)
    register_prompts(mcp)
    register_completions(mcp, handle)
    return mcp


async def _build(handle: AppHandle) -> None:
    """Build the App off the event loop, so the first call finds it ready."""
    with suppress(NovaError):  # logged by the handle (any failure); every tool answers with the reason
        await handle.get()


def _unspawn(app: App) -> None:
    app.jobs.spawn = None  # the task group is gone: jobs started from now on run inline


async def _poll_forever(handle: AppHandle, every: float) -> None:
    """Move jobs forward every so often (a finished Bedrock job is ingested without anyone asking)."""
    while True:
        await anyio.sleep(every)
        try:
            app = await handle.get()
        except NovaError:
            continue  # no App (the tools say why); a fixed data folder builds on a later tick
        try:
            await app.jobs.poll()
        except Exception:  # the poller must outlive any one bad tick (Bedrock throttling included)
            log.exception("job poller tick failed")
