"""Inline content (text, base64 data, ``data:`` URIs) into `SourceRef`s: the bytes ride in the call, so they
are sniffed and hashed here, and identified by that hash (``inline:<sha256 prefix>``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from urllib.parse import unquote_to_bytes

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.model import SourceRef
from nova_mcp_server.ingest.sniff import TEXT_FORMATS, Detected, detected, sniff_bytes

# Inline text rides in one MCP message and is identified by its hash, so an edited copy never replaces the
# old one; past this size a file is the right vehicle (chunked at any size, replaced in place when it changes).
MAX_INLINE_TEXT_BYTES = 1 << 20
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?P<params>(;[\w\-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


def inline_text(text: str, fmt: str | None) -> SourceRef:
    flavour = (fmt or "text").lower()
    flavour = {"md": "markdown", "htm": "html", "txt": "text", "plain": "text"}.get(flavour, flavour)
    if flavour not in TEXT_FORMATS:
        raise InvalidInput(f"inline text format '{fmt}' is not one of text, markdown, html, code.")
    if not text.strip():
        raise InvalidInput("empty text: give some non-whitespace text.")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "inline text is not valid Unicode (it holds an unpaired surrogate such as \\ud800).",
            "Send the text as valid UTF-8 (pair the surrogates, or drop them).",
        ) from None
    if len(data) > MAX_INLINE_TEXT_BYTES:
        raise InvalidInput(
            f"inline text is {len(data):,} bytes; at most {MAX_INLINE_TEXT_BYTES:,} are taken inline.",
            "Save it as a file under an allowed root and index the path (a file is chunked whatever its size, "
            "and re-indexing it replaces its old chunks), or send it in parts.",
        )
    return _inline(data, "inline text", detected(flavour))


def inline_data(b64: str, fmt: str | None) -> SourceRef:
    try:
        data = base64.b64decode("".join(b64.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            f"data is not valid base64 ({exc}).",
            "Send the bytes base64-encoded (standard alphabet, '=' padding), or pass a path or s3_uri instead.",
        ) from None
    hint = f"inline.{fmt.lower().lstrip('.')}" if fmt else None
    found = sniff_bytes(data, hint)
    return _inline(data, f"inline {found.format} data", found)


def data_uri(uri: str) -> SourceRef:
    match = _DATA_URI.match(uri)
    if match is None:
        raise InvalidInput("malformed data URI.", "Use data:<mime>;base64,<data>.")
    payload = uri[match.end() :]
    mime = (match.group("mime") or "text/plain").lower()
    fmt = mime.split("/", 1)[1].split("+")[0]
    if match.group("b64"):
        return inline_data(payload, {"mpeg": "mp3" if mime.startswith("audio") else "mpeg"}.get(fmt, fmt))
    data = unquote_to_bytes(payload)
    found = sniff_bytes(data, f"inline.{fmt}")
    return _inline(data, f"inline {found.format} data", found)


def _inline(data: bytes, display: str, found: Detected) -> SourceRef:
    digest = hashlib.sha256(data).hexdigest()
    return SourceRef(
        uri=f"inline:{digest[:32]}",
        display=display,
        kind="inline",
        format=found.format,
        modality=found.modality,
        size=len(data),
        content_hash=digest,
        data=data,
    )
