"""Tool arguments the agent got wrong are answered in its own terms: JSON words and the names the tool takes.

The SDK validates arguments against each tool's model but ignores keys the model does not name, so an agent
that writes `paths` for `sources` gets an empty, "successful" call. This interceptor (the SDK's public
extension hook on `tools/call`) answers such a call with an error that lists the accepted names and the
closest one.

An argument of the wrong type or out of range is answered by the SDK with pydantic's report (`1 validation
error for semantic_searchArguments ... input_type=NoneType ... errors.pydantic.dev`): Python words the agent
did not write. `argument_problems` turns such a report into one sentence per argument (`top_k must be at
least 1 (got 0)`), used for the SDK's argument check (`NovaMCPServer.call_tool`) and for the models the
tools validate themselves.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext
from mcp.server.extension import Extension
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolRequestParams, CallToolResult, TextContent
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from nova_mcp_server.errors import json_kind

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

    def __init__(self, *, withheld: Collection[str] = ()) -> None:
        self.server: MCPServer | None = None
        self._accepted: dict[str, set[str]] | None = None
        self._withheld = set(withheld)  # the writers a read-only server does not register

    async def intercept_tool_call(self, params: CallToolRequestParams, ctx: Any, call_next: CallNext) -> Any:
        if params.name in self._withheld:  # not "Unknown tool": say why it is missing and who can change it
            return CallToolResult(
                content=[TextContent(type="text", text=read_only_message(params.name))], is_error=True
            )
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


def read_only_message(tool: str) -> str:
    return (
        f"{tool} is not available: this server runs read-only (NOVA_MCP_READ_ONLY or --read-only), so no tool "
        "that writes or deletes is offered; nothing was done. Search and fetch still work; to change an index, "
        "ask the user to start the server without read-only mode."
    )


def unknown_arguments_message(tool: str, unknown: list[str], accepted: set[str]) -> str:
    hints = []
    for name in unknown:
        guess = SYNONYMS.get(name.lower())
        if guess not in accepted:
            close = difflib.get_close_matches(name, sorted(accepted), n=1)
            guess = close[0] if close else None
        hints.append(f'"{name}" (did you mean "{guess}"?)' if guess else f'"{name}"')
    if not accepted:
        return f"{tool} does not take {', '.join(hints)}; nothing was done. It takes no arguments: call it with none."
    return (
        f"{tool} does not take {', '.join(hints)}; nothing was done. "
        f"It takes: {', '.join(sorted(accepted))}. Call it again with those names."
    )


class NovaMCPServer(MCPServer):
    """The SDK's server, with its argument check answered in JSON words (see the module docstring)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            raise ToolError(
                f"Error executing tool {name}: Invalid arguments: {argument_problems(cause)}. Nothing was done: "
                f"call it again with the arguments fixed (the tool's input schema gives each one's type and limits)."
            ) from cause


# pydantic's error types, said in JSON words ("must be ...").
_MUST = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "tuple_type": "an array",
    "set_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}
_FIELD = re.compile(r"[a-z_][a-z0-9_]*\Z")
_UNION_TAGS = {"bool", "int", "float", "str", "list", "dict", "none", "tuple", "set"}


def _path(loc: tuple[int | str, ...]) -> str:
    """`contents[0].text`: argument names and positions, without pydantic's union tags (`bool`, `literal[...]`)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _FIELD.match(part) and part not in _UNION_TAGS:
            out += f".{part}" if out else part
    return out or "the arguments"


def _sent(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str) and len(value) <= 40:
        return "the string " + json.dumps(value, ensure_ascii=False)
    return json_kind(value)


def _requirement(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _MUST:
        return f"must be {_MUST[kind]}"
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"must have {'at least' if kind == 'too_short' else 'at most'} {bound} item{'' if bound == 1 else 's'}"
    if kind in ("string_too_short", "string_too_long"):
        bound = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        return f"must be {'at least' if kind == 'string_too_short' else 'at most'} {bound} characters"
    if kind in ("enum", "literal_error"):
        return f"must be {'one of ' if ' or ' in str(ctx.get('expected')) else ''}{ctx.get('expected')}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not an argument this takes"
    message = str(error["msg"])
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    return "must be " + message.removeprefix("Input should be ") if message.startswith("Input should be ") else message


def argument_problems(exc: ValidationError) -> str:
    """One clause per wrong argument (alternatives of a union joined), in JSON words, in the order pydantic found."""
    by_path: dict[str, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        by_path.setdefault(_path(error["loc"]), []).append(error)
    clauses = []
    for path, errors in by_path.items():
        first = errors[0]
        if first["type"] == "missing":
            clauses.append(f"{path} is required")
        elif first["type"] == "value_error":
            clauses.append(f"{path}: {_requirement(first)}")
        else:
            wants = list(dict.fromkeys(_requirement(e) for e in errors))  # a union: each alternative once
            said = ", or ".join([wants[0], *(w.removeprefix("must be ") for w in wants[1:])])
            clauses.append(f"{path} {said} (got {_sent(first.get('input'))})")
    return "; ".join(clauses)
