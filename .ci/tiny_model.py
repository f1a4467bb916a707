"""Build the tests' tiny CLIP model into a folder (for .ci/mcp-checks.sh): `python .ci/tiny_model.py DEST`.

The checks run the real console script offline, so they need a model folder for NOVA_MCP_LOCAL_MODEL_PATH;
this reuses `tests/fixtures/tiny_clip.py` (needs the `onnx` package from the test extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.tiny_clip import build_tiny_clip  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python .ci/tiny_model.py DEST")
    print(build_tiny_clip(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
