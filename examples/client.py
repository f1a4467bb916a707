"""A scripted MCP client: start nova-multimodal-mcp over stdio, index a folder of texts and images, search it.

    python examples/client.py                      # builds a small demo folder in a temp dir
    python examples/client.py --folder ~/notes --query "whiteboard sketch" --image ~/notes/board.jpg

The server runs on the local backend (no AWS). Its data directory and model come from the usual
`NOVA_MCP_*` environment variables: the first run downloads the CLIP model once (about 0.6 GB) unless
`NOVA_MCP_LOCAL_MODEL_PATH` points at a model folder. The demo index is deleted again at the end when the
demo folder was built here; pass --keep to keep it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
DEMO_TEXTS = {
    "red-fox.txt": "A red fox runs across the snow in the morning.",
    "green-park.txt": "Green grass and tall trees in the park.",
    "blue-sea.md": "# Holiday\n\nThe blue sea under a clear sky.",
}
DEMO_COLOURS = {"red.png": (220, 20, 20), "green.png": (20, 200, 40), "blue.png": (20, 40, 220)}


def build_demo_folder(dest: Path) -> Path:
    """A couple of text files and solid-colour images: enough to see text and image search side by side."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    for name, text in DEMO_TEXTS.items():
        (dest / name).write_text(text + "\n", encoding="utf-8")
    for name, rgb in DEMO_COLOURS.items():
        Image.new("RGB", (96, 64), rgb).save(dest / name)
    return dest


def server_command() -> str:
    """The console script next to this Python (a venv), else the one on PATH."""
    beside = Path(sys.executable).parent / ("nova-multimodal-mcp.exe" if os.name == "nt" else "nova-multimodal-mcp")
    found = str(beside) if beside.exists() else shutil.which("nova-multimodal-mcp")
    if not found:
        raise SystemExit("nova-multimodal-mcp is not installed: pip install nova-multimodal-mcp (or pip install -e .)")
    return found


def where(hit: dict[str, Any]) -> str:
    if hit.get("page") is not None:
        return f"page {hit['page']}"
    if hit.get("start_s") is not None:
        return f"{hit['start_s']:.0f}-{hit['end_s']:.0f} s"
    if hit.get("char_start") is not None:
        return f"chars {hit['char_start']}-{hit['char_end']}"
    return ""


def print_hits(title: str, result: Any) -> None:
    if result.is_error:
        raise SystemExit(f"{title} failed: {result.content[0].text}")
    print(title)
    for hit in result.structured_content["hits"]:
        snippet = (hit.get("snippet") or "").replace("\n", " ")[:50]
        print(
            f"  {hit['rank']:2d}. {hit['score']:6.3f}  {hit['modality']:<8} {hit['source']}  {where(hit)}  {snippet!r}"
        )
    print()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="nova-demo-") as tmp:
        demo = args.folder is None
        folder = build_demo_folder(Path(tmp) / "demo") if demo else Path(args.folder).expanduser().resolve()
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        image = Path(args.image).expanduser().resolve() if args.image else (folder / "blue.png" if demo else None)
        if image is None and images:
            image = images[0]

        env = dict(os.environ)  # keeps NOVA_MCP_DATA_DIR / NOVA_MCP_LOCAL_MODEL_PATH / HF_* if you set them
        env["NOVA_MCP_BACKEND"] = "local"
        roots = [folder] + ([image.parent] if image else [])
        env["NOVA_MCP_ALLOWED_ROOTS"] = ",".join(str(r) for r in dict.fromkeys(roots))
        params = StdioServerParameters(command=server_command(), args=[], env=env)

        async with Client(params) as client:
            caps = json.loads((await client.read_resource("nova://capabilities")).contents[0].text)
            print(f"server: {caps['backend']} backend, model {caps['model']} ({caps['dimension']} dims)")
            print(f"folder: {folder}")

            async def progress(done: float, total: float | None, message: str | None) -> None:
                print(f"  progress {done:g}/{'?' if total is None else format(total, 'g')} {message or ''}".rstrip())

            report = await client.call_tool(
                "index_content", {"sources": [str(folder)], "index": args.index}, progress_callback=progress
            )
            if report.is_error:
                raise SystemExit(f"indexing failed: {report.content[0].text}")
            r = report.structured_content
            print(
                f"indexed {r['indexed_sources']} source(s) ({r['indexed_segments']} segments), "
                f"{r['skipped_unchanged']} unchanged, {len(r['failed'])} failed"
            )
            for failure in r["failed"]:
                print(f"  failed {failure['source']}: {failure['reason']}")
            print()

            found = await client.call_tool("semantic_search", {"query": args.query, "index": args.index, "top_k": 3})
            print_hits(f"text query {args.query!r} (top 3):", found)
            if image is not None:
                found = await client.call_tool(
                    "semantic_search", {"image": {"path": str(image)}, "index": args.index, "top_k": 3}
                )
                print_hits(f"image query {image.name} (top 3):", found)

            if demo and not args.keep:
                deleted = await client.call_tool("delete_index", {"name": args.index})
                print(f"deleted demo index {args.index!r}" if not deleted.is_error else deleted.content[0].text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="folder of texts and images to index (default: a generated demo folder)")
    parser.add_argument("--index", default="nova-demo", help="index name (default: nova-demo)")
    parser.add_argument("--query", default="a red fox", help="text query")
    parser.add_argument("--image", help="image to search with (default: an image from the folder)")
    parser.add_argument("--keep", action="store_true", help="keep the demo index")
    anyio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
