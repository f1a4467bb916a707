"""Format detection by content (magic bytes), with the file name only as a tie-breaker.

Extensions lie (a screenshot saved as ``notes.txt`` is still a PNG), so the bytes decide the format; the
extension only picks the flavour of text (markdown, html, code) and a few container details. Anything we
cannot embed is refused here with a reason the agent can act on, before any decoding starts.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.schema import Modality

HEAD_BYTES = 4096  # enough for every signature below
TEXT_PROBE_BYTES = 1 << 20  # UTF-8 validity is checked on this prefix; the text reader decodes the rest strictly

# What Nova takes as it is; everything else of that modality is converted first.
NOVA_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
NOVA_AUDIO_FORMATS = frozenset({"mp3", "wav", "ogg"})
NOVA_VIDEO_FORMATS = frozenset({"mp4", "mov", "mkv", "webm", "flv", "mpeg", "wmv", "3gp"})
TEXT_FORMATS = frozenset({"text", "markdown", "html", "code"})

_MIME = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "code": "text/plain",
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
    "wma": "audio/x-ms-wma",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "flv": "video/x-flv",
    "mpeg": "video/mpeg",
    "ts": "video/mp2t",
    "3gp": "video/3gpp",
    "avi": "video/x-msvideo",
    "wmv": "video/x-ms-wmv",
    "ogv": "video/ogg",
}
_MODALITY = {
    **dict.fromkeys(TEXT_FORMATS, Modality.TEXT),
    "pdf": Modality.DOCUMENT,
    **dict.fromkeys(("png", "jpeg", "gif", "webp", "bmp", "tiff"), Modality.IMAGE),
    **dict.fromkeys(("wav", "mp3", "ogg", "flac", "m4a", "aac", "aiff", "wma"), Modality.AUDIO),
    **dict.fromkeys(("mp4", "mov", "mkv", "webm", "flv", "mpeg", "ts", "3gp", "avi", "wmv", "ogv"), Modality.VIDEO),
}

MARKDOWN_EXTS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
HTML_EXTS = frozenset({".html", ".htm", ".xhtml"})
CODE_EXTS = frozenset(
    [
        ".py",
        ".pyi",
        ".ipynb",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".groovy",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hpp",
        ".hh",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".swift",
        ".m",
        ".mm",
        ".r",
        ".jl",
        ".lua",
        ".pl",
        ".pm",
        ".sh",
        ".bash",
        ".zsh",
        ".fish",
        ".ps1",
        ".bat",
        ".sql",
        ".css",
        ".scss",
        ".less",
        ".vue",
        ".svelte",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".xml",
        ".proto",
        ".graphql",
        ".tf",
        ".hcl",
        ".dart",
        ".ex",
        ".exs",
        ".erl",
        ".hs",
        ".ml",
        ".clj",
        ".elm",
        ".zig",
        ".nim",
        ".v",
        ".sv",
        ".vhd",
        ".cmake",
        ".gradle",
        ".dockerfile",
        ".makefile",
    ]
)
CODE_NAMES = frozenset({"dockerfile", "makefile", "cmakelists.txt", "jenkinsfile", "vagrantfile", "gemfile"})

# Recognised but not embeddable: name them so the agent knows what it handed us.
_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\xca\xfe\xba\xbe", "a Java class or Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O binary"),
    (b"\x00asm", "a WebAssembly module"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office (OLE2) document; export it to PDF"),
    (b"8BPS", "a Photoshop document; export it to PNG"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"MThd", "a MIDI file (notes, not sound)"),
    (b"PAR1", "a Parquet file"),
    (b"#!AMR", "AMR speech audio"),
)
_ZIP_FLAVOURS = {
    ".docx": "a Word document (a ZIP archive); export it to PDF",
    ".xlsx": "an Excel workbook (a ZIP archive); export it to PDF or CSV",
    ".pptx": "a PowerPoint deck (a ZIP archive); export it to PDF",
    ".epub": "an EPUB book (a ZIP archive); export it to PDF",
    ".odt": "an OpenDocument file (a ZIP archive); export it to PDF",
    ".jar": "a Java archive",
}


@dataclass(frozen=True)
class Detected:
    """A detected format: its short name (as used in ``SourceRef.format``), modality and MIME type."""

    format: str
    modality: Modality
    mime: str

    @property
    def nova_native(self) -> bool:
        """True when Nova accepts these bytes without conversion."""
        return self.format in NOVA_IMAGE_FORMATS | NOVA_AUDIO_FORMATS | NOVA_VIDEO_FORMATS or self.modality in (
            Modality.TEXT,
            Modality.DOCUMENT,
        )


def detected(fmt: str) -> Detected:
    return Detected(fmt, _MODALITY[fmt], _MIME[fmt])


def sniff_bytes(data: bytes, name: str | None = None) -> Detected:
    """Detect the format of in-memory content; ``name`` (any path-like string) only refines text flavours."""
    if not data:
        raise InvalidInput("zero-byte file: there is nothing to index.")
    binary = _sniff_binary(data[:HEAD_BYTES], name)
    if binary is not None:
        return binary
    _check_text(data[:TEXT_PROBE_BYTES], complete=len(data) <= TEXT_PROBE_BYTES, name=name)
    return detected(_text_flavour(data[:512], name))


def sniff_file(path: Path) -> Detected:
    """Detect a file's format from its first bytes (the first MiB for text)."""
    with path.open("rb") as fh:
        return sniff_head(fh.read(TEXT_PROBE_BYTES + 1), path.name)


