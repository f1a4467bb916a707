"""Reading a hit: `fetch` returns a segment in full, its neighbours, its page or time range, and a picture.

Search answers with references (compact hits); an agent reads what matters with this. Neighbours are found
by deterministic key (ordinal +- N), never by a filtered query, so they are exact on every backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from nova_mcp_server import keys, thumbnails
from nova_mcp_server.errors import NotFound
from nova_mcp_server.models import FetchResult, Locator, Passage
from nova_mcp_server.services.catalog import Catalog, item_uri, parse_item_ref
from nova_mcp_server.services.threads import off_loop
from nova_mcp_server.stores.base import MAX_GET, VectorStore

MAX_CONTEXT = 10
SourceText = Callable[[str, int | None, int | None], str]  # (s3 uri, char_start, char_end) -> those characters
PAGE_WINDOW = 60  # ordinals searched either side for the other segments of a PDF page


class Reading:
    def __init__(
        self,
        store: VectorStore,
        catalog: Catalog,
        allowed_roots: Sequence[str | os.PathLike[str]],
        *,
        default_index: str,
        source_text: SourceText | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.allowed_roots = list(allowed_roots)
        self.default_index = default_index
        self.source_text = source_text  # reads an S3 text's characters (segments Nova read by reference)

    async def fetch(
        self,
        ref: str,
        *,
        index: str | None = None,
        context: int = 0,
        include_image: bool = False,
        roots: Sequence[str | os.PathLike[str]] | None = None,
    ) -> tuple[FetchResult, bytes | None]:
        """The item and, when asked and possible, a PNG of its image, page or frame (under the byte cap)."""
        name, key = parse_item_ref(ref, index or self.default_index)  # a URI names its own index
        info = await self.catalog.info(name)
        context = max(0, min(MAX_CONTEXT, context))
        found = await off_loop(self.store.get_vectors, name, [key], return_metadata=True)
        if not found:
            raise NotFound(f"No item '{key}' in index '{name}'.", "Use the `uri` or `key` of a search hit.")
        meta = dict(found[0].metadata or {})
        result = FetchResult(
            index=name,
            key=key,
            uri=item_uri(name, key),
            source=meta.get("source"),
            modality=meta.get("modality"),
            format=meta.get("format"),
            text=meta.get(keys.TEXT_KEY) or meta.get(keys.SNIPPET_KEY),
            metadata={k: v for k, v in meta.items() if k not in keys.RESERVED_KEYS},
            **Locator.of(meta).model_dump(),
        )
        if keys.TEXT_KEY not in info.non_filterable_keys and meta.get(keys.SNIPPET_KEY):
            result.note = "this index predates full-text storage: text is the stored snippet (re-index for full text)"
        this = _passage(name, key, meta)
        if self.source_text is not None and _read_back(meta):
            result.text = this.text = await off_loop(self.source_text, meta["source"], this.char_start, this.char_end)
        sid, ordinal = key.rsplit("-", 1)[0], keys.ordinal_of(key)
        window = max(context, PAGE_WINDOW if result.page is not None else 0, 30 if result.start_s is not None else 0)
        around = await self._around(name, sid, ordinal, window)
        near = [p for p in around if abs(keys.ordinal_of(p.key) - ordinal) <= context and p.key != key]
        result.context = near
        if context:
            result.joined_text = join_by_chars([p for p in [*near, this] if p.text]) or None
        if result.page is not None:
            on_page = [p for p in [*around, this] if p.page == result.page and p.text]
            result.page_text = join_by_chars(list({p.key: p for p in on_page}.values())) or None
        if result.start_s is not None:
            said = [p for p in [*around, this] if p.text and p.modality in ("video", "audio") and _overlaps(p, result)]
            result.transcript = " ".join(dict.fromkeys(p.text or "" for p in said)) or None
        picture = await off_loop(self._picture, result, roots) if include_image else None
        if include_image and picture is None:
            result.note = (
                "no picture: the source is not a readable local image, PDF page or video under an allowed root"
            )
        return result, picture

    async def _around(self, index: str, sid: str, ordinal: int, window: int) -> list[Passage]:
        if window <= 0:
            return []
        wanted = [keys.vector_key(sid, n) for n in range(max(0, ordinal - window), ordinal + window + 1)]
        out: list[Passage] = []
        for start in range(0, len(wanted), MAX_GET):
            found = await off_loop(self.store.get_vectors, index, wanted[start : start + MAX_GET], return_metadata=True)
            out += [_passage(index, r.key, r.metadata or {}) for r in found]
        return sorted(out, key=lambda p: keys.ordinal_of(p.key))

    def _picture(self, result: FetchResult, roots: Sequence[str | os.PathLike[str]] | None) -> bytes | None:
        picture, shows = self.picture_of(result.source, result.modality, result, roots=roots)
        result.image = shows if picture is not None else None  # what an attached picture shows; none, no claim
        return picture

    def picture_of(
        self,
        source: str | None,
        modality: str | None,
        where: Locator,
        max_bytes: int = thumbnails.MAX_IMAGE_BYTES,
        *,
        roots: Sequence[str | os.PathLike[str]] | None = None,
    ) -> tuple[bytes | None, str | None]:
        """A PNG of an image, a PDF page or a video frame, read under the allowed roots; and what it shows."""
        with thumbnails.open_allowed(source, self.allowed_roots if roots is None else roots) as f:
            if f is None:
                return None, None
            if modality == "image":
                return thumbnails.image_png(f, max_bytes), f"the image {source}"
            if where.page is not None and f.read(5) == b"%PDF-":
                f.seek(0)
                return thumbnails.page_png(f, where.page, max_bytes), f"page {where.page} of {source}"
            f.seek(0)
            if modality == "video" and where.start_s is not None:
                shows = f"the frame at {where.start_s:g} s of {source}"
                return thumbnails.frame_png(f, where.start_s, max_bytes), shows
        return None, None


def _read_back(meta: dict[str, Any]) -> bool:
    """A text segment of an S3 object that Nova read by reference: its text is in the object, not the record."""
    source = str(meta.get("source") or "")
    return meta.get("modality") == "text" and not meta.get(keys.TEXT_KEY) and source.startswith("s3://")


def _passage(index: str, key: str, meta: dict[str, Any]) -> Passage:
    return Passage(
        key=key,
        uri=item_uri(index, key),
        modality=meta.get("modality"),
        text=meta.get(keys.TEXT_KEY),
        snippet=meta.get(keys.SNIPPET_KEY),
        **Locator.of(meta).model_dump(),
    )


def _overlaps(a: Locator, b: Locator) -> bool:
    """Whether two time ranges share a moment (a point range counts as the moment itself)."""
    if a.start_s is None or b.start_s is None:
        return False
    return a.start_s <= (b.end_s or b.start_s) and (a.end_s or a.start_s) >= b.start_s


def join_by_chars(passages: Sequence[Passage]) -> str:
    """Passages of one source in order, the overlap between neighbouring chunks written once.

    A PDF's character ranges count within each page, so pages are joined in turn, each from its own start.
    """
    ordered = sorted(passages, key=lambda p: (p.page or 0, p.char_start if p.char_start is not None else 0, p.key))
    out = ""
    end: int | None = None
    page: int | None = None
    for p in ordered:
        text = p.text or ""
        if p.page != page:
            end, page = None, p.page
        if end is not None and p.char_start is not None and p.char_start < end:
            text = text[end - p.char_start :]
        elif out:
            out += "\n"
        out += text
        if p.char_end is not None:
            end = max(end or 0, p.char_end)
    return out
