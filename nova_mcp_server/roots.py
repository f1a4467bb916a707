"""Which folders the server may read: configured roots plus the roots the MCP client declares.

There are no implicit roots. A desktop client starts the server in whatever working directory it likes
(often ``/`` or the home folder), so the working directory is never a root. ``/`` (a drive root on Windows)
and the home folder are taken only when the user names them in the configuration; a client that offers one
of them through ``roots/list`` has it refused, because nobody chose to expose the whole disk to an agent.

This module is pure (no I/O besides resolving paths): the server asks the client for its roots and passes
the URIs here; `combine_roots` returns the allowed set and what was refused, and `no_roots_message` is the
answer a file tool gives when the set is empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname


@dataclass(frozen=True)
class RefusedRoot:
    root: str  # as declared (URI or path)
    reason: str


@dataclass(frozen=True)
class Roots:
    """The allowed folders (real paths, deduplicated, in order) and the declared roots that were refused."""

    allowed: list[Path] = field(default_factory=list)
    refused: list[RefusedRoot] = field(default_factory=list)


def real(path: str | os.PathLike[str]) -> Path:
    """The real path of a root: ``~`` expanded, links resolved, so the containment check compares like with like."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def is_too_broad(path: Path, home: Path | None = None) -> str | None:
    """Why ``path`` (a real path) may not be an implicit root: it is a file-system root or the home folder."""
    if path == Path(path.anchor) or path.parent == path:
        return "it is the root of the file system"
    home = real(Path.home()) if home is None else home
    if path == home:
        return "it is the home folder"
    return None


def file_uri_to_path(uri: str) -> Path:
    """``file:///abs/path`` (or ``file://localhost/...``, ``file:///C:/...`` on Windows) -> a path.

    Raises ValueError for other schemes, remote hosts and relative paths.
    """
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "file":
        raise ValueError(f"only file:// roots can be read (got {parsed.scheme or 'no'} scheme)")
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"remote host {parsed.netloc!r} in a file URI cannot be read")
    raw = url2pathname(parsed.path) if os.name == "nt" else unquote(parsed.path)
    if "\x00" in raw:
        raise ValueError("the path holds a NUL character")
    path = Path(raw)
    if not path.is_absolute():
        raise ValueError("the path is not absolute")
    return path


def _uri_of(root: Any) -> str:
    """A declared root may be a URI string or an object with ``uri`` (the SDK's `Root` model)."""
    return str(getattr(root, "uri", root))


def combine_roots(
    configured: Sequence[str | os.PathLike[str]],
    client_roots: Iterable[Any] | None = None,
    *,
    home: Path | None = None,
) -> Roots:
    """The allowed set: every configured root (named explicitly, so ``/`` and home are taken), then the client's
    ``file://`` roots except a file-system root or the home folder. Nothing else: no working directory.

    ``client_roots`` is what ``roots/list`` returned (URIs or `Root` objects); None when the client declared no
    roots capability (then it must not be asked).
    """
    allowed: dict[Path, None] = {}
    refused: list[RefusedRoot] = []
    for root in configured:
        allowed.setdefault(real(root))
    for declared in client_roots or ():
        uri = _uri_of(declared)
        try:
            path = real(file_uri_to_path(uri))
        except ValueError as exc:
            refused.append(RefusedRoot(uri, str(exc)))
            continue
        why = is_too_broad(path, home)
        if why is not None and path not in allowed:
            refused.append(RefusedRoot(uri, f"{why}; name it in NOVA_MCP_ALLOWED_ROOTS if you really mean to share it"))
            continue
        allowed.setdefault(path)
    return Roots(allowed=list(allowed), refused=refused)


def no_roots_message(refused: Sequence[RefusedRoot] = ()) -> str:
    """What a file tool answers when no folder may be read, with the set-up for each desktop client."""
    lines = [
        "No folders are allowed to be read: set NOVA_MCP_ALLOWED_ROOTS to the folders this server may index "
        "(comma-separated absolute paths), or use a client that shares its workspace roots.",
        'Claude Desktop: in claude_desktop_config.json, under mcpServers -> your server -> "env", add '
        '"NOVA_MCP_ALLOWED_ROOTS": "/Users/you/Documents", then restart Claude Desktop.',
        "Kiro: in .kiro/settings/mcp.json (workspace) or ~/.kiro/settings/mcp.json (user), under mcpServers -> "
        'your server -> "env", add "NOVA_MCP_ALLOWED_ROOTS": "/path/to/your/project".',
        "Amazon Q Developer: in ~/.aws/amazonq/mcp.json (or .amazonq/mcp.json in the workspace), under "
        'mcpServers -> your server -> "env", add "NOVA_MCP_ALLOWED_ROOTS": "/path/to/your/project".',
        "Or pass --allowed-root PATH (repeatable) on the command line. Inline text and data need no root.",
    ]
    if refused:
        lines.append("Refused roots: " + "; ".join(f"{r.root} ({r.reason})" for r in refused) + ".")
    return "\n".join(lines)