def sniff_head(head: bytes, name: str) -> Detected:
    """Detect a file's format from its first ``TEXT_PROBE_BYTES + 1`` bytes (fewer: that was the whole file)."""
    if not head:
        raise InvalidInput(f"zero-byte file: {name} is empty.")
    binary = _sniff_binary(head[:HEAD_BYTES], name)
    if binary is not None:
        return binary
    complete = len(head) <= TEXT_PROBE_BYTES
    _check_text(head[:TEXT_PROBE_BYTES], complete=complete, name=name)
    return detected(_text_flavour(head[:512], name))


def decode_text(data: bytes) -> str:
    """Decode text the way ``sniff`` accepted it: UTF-8 (BOM optional) or UTF-16 with a BOM."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"not valid UTF-8 text (bad byte at offset {exc.start}).", "Save the file as UTF-8 and retry."
        ) from None


def _ext(name: str | None) -> str:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower() if name else ""


def _sniff_binary(head: bytes, name: str | None) -> Detected | None:
    """Return the binary format the signature names, or None when the content may be text."""
    fmt = _signature(head, name)
    if fmt is not None:
        return detected(fmt)
    if head.startswith(b"%!PS-Adobe"):
        raise InvalidInput("not a supported format: looks like a PostScript file; convert it to PDF.")
    return None


def _unsupported(head: bytes, name: str | None) -> str:
    """Name a known non-embeddable format (checked only once the content failed as text)."""
    for magic, what in _UNSUPPORTED:
        if head.startswith(magic):
            return _ZIP_FLAVOURS.get(_ext(name), what) if magic.startswith(b"PK") else what
    return ""


def _signature(head: bytes, name: str | None) -> str | None:
    ext = _ext(name)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] in (b"RIFF", b"RF64") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return "webp"
        if kind == b"WAVE":
            return "wav"
        if kind == b"AVI ":
            return "avi"
    if (
        head.startswith(b"BM")
        and len(head) >= 18
        and int.from_bytes(head[14:18], "little")
        in (
            12,
            40,
            52,
            56,
            64,
            108,
            124,
        )
    ):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head.startswith(b"%PDF-") or _pdf_after_junk(head):
        return "pdf"
    if head.startswith(b"OggS\x00"):
        return "ogv" if b"\x80theora" in head else "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if _looks_utf16(head):
        return None  # a UTF-16 BOM (FF FE) also looks like an MPEG audio frame header
    if (head.startswith(b"ID3") and len(head) > 4 and head[3] in (2, 3, 4)) or _mp3_frame(head):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS: raw AAC frames
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_brand(head)
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"  # old QuickTime files start with an atom other than ftyp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "mpeg"
    if len(head) > 564 and head[0] == head[188] == head[376] == head[564] == 0x47 and b"\x00" in head:
        return "ts"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "wma" if ext == ".wma" else "wmv"  # ASF; Nova takes wmv video
    return None


def _looks_utf16(head: bytes) -> bool:
    if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    try:
        text = head[: len(head) // 2 * 2].decode("utf-16")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\n\r" for ch in text[:256])


def _mp3_frame(head: bytes) -> bool:
    """MPEG audio frame sync: 11 set bits, a valid version, layer, bitrate and sample rate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _pdf_after_junk(head: bytes) -> bool:
    """PDF readers accept a header within the first KiB after binary junk; text that quotes it is not a PDF."""
    at = head.find(b"%PDF-", 1, 1024)
    return at > 0 and any(b == 0 or b >= 0x80 for b in head[:at])


def _iso_brand(head: bytes) -> str:
    brand = head[8:12]
    brands = {head[i : i + 4] for i in range(16, min(len(head), 64), 4)} | {brand}
    if brands & {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"}:
        raise InvalidInput("not a supported format: looks like a HEIC/HEIF image; convert it to JPEG or PNG.")
    if brands & {b"avif", b"avis"}:
        raise InvalidInput("not a supported format: looks like an AVIF image; convert it to PNG or WEBP.")
    if brand == b"qt  ":
        return "mov"
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "m4a"
    if brand.startswith(b"3g"):
        return "3gp"
    return "mp4"


def _check_text(probe: bytes, *, complete: bool, name: str | None) -> None:
    """Accept UTF-8 without NULs (or BOM-marked UTF-16); otherwise say what the bytes look like."""
    if probe.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            codecs.getincrementaldecoder("utf-16")().decode(probe, final=complete)
            return
        except UnicodeDecodeError:
            raise InvalidInput("not a supported format: broken UTF-16 text.", _SUPPORTED_HINT) from None
    bad_at = probe.find(b"\x00")
    if bad_at < 0:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(probe, final=complete)
            return
        except UnicodeDecodeError as exc:
            bad_at = exc.start
    known = _unsupported(probe[:HEAD_BYTES], name)
    if known:
        raise InvalidInput(f"not a supported format: looks like {known}.", _SUPPORTED_HINT)
    raise InvalidInput(
        f"not a supported format: neither a known media type nor UTF-8 text (binary byte at offset {bad_at}).",
        "Text must be UTF-8. " + _SUPPORTED_HINT,
    )


def _text_flavour(head: bytes, name: str | None) -> str:
    ext = _ext(name)
    base = PurePosixPath(name.replace("\\", "/")).name.lower() if name else ""
    if ext in MARKDOWN_EXTS:
        return "markdown"
    if ext in HTML_EXTS:
        return "html"
    if ext in CODE_EXTS or base in CODE_NAMES:
        return "code"
    start = head.lstrip(codecs.BOM_UTF8).lstrip()[:15].lower()
    if ext in ("", ".txt") and start.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


_SUPPORTED_HINT = (
    "Supported: text/Markdown/HTML/code (UTF-8), PDF, PNG/JPEG/GIF/WEBP/BMP/TIFF images, "
    "MP3/WAV/OGG/FLAC/M4A audio, MP4/MOV/MKV/WEBM/FLV/MPEG/WMV/3GP/AVI video."
)
