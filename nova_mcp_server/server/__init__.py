"""The MCP surface: assembles tools, resources, prompts and job subscriptions over the App's services.

No business logic lives here; each module registers one kind of thing through the SDK's public API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, cast

import anyio
from mcp.server import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from nova_mcp_server import __version__
from nova_mcp_server.app import App
from nova_mcp_server.server.arguments import StrictArguments
from nova_mcp_server.server.completions import register_completions
from nova_mcp_server.server.prompts import register_prompts
from nova_mcp_server.server.resources import register_resources
from nova_mcp_server.server.subscriptions import JobWatchers
from nova_mcp_server.server.tools import register_read_tools, register_write_tools
from nova_mcp_server.services.jobs import Jobs

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


def build_server(app: App, *, poll_seconds: float = POLL_SECONDS) -> MCPServer:
    bus = InMemorySubscriptionBus()
    watchers = JobWatchers(bus)
    app.jobs.listeners.append(watchers.changed)

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as tg:
            app.jobs.spawn = tg.start_soon
            if app.downloader is not None:  # the local model arrives in the background, never inside a call
                app.downloader.start()
            if poll_seconds > 0 and not app.settings.read_only:  # read-only: jobs are reported, not advanced
                tg.start_soon(_poll_forever, app.jobs, poll_seconds)
            try:
                yield {"app": app}
            finally:
                app.jobs.spawn = None
                tg.cancel_scope.cancel()

    strict = StrictArguments()
    mcp = MCPServer(
        "nova-multimodal-mcp",
        extensions=[strict],
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=cast(LogLevel, app.settings.log_level.upper()),
        subscriptions=bus,
    )
    strict.install(mcp)
    watchers.install(mcp)
    register_read_tools(mcp, app)
    if not app.settings.read_only:
        register_write_tools(mcp, app)
    register_resources(mcp, app)
    register_prompts(mcp)
    register_completions(mcp, app)
    return mcp


async def _poll_forever(jobs: Jobs, every: float) -> None:
    while True:
        await anyio.sleep(every)
        try:
            await jobs.poll()
        except Exception:  # the poller must outlive any one bad tick
            log.exception("job poller tick failed")
