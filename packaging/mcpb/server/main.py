"""Entry point of the `.mcpb` bundle: Claude Desktop runs `uv run --directory <bundle> server/main.py FOLDER...`.

The bundle carries the `nova_mcp_server` package beside this folder and a pyproject.toml with its dependencies
only (`[tool.uv] package = false`), so uv builds nothing: this script puts the bundle first on `sys.path` and
calls the same `main()` as the `nova-multimodal-mcp` console script.

The manifest maps every `user_config` field to an environment variable. A field the user left empty arrives as
"" (or, in some hosts, as the unexpanded `${user_config.x}`); either would be an invalid setting, so such
variables are dropped and the server's own default applies. The allowed folders arrive as arguments (a
`multiple` directory field expands to one argument per folder) and become `NOVA_MCP_ALLOWED_ROOTS`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]
PREFIXES = ("NOVA_MCP_", "AWS_")


def unset(value: str) -> bool:
    return not value.strip() or value.strip().startswith("${")


def prepare(environ: dict[str, str] | os._Environ[str], folders: list[str]) -> None:
    for name in [n for n, v in environ.items() if n.startswith(PREFIXES) and unset(v)]:
        del environ[name]
    roots = [f for f in folders if not unset(f)]
    if roots:
        environ["NOVA_MCP_ALLOWED_ROOTS"] = os.pathsep.join(roots)


def main() -> int:
    prepare(os.environ, sys.argv[1:])
    sys.path.insert(0, str(BUNDLE))
    from nova_mcp_server.cli import main as cli_main

    return cli_main(["serve"])


if __name__ == "__main__":
    raise SystemExit(main())
