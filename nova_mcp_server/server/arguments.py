"""Unknown tool arguments are refused with the names the tool takes, not silently dropped.

The SDK validates arguments against each tool's model but ignores keys the model does not name, so an agent
that writes `paths` for `sources` gets an empty, "successful" call. This interceptor (the SDK's public
extension hook on `tools/call`) answers such a call with an error that lists the accepted names and the
closest one.
"""

from __future__ import annotations

import difflib
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext
from mcp.server.extension import Extension
from mcp.types import CallToolRequestParams, CallToolResult, TextContent

# What agents write for our names, seen in peers' issues and our own fuzzing.
SYNONYMS = {
    "paths": "sources",
    "path": "sources",
    "files": "sources",
    "file": "sources",
    "uris": "sources",
    "text": "texts",
    "documents": "texts",
    "k": "top_k",
    "limit": "top_k",
    "n": "top_k",
    "collection": "index",
    "index_name": "index",
    "where": "filter",
    "filters": "filter",
    "uri": "item",
    "key": "item",
    "id": "job_id",
}


class StrictArguments(Extension):
    identifier = "io.github.nova-multimodal-mcp/strict-arguments"

    def __init__(self) -> None:
        self.server: MCPServer | None = None
        self._accepted: dict[str, set[str]] | None = None

    async def intercept_tool_call(self, params: CallToolRequestParams, ctx: Any, call_next: CallNext) -> Any:
        accepted = (await self._names()).get(params.name)
        unknown = sorted(set(params.arguments or {}) - accepted) if accepted is not None else []
        if not unknown:
            return await call_next(ctx)
        return CallToolResult(
            content=[TextContent(type="text", text=unknown_arguments_message(params.name, unknown, accepted or set()))],
            is_error=True,
        )

    async def _names(self) -> dict[str, set[str]]:
        if self._accepted is None:
            assert self.server is not None, "install() the extension on its server first"
            tools = await self.server.list_tools()
            self._accepted = {t.name: set((t.input_schema or {}).get("properties", {})) for t in tools}
        return self._accepted

    def install(self, server: MCPServer) -> None:
        self.server = server


def unknown_arguments_message(tool: str, unknown: list[str], accepted: set[str]) -> str:
    hints = []
    for name in unknown:
        guess = SYNONYMS.get(name.lower())
        if guess not in accepted:
            close = difflib.get_close_matches(name, sorted(accepted), n=1)
            guess = close[0] if close else None
        hints.append(f'"{name}" (did you mean "{guess}"?)' if guess else f'"{name}"')
    return (
        f"{tool} does not take {', '.join(hints)}; nothing was done. "
        f"It takes: {', '.join(sorted(accepted))}. Call it again with those names."
    )
