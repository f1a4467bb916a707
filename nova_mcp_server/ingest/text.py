"""Text into overlapping chunks cut at natural boundaries, with exact character ranges.

Retrieval works best when a chunk holds one idea, so chunks break at a paragraph if one is near the size
limit, else at a sentence end, a line end, or a space, and only as a last resort mid-word. Consecutive chunks
overlap a little so a sentence cut by a boundary is still whole in one of them. Every chunk satisfies
``text[char_start:char_end] == chunk`` so hits can point back into the source.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import BinaryIO

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
    return list(iter_chunks([text], size, overlap))


def iter_chunks(pieces: Iterable[str], size: int, overlap: int | None = None) -> Iterator[Chunk]:
    """The chunks `chunk_text` makes of ``"".join(pieces)``, produced as the pieces arrive.

    Only about a chunk of look-ahead and one piece are held, so a 50 MB file is cut in constant memory; the
    offsets are into the whole text. Every decision reads the same characters the whole-text cut would.
    """
    if size < 1:
        raise ValueError("chunk size must be positive")
    overlap = default_overlap(size) if overlap is None else overlap
    overlap = max(0, min(overlap, (size - 1) // 2))
    source = iter(pieces)
    buf, base, eof = "", 0, False  # buf holds text[base:base + len(buf)]

    def fill(upto: int) -> None:
        nonlocal buf, eof
        parts, have = [buf], base + len(buf)
        while not eof and have < upto:
            piece = next(source, None)
            if piece is None:
                eof = True
            else:
                parts.append(piece)
                have += len(piece)
        if len(parts) > 1:
            buf = "".join(parts)

    def skip(i: int) -> int:
        """Absolute index of the first non-space at or after ``i`` (the text's length if none)."""
        while True:
            fill(i + 1)
            j = _skip_space(buf, i - base, len(buf))
            if j < len(buf) or eof:
                return base + j
            i = base + j

    start = skip(0)
    while True:
        fill(start + size + 1)
        s = start - base
        if s >= len(buf):
            return
        end = len(buf) if eof and len(buf) - s <= size else _break_at(buf, s, s + size)
        end = _trim_end(buf, s, end)
        yield Chunk(start, base + end, buf[s:end])
        if skip(base + end) >= base + len(buf):  # only blanks follow: done (skip read up to a non-space)
            return
        start = base + _next_start(buf, s, end, overlap)
        if start - base > max(1 << 16, len(buf) // 2):  # drop what no later chunk can reach
            buf, base = buf[start - base :], start


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
    yield from chunk_segments(
        [text],
        info,
        modality=modality,
        page=page,
        first_ordinal=first_ordinal,
        chunk_chars=chunk_chars,
        overlap_chars=overlap_chars,
    )


def chunk_segments(
    pieces: Iterable[str],
    info: EmbedderInfo,
    *,
    modality: Modality = Modality.TEXT,
    page: int | None = None,
    first_ordinal: int = 0,
    chunk_chars: int | None = None,
    overlap_chars: int | None = None,
) -> Iterator[Segment]:
    """Chunks of the text ``pieces`` make, as text segments, produced lazily as the pieces arrive."""
    size = min(chunk_chars or chunk_size_for(info), info.max_text_chars)
    for i, chunk in enumerate(iter_chunks(pieces, size, overlap_chars)):
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


# ---- streaming a file ------------------------------------------------------------------------------------

READ_BLOCK = 1 << 20


def decoded_pieces(fh: BinaryIO, block: int = READ_BLOCK) -> Iterator[str]:
    """Text of a binary stream, decoded block by block the way `sniff.decode_text` decodes it whole."""
    first = fh.read(block)
    utf16 = first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    decoder = codecs.getincrementaldecoder("utf-16" if utf16 else "utf-8-sig")()
    offset, data = 0, first
    while True:
        final = len(data) < block
        try:
            text = decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"not valid {'UTF-16' if utf16 else 'UTF-8'} text (bad byte near offset {offset + exc.start}).",
                "Save the file as UTF-8 and retry.",
            ) from None
        if text:
            yield text
        if final:
            return
        offset += len(data)
        data = fh.read(block)
