"""Argument completion (`completion/complete`): index names, item keys, job ids and sources, by prefix.

MCP completes the arguments of prompts and resource templates (tools have none), so the names an agent or
a person types into `nova://indexes/{name}`, `nova://jobs/{job_id}` or a prompt's `index`/`source` come
from what exists, not from guessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server import MCPServer
from mcp.types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from nova_mcp_server.errors import NovaError
from nova_mcp_server.server.handle import AppHandle
from nova_mcp_server.services.threads import off_loop

if TYPE_CHECKING:
    from nova_mcp_server.app import App

MAX_VALUES = 100  # the protocol's cap per answer
SCAN = 1000  # items listed to find keys or sources


def register_completions(mcp: MCPServer, handle: AppHandle) -> None:
    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        given = dict(context.arguments or {}) if context and context.arguments else {}
        try:
            values = await _values(await handle.get(), argument.name, given)
        except NovaError:  # an index that does not exist has nothing to offer
            values = []
        matching = sorted(v for v in set(values) if v.startswith(argument.value or ""))
        return Completion(values=matching[:MAX_VALUES], total=len(matching), has_more=len(matching) > MAX_VALUES)


async def _values(app: App, name: str, given: dict[str, Any]) -> list[str]:
    if name in ("name", "index"):
        return [summary.name for summary in await app.catalog.list()]
    if name == "job_id":
        return [job.id for job in await app.jobs.recent(MAX_VALUES)]
    index = str(given.get("name") or given.get("index") or app.settings.default_index)
    if name == "key":
        page = await off_loop(app.store.list_vectors, index, max_results=SCAN, return_metadata=False)
        return [v.key for v in page.vectors]
    if name == "source":
        page = await off_loop(app.store.list_vectors, index, max_results=SCAN, return_metadata=True)
        return [str((v.metadata or {}).get("source")) for v in page.vectors if (v.metadata or {}).get("source")]
    return []
