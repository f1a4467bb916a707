"""Small pictures of image hits, so a multimodal agent can look at what it found."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nova_mcp_server.models import SearchHit

THUMBNAIL_PX = 512


def hit_image(allowed_roots: Sequence[str | os.PathLike[str]], hit: SearchHit) -> tuple[str, str] | None:
    """A PNG thumbnail (base64, mime) of an image hit whose file is still readable under an allowed root."""
    if hit.modality != "image" or not hit.source or hit.source.startswith(("s3://", "inline:")):
        return None
    path = Path(os.path.realpath(hit.source))
    roots = [Path(os.path.realpath(r)) for r in allowed_roots]
    if not path.is_file() or not any(path.is_relative_to(root) for root in roots):
        return None
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii"), "image/png"
