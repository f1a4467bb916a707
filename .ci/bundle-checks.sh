#!/usr/bin/env bash
# Build the Claude Desktop bundle (packaging/build_mcpb.py -> dist/*.mcpb) and validate it with the official
# mcpb CLI from npm: the manifest in the repo, then the manifest inside the built bundle (unpacked by mcpb
# itself, so a broken zip fails too), then `mcpb info`. server.json is checked by tests/test_packaging.py.
# Run from the repo root inside the CI venv. Needs npm registry access; the npm cache lives in
# $MCP_CHECKS_SCRATCH (default: $TMPDIR/nova-mcp-checks). mcpb runs on the system Node (>= 18).
set -euo pipefail
cd "$(dirname "$0")/.."

MCPB=@anthropic-ai/mcpb@2.1.2
SCRATCH=${MCP_CHECKS_SCRATCH:-${TMPDIR:-/tmp}/nova-mcp-checks}
PY=${PYTHON:-python}
export npm_config_cache=$SCRATCH/npm-cache npm_config_update_notifier=false npm_config_fund=false
export npm_config_audit=false npm_config_loglevel=error
mkdir -p "$SCRATCH"
log() { printf '[bundle-checks] %s\n' "$*" >&2; }

bundle=$(timeout 120 "$PY" packaging/build_mcpb.py)
log "built $bundle ($(wc -c <"$bundle") bytes)"
mcpb() { timeout 300 npx -y "$MCPB" "$@"; }
mcpb validate packaging/mcpb/manifest.json
unpacked=$SCRATCH/mcpb-unpacked
rm -rf "$unpacked"
mcpb unpack "$bundle" "$unpacked" >/dev/null
mcpb validate "$unpacked/manifest.json"
cmp -s packaging/mcpb/manifest.json "$unpacked/manifest.json" || { log "FAIL: bundled manifest differs"; exit 1; }
mcpb info "$bundle"
log "bundle valid"
