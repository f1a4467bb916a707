"""CI only: make this Linux Python look like macOS/Windows to our code by deleting the calls those lack.

`.ci/run` puts this directory on PYTHONPATH for a second run of the store, job and crash tests, so the
fallbacks in `nova_mcp_server/durable.py` (fsync for fdatasync, seek + write for pwrite, liveness without
os.kill) run in CI. Child processes the tests start inherit PYTHONPATH, so they lose the calls too.
"""

import os

for _name in ("fdatasync", "pwrite", "pread"):
    if hasattr(os, _name):
        delattr(os, _name)
os.environ["NOVA_MCP_SIMULATED_PLATFORM"] = "no-linux-calls"
