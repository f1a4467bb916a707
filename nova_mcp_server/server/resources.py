"""The `nova://` resources. Each has a tool beside it, since many clients never let the model read these."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from nova_mcp_server.errors import NotFound, NovaError
from nova_mcp_server.server.handle import AppHandle

T = TypeVar("T")


async def found(awaitable: Awaitable[T]) -> T:
    """Our errors as the resource errors the protocol defines (not found: -32602 with the URI)."""
    try:
        return await awaitable
    except NotFound as exc:
        raise ResourceNotFoundError(exc.text) from None
    except NovaError as exc:
        raise ResourceError(exc.text) from None


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def register_resources(mcp: MCPServer, handle: AppHandle) -> None:
    @mcp.resource("nova://capabilities", mime_type="application/json", title="Server capabilities")
    async def capabilities() -> str:
        """Backend, model, dimensions, modalities, limits and filter operators."""
        return dump((await found(handle.get())).capabilities())

    @mcp.resource("nova://indexes", mime_type="application/json", title="Indexes")
    async def indexes_resource() -> str:
        """Every index with its dimension, embedder and vector count."""
        app = await found(handle.get())
        return dump([i.model_dump(mode="json") for i in await found(app.catalog.list())])

    @mcp.resource("nova://indexes/{name}", mime_type="application/json", title="One index")
    async def index_resource(name: str) -> str:
        """One index: its embedder, size and filterable keys with types, top values and counts (describe_index)."""
        app = await found(handle.get())
        return dump((await found(app.catalog.facets(name))).model_dump(mode="json"))

    @mcp.resource("nova://indexes/{name}/items", mime_type="application/json", title="Items of an index")
    async def items_resource(name: str) -> str:
        """The first 100 items of an index (key, source, modality, locator)."""
        app = await found(handle.get())
        return dump(await found(app.catalog.list_items(name, limit=100)))

    @mcp.resource("nova://indexes/{name}/items/{key}", mime_type="application/json", title="One item")
    async def item_resource(name: str, key: str) -> str:
        """One indexed segment with all its metadata."""
        app = await found(handle.get())
        return dump(await found(app.catalog.get_item(name, key)))

    @mcp.resource("nova://jobs", mime_type="application/json", title="Recent jobs")
    async def jobs_resource() -> str:
        """The 20 most recent jobs."""
        app = await found(handle.get())
        return dump([j.model_dump(mode="json") for j in await found(app.jobs.recent(20))])

    @mcp.resource("nova://jobs/{job_id}", mime_type="application/json", title="One job")
    async def job_resource(job_id: str) -> str:
        """One job's status, progress and errors."""
        app = await found(handle.get())
        return dump((await found(app.jobs.get(job_id))).model_dump(mode="json"))
