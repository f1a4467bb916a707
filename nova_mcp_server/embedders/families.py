"""The local model families: which fastembed text/vision pair, how it is laid out on disk, what it reads.

Why a table: a family is data (names, dimension, window, file layout), not code. `LocalEmbedder` loads
whichever family this module picks, through fastembed's own loading code, so adding a pair that fastembed
supports is one entry here.

Two layouts exist because the upstream repositories differ:
- ``split``: two repositories, one per tower (``Qdrant/clip-ViT-B-32-text`` and ``-vision``); a model
  folder holds them as ``text/`` and ``vision/``.
- ``repo``: one repository with both towers (``jinaai/jina-clip-v1``: ``onnx/text_model.onnx`` and
  ``onnx/vision_model.onnx`` beside one tokenizer and one preprocessor config); a model folder is a copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nova_mcp_server.errors import InvalidInput

MODEL_PATH_CONFIG = "nova-mcp.json"  # optional {"family", "model", "dimension", "max_text_chars"} in model_path


@dataclass(frozen=True)
class Family:
    """A fastembed text/vision pair that embeds into one space."""

    name: str  # what users write in NOVA_MCP_LOCAL_MODEL, and what an index records
    text: str  # fastembed TextEmbedding model name
    vision: str  # fastembed ImageEmbedding model name
    dimension: int
    max_text_chars: int  # chunk length for indexing: a chunk the window reads whole, with room to spare
    max_tokens: int  # tokens we let one text use (the tokenizer's own limit applies too, whichever is lower)
    download_gb: float  # shown to the user before the first download
    text_dir: str  # sub-folder of a model folder holding the text tower ("" = the folder itself)
    vision_dir: str
    text_files: tuple[str, ...]
    vision_files: tuple[str, ...]

    def describe_layout(self) -> str:
        """The files a model folder needs, for error messages."""
        if self.text_dir == self.vision_dir:
            files = sorted(set(self.text_files) | set(self.vision_files))
            return f"{', '.join(files)} (a copy of the {self.text} repository)"
        return (
            f"{self.text_dir}/ ({', '.join(self.text_files)}) and {self.vision_dir}/ ({', '.join(self.vision_files)}) "
            f"as in the {self.text} and {self.vision} repositories"
        )

    def missing_files(self, folder: Path) -> list[str]:
        """Relative paths of the files this family needs that are not in ``folder``."""
        out = []
        for sub, names in ((self.text_dir, self.text_files), (self.vision_dir, self.vision_files)):
            for name in names:
                rel = f"{sub}/{name}" if sub else name
                if rel not in out and not (folder / rel).is_file():
                    out.append(rel)
        return out


# Names, dimensions and model files as listed by fastembed 0.9 (fastembed/text/clip_embedding.py,
# fastembed/text/onnx_embedding.py and fastembed/image/onnx_embedding.py).
JINA_CLIP_V1 = Family(
    name="jinaai/jina-clip-v1",
    text="jinaai/jina-clip-v1",
    vision="jinaai/jina-clip-v1",
    dimension=768,
    # As on Nova: ~2,000 characters (~500 tokens) hold a paragraph or two and stay fast on a CPU.
    max_text_chars=2000,
    # The model reads 8,192 tokens; one request is capped at 2,048 (~8,000 characters, the longest query the
    # server takes) so a single text's attention stays ~200 MB per layer on a CPU.
    max_tokens=2048,
    download_gb=0.89,
    text_dir="",
    vision_dir="",
    text_files=("onnx/text_model.onnx", "tokenizer.json", "tokenizer_config.json"),
    vision_files=("onnx/vision_model.onnx", "preprocessor_config.json"),
)

CLIP_VIT_B_32 = Family(
    name="Qdrant/clip-ViT-B-32",
    text="Qdrant/clip-ViT-B-32-text",
    vision="Qdrant/clip-ViT-B-32-vision",
    dimension=512,
    # CLIP reads 77 tokens (75 + start and end); English averages ~4 characters per BPE token, so ~300
    # characters fill the window without routinely losing the end.
    max_text_chars=300,
    max_tokens=77,
    download_gb=0.6,
    text_dir="text",
    vision_dir="vision",
    text_files=("model.onnx", "tokenizer.json", "tokenizer_config.json"),
    vision_files=("model.onnx", "preprocessor_config.json"),
)

DEFAULT_FAMILY = JINA_CLIP_V1.name
FAMILIES: dict[str, Family] = {family.name.lower(): family for family in (JINA_CLIP_V1, CLIP_VIT_B_32)}


def family_named(name: str) -> Family:
    family = FAMILIES.get(name.strip().lower())
    if family is None:
        raise InvalidInput(
            f"Unknown local model family '{name}'.",
            f"Use one of: {', '.join(f.name for f in FAMILIES.values())}.",
        )
    return family


def read_model_path_config(folder: Path) -> dict[str, object]:
    """``folder/nova-mcp.json`` as a dict ({} when absent); a malformed file is an error that names it."""
    path = folder / MODEL_PATH_CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("expected an object")
        return data
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"{path} is not valid: {exc}.",
            'It holds {"family": "<name>", "model": "<name>", "dimension": <int>, "max_text_chars": <int>}, '
            "every key optional.",
        ) from exc


def family_for_folder(folder: Path) -> Family:
    """The family a model folder holds: named in its nova-mcp.json, else told by its layout."""
    named = read_model_path_config(folder).get("family")
    if isinstance(named, str):
        return family_named(named)
    for family in FAMILIES.values():
        if family.text_dir and (folder / family.text_dir).is_dir():
            return family
    return FAMILIES[DEFAULT_FAMILY.lower()]


def choose_family(requested: str | None, recorded_models: Iterable[str] = ()) -> str:
    """The family to run: the one asked for; else the one the existing local indexes were built with; else the default.

    Why: the default moved from CLIP ViT-B/32 (512-d) to jina-clip-v1 (768-d). A user who never chose a family
    and already has CLIP indexes keeps getting CLIP, so those indexes keep working; indexes are never mixed.
    ``recorded_models`` are the embedder models recorded by the existing indexes (any provider); only the
    known local families among them count, and when they disagree the default wins (each index still
    refuses vectors from a family it was not built with).
    """
    if requested:
        return family_named(requested).name
    known = {FAMILIES[m.lower()].name for m in recorded_models if m and m.lower() in FAMILIES}
    return known.pop() if len(known) == 1 else DEFAULT_FAMILY
