"""Text into overlapping chunks cut at natural boundaries, with exact character ranges.

Retrieval works best when a chunk holds one idea, so chunks break at a paragraph if one is near the size
limit, else at a sentence end, a line end, or a space, and only as a last resort mid-word. Consecutive chunks
overlap a little so a sentence cut by a boundary is still whole in one of them. Every chunk satisfies
``text[char_start:char_end] == chunk`` so hits can point back into the source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.model import Segment
from nova_mcp_server.schema import Modality

RETRIEVAL_CHUNK_CHARS = 2000  # ~500 tokens: long enough for context, short enough to stay on one topic
OVERLAP_FRACTION = 0.125
SNIPPET_CHARS = 300

_SENTENCE_END = re.compile(r"[.!?。！？…][\"'”’)\]]*\s+")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    text: str


def chunk_size_for(info: EmbedderInfo) -> int:
    """Chunk length for an embedder: ~2000 chars for Nova (8192 allowed), the model's own limit when smaller."""
    return max(1, min(info.max_text_chars, RETRIEVAL_CHUNK_CHARS))


def default_overlap(size: int) -> int:
    return int(size * OVERLAP_FRACTION)


def chunk_text(text: str, size: int, overlap: int | None = None) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``size`` chars overlapping by about ``overlap`` chars.

    Blank text yields no chunks. The overlap is capped below half a chunk so every step makes progress.
    """
    if size < 1:
        raise ValueError("chunk size must be positive")
    overlap = default_overlap(size) if overlap is None else overlap
    overlap = max(0, min(overlap, (size - 1) // 2))
    n = len(text)
    chunks: list[Chunk] = []
    start = _skip_space(text, 0, n)
    while start < n:
        end = n if n - start <= size else _break_at(text, start, start + size)
        end = _trim_end(text, start, end)
        chunks.append(Chunk(start, end, text[start:end]))
        if _skip_space(text, end, n) >= n:
            break
        start = _next_start(text, start, end, overlap)
    return chunks


def _skip_space(text: str, i: int, n: int) -> int:
    while i < n and text[i].isspace():
        i += 1
    return i


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start + 1 and text[end - 1].isspace():
        end -= 1
    return end


def _break_at(text: str, start: int, limit: int) -> int:
    """The best end in (start + size/2, limit]: paragraph, sentence, line, word; else the hard limit."""
    floor = start + (limit - start) // 2
    para = text.rfind("\n\n", floor, limit)
    if para > floor:
        return para
    last_sentence = None
    for match in _SENTENCE_END.finditer(text, floor, limit):
        last_sentence = match
    if last_sentence is not None:
        return last_sentence.end()
    line = text.rfind("\n", floor, limit)
    if line > floor:
        return line
    for i in range(limit, floor, -1):
        if text[i - 1].isspace() or text[i].isspace():
            return i
    return limit


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Step back ``overlap`` chars from ``end``, then forward to the start of a word (or sentence if close)."""
    if overlap == 0:
        return _skip_space(text, end, len(text))
    back = max(start + 1, end - overlap)
    sentence = _SENTENCE_END.search(text, back, end)
    if sentence is not None and sentence.end() < end:
        return sentence.end()
    i = back
    if i > 0 and not text[i - 1].isspace():
        while i < end and not text[i].isspace():
            i += 1
    i = _skip_space(text, i, end)
    return i if i < end else _skip_space(text, end, len(text))


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = _WS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# ---- HTML ------------------------------------------------------------------------------------------------

_BLOCK_TAGS = (
    "address article aside blockquote br dd div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table tr ul title caption summary details"
)
_BLOCK = frozenset(_BLOCK_TAGS.split())
_LINE = frozenset({"br", "li", "tr", "dt", "dd"})  # start a new line, not a new paragraph
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _HIDDEN:
            self.hidden += 1
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCK:
            self.parts.append("\n" if tag in _LINE else "\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            self.parts.append("\n\n")
        elif tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCK and tag not in _LINE:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.hidden and not self.in_title:
            return
        self.parts.append(data if self.pre else _WS.sub(" ", data))


def html_to_text(html: str) -> str:
    """Visible text of an HTML page (title, then body), blocks separated by blank lines."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---- segments --------------------------------------------------------------------------------------------


def text_segments(
    text: str,
    info: EmbedderInfo,
    *,
    modality: Modality = Modality.TEXT,
    page: int | None = None,
    first_ordinal: int = 0,
    chunk_chars: int | None = None,
    overlap_chars: int | None = None,
) -> Iterator[Segment]:
    """Chunks of ``text`` as text segments; char ranges index into ``text`` itself."""
    size = min(chunk_chars or chunk_size_for(info), info.max_text_chars)
    for i, chunk in enumerate(chunk_text(text, size, overlap_chars)):
        yield Segment(
            ordinal=first_ordinal + i,
            modality=modality,
            embed_as="text",
            text=chunk.text,
            page=page,
            char_start=chunk.start,
            char_end=chunk.end,
            snippet=snippet(chunk.text),
        )


def require_text(text: str, what: str = "text") -> str:
    if not text.strip():
        raise InvalidInput(f"empty text: {what} has no visible characters to index.")
    return text
