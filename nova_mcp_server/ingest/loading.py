"""One open per file: the worker that indexes a source opens it once, hashes it, and segments those bytes.

Resolution (`sources`) only looks at a file (its real path under a root, ``lstat``: a regular file, its size):
a descriptor per resolved file would break a call over thousands of files under an open-file limit of 256.
The per-source worker then calls `open_source`, which

1. opens the file beneath its root without following any link (`opening.open_regular`): a FIFO, device or
   socket is refused with what it is, a link that appeared since the root check is refused, a vanished file
   is NotFound; a file replaced by another regular file (an editor's save) is simply read as it is now;
2. checks the size limits on the open file's ``fstat``, sniffs the format from its head and hashes every byte;
3. hands back that same open file, at offset 0, for the skip-if-unchanged decision and for segmenting.

Nothing is committed unless the bytes segmented are the bytes hashed. Readers that go front to back (text,
HTML, images, the upload of long media) read through `Opened.reader`, which hashes what it hands out and fails
the source as soon as the count reaches the hashed size with another digest (or the file ends early or runs
on). Readers that seek (PDFium, FFmpeg) get `Opened.raw`, and `Opened.verify` hashes the same descriptor again
once they are done. Either way ``fstat`` must still show the hashed size and mtime. A file that changes
mid-run fails alone, with `changed`'s reason.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest import opening
from nova_mcp_server.ingest.limits import Limits, check_size
from nova_mcp_server.ingest.model import SourceRef
from nova_mcp_server.ingest.opening import FileIdentity
from nova_mcp_server.ingest.sniff import TEXT_PROBE_BYTES, Detected, sniff_head
from nova_mcp_server.schema import Modality

HASH_CHUNK = 1 << 20

# Test seam: called with the real path once the open file is hashed, before anything reads it again. Rewriting
# the file here is the race between hashing and segmenting, made deterministic.
AFTER_HASH: Callable[[Path], None] | None = None


def changed(display: str) -> InvalidInput:
    return InvalidInput(
        f"{display} changed while it was being read (its bytes, size or time differ from the version that was "
        "hashed); it was not indexed.",
        "Index it again once nothing is writing it.",
    )


@dataclass
class Opened:
    """A source opened once: what it is (sniffed and hashed from the open file) and the file itself."""

    source: SourceRef  # as resolved: uri, display, kind
    format: str
    modality: Modality
    size: int
    content_hash: str
    fh: BinaryIO | None  # None for an S3 object resolved by HeadObject: its bytes are fetched when segmented
    identity: FileIdentity | None  # fstat once hashed; None for inline bytes, which cannot change
    proven: bool = False  # a reader handed out exactly the hashed bytes, front to back

    @property
    def display(self) -> str:
        return self.source.display

    @property
    def uri(self) -> str:
        return self.source.uri

    def raw(self) -> BinaryIO:
        """The open file at offset 0, for readers that seek; call `verify` when they are done."""
        fh = self._file()
        fh.seek(0)
        return fh

    def reader(self) -> BinaryIO:
        """A front-to-back reader from offset 0 that checks, at the hashed size, that it gave the hashed bytes."""
        self._file().seek(0)
        return cast(BinaryIO, _Verifying(self))

    def _file(self) -> BinaryIO:
        if self.fh is None:
            raise InvalidInput(f"{self.display} is read from S3 when it is segmented, not from a local file.")
        return self.fh

    def verify(self) -> None:
        """InvalidInput (`changed`) unless the file is still the version hashed: same fstat, and the same bytes
        (hashed again from this descriptor unless a `reader` already proved them)."""
        if self.identity is None or self.fh is None:
            return
        if FileIdentity.of(os.fstat(self.fh.fileno())) != self.identity:
            raise changed(self.display)
        if not self.proven:
            self.fh.seek(0)
            size, digest = _hash(self.fh, b"")
            if (size, digest) != (self.size, self.content_hash):
                raise changed(self.display)
            self.proven = True

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_source(source: SourceRef, limits: Limits | None = None) -> Opened:
    """Open ``source`` once (see the module docstring); the caller closes the result (it is a context manager).

    Raises NotFound, AccessDenied, InvalidInput or LimitExceeded with the reason, never a bare OSError.
    """
    limits = limits or Limits()
    if source.local_path is None:
        if source.format is None or source.modality is None or source.content_hash is None:
            raise InvalidInput(f"{source.display} has neither a file nor inline bytes.")
        if source.kind == "s3" and source.data is None:  # HeadObject named its version; nothing local to open
            return Opened(source, source.format, source.modality, source.size, source.content_hash, None, None)
        if source.data is None:
            raise InvalidInput(f"{source.display} has neither a file nor inline bytes.")
        data = source.data
        return Opened(source, source.format, source.modality, len(data), source.content_hash, io.BytesIO(data), None)
    path = source.local_path
    fd = opening.open_regular(path, source.root or path.parent, source.display, purpose="read")
    fh = os.fdopen(fd, "rb")
    try:
        opened = _hashed(source, path, fh, limits)
        if AFTER_HASH is not None:
            AFTER_HASH(path)
        return opened
    except OSError as exc:
        fh.close()
        raise InvalidInput(f"{source.display}: cannot read ({exc.strerror or exc}).") from None
    except BaseException:
        fh.close()
        raise


def _hashed(source: SourceRef, path: Path, fh: BinaryIO, limits: Limits) -> Opened:
    before = os.fstat(fh.fileno())
    check_size(before.st_size, source.display, limits)
    head = fh.read(TEXT_PROBE_BYTES + 1)
    found: Detected = sniff_head(head, path.name)
    check_size(before.st_size, source.display, limits, text=found.modality is Modality.TEXT)
    size, digest = _hash(fh, head)
    after = os.fstat(fh.fileno())
    identity = FileIdentity.of(after)
    if identity != FileIdentity.of(before) or size != after.st_size:
        raise changed(source.display)
    fh.seek(0)
    return Opened(source, found.format, found.modality, size, digest, fh, identity)


def _hash(fh: BinaryIO, head: bytes) -> tuple[int, str]:
    """Size and sha256 of ``head`` then the rest of ``fh``, streamed: large media never sit in memory."""
    digest, size = hashlib.sha256(head), len(head)
    while chunk := fh.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class _Verifying(io.RawIOBase):
    """Reads the opened file front to back, hashing what it hands out; `changed` the moment it differs."""

    def __init__(self, opened: Opened) -> None:
        super().__init__()
        self._opened = opened
        self._digest = hashlib.sha256()
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        opened = self._opened
        count = opened._file().readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._digest.update(memoryview(buffer)[:count])
            self._position += count
        if self._position > opened.size or (not count and self._position < opened.size):
            raise changed(opened.display)  # it grew or shrank since it was hashed
        if count and self._position == opened.size:
            if self._digest.hexdigest() != opened.content_hash:
                raise changed(opened.display)
            opened.proven = True
        return int(count or 0)

    def close(self) -> None:  # the open file belongs to the Opened, which closes it
        super().close()
