"""An S3 source's content at segment time: sent by reference when Nova can read it, else downloaded for this call.

Resolution (`ingest.s3`) only HEADs an object, so an unchanged one costs no download. When a changed object
is indexed:

- on the Nova backend, a native image within the sync S3 limit (50 MB) and a text of at most one chunk go as
  one segment naming the object (``s3Location``): Nova reads it, nothing is downloaded;
- everything that needs its bytes here (PDF pages, conversion or transcoding, audio/video windows, chunking
  longer text without the async path, and every object on the local backend) is downloaded into a fresh
  temporary folder of this call, only the version that was HEADed (``IfMatch`` the ETag), and the folder is
  removed when its segments are done, have failed or were abandoned. Two calls on one URI never share a file.

`read_text` reads a text segment's characters back (fetch of a hit whose text Nova read by reference).
"""

from __future__ import annotations

import codecs
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.embedders.nova_inputs import S3_SYNC_MAX_TEXT_CHARS, sync_s3_problem
from nova_mcp_server.errors import LimitExceeded
from nova_mcp_server.ingest.limits import Limits, setting_name
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.s3 import parse_s3_uri, s3_errors
from nova_mcp_server.ingest.sniff import TEXT_PROBE_BYTES, sniff_head
from nova_mcp_server.ingest.text import chunk_size_for
from nova_mcp_server.schema import Modality, nameable_by_s3_location

CHUNK = 1 << 20
Segmenter = Callable[[SourceRef], Iterator[Segment]]


def default_client(client: Any) -> Any:
    """The given S3 client, or boto3's default one (built only when an object is read)."""
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def by_reference(source: SourceRef, info: EmbedderInfo) -> Segment | None:
    """The one segment that names ``source`` for Nova to read, or None when its bytes are needed here."""
    if info.provider != "nova" or source.kind != "s3" or not nameable_by_s3_location(source.uri):
        return None
    image = source.modality is Modality.IMAGE and "image" in info.modalities and source.format is not None
    if image and sync_s3_problem("image", source.format or "", source.size) is None:
        return Segment(
            ordinal=0,
            modality=Modality.IMAGE,
            embed_as="image",
            media_format=source.format,
            s3_uri=source.uri,
            snippet=f"{source.format} image {PurePosixPath(source.uri).name}",
        )
    if source.modality is Modality.TEXT and source.format != "html" and fits_one_text_segment(source, info):
        # Bytes bound characters (UTF-8 takes at least one byte each), so this is within 50,000 characters.
        name = PurePosixPath(source.uri).name
        label = f"{name}: text read by Nova from S3 (fetch reads it back)"
        return Segment(
            ordinal=0, modality=Modality.TEXT, embed_as="text", s3_uri=source.uri, char_start=0, snippet=label
        )
    return None


def fits_one_text_segment(source: SourceRef, info: EmbedderInfo) -> bool:
    """A text object short enough to be one chunk (so one vector by reference loses nothing to chunking)."""
    return source.size <= min(chunk_size_for(info), S3_SYNC_MAX_TEXT_CHARS)


def s3_segments(
    source: SourceRef, info: EmbedderInfo, segment: Segmenter, *, client: Any, folder: Path, limits: Limits
) -> Iterator[Segment]:
    """Segments of an S3 source: by reference when possible, else cut from a per-call download."""
    ref = by_reference(source, info)
    if ref is not None:
        yield ref
        return
    with downloaded(source, client=client, folder=folder, limits=limits) as local:
        yield from segment(local)


@contextmanager
def downloaded(source: SourceRef, *, client: Any, folder: Path, limits: Limits) -> Iterator[SourceRef]:
    """``source`` as a local file in a temporary folder of its own, removed on exit (success or failure).

    Only the HEADed version is read (``IfMatch`` its ETag: a rewrite meanwhile fails this source alone), at
    most ``max_file_bytes``; the bytes are sniffed again, so a key named ``.png`` holding a JPEG is read as one.
    """
    bucket, key = parse_s3_uri(source.uri)
    folder.mkdir(parents=True, exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix="s3-", dir=folder))
    try:
        dest = where / "object"  # a fixed name: keys never become paths
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if source.etag:
            params["IfMatch"] = f'"{source.etag}"'
        size = 0
        with s3_errors(source.uri, "GetObject"):
            body = default_client(client).get_object(**params)["Body"]
            with dest.open("wb") as out:
                while chunk := body.read(CHUNK):
                    size += len(chunk)
                    if size > limits.max_file_bytes:
                        raise LimitExceeded(
                            f"{source.uri} is over {limits.max_file_bytes:,} bytes; larger files are not read.",
                            f"Split it, or raise {setting_name('max_file_bytes')}.",
                        )
                    out.write(chunk)
        with dest.open("rb") as fh:
            found = sniff_head(fh.read(TEXT_PROBE_BYTES + 1), PurePosixPath(key).name)
        yield source.model_copy(
            update={
                "local_path": dest,
                "root": where,
                "identity": None,  # our own private file: nothing else writes it
                "format": found.format,
                "modality": found.modality,
                "size": size,
            }
        )
    finally:
        shutil.rmtree(where, ignore_errors=True)


def read_text(client: Any, uri: str, char_start: int | None, char_end: int | None, *, etag: str | None = None) -> str:
    """Characters ``[char_start, char_end)`` of a UTF-8 text object (the whole text when ``char_end`` is None).

    Character positions are not byte offsets, so this reads from the start, and no further than the end can
    lie (4 bytes a character): a ranged GetObject, stopped as soon as ``char_end`` characters are decoded.
    """
    bucket, key = parse_s3_uri(uri)
    start = max(0, char_start or 0)
    end = char_end if char_end is not None else S3_SYNC_MAX_TEXT_CHARS  # a whole-object segment is that short
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{4 * end + 3}"}
    if etag:
        params["IfMatch"] = f'"{etag}"'
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    text = ""
    with s3_errors(uri, "GetObject"):
        body = default_client(client).get_object(**params)["Body"]
        try:
            while chunk := body.read(CHUNK):
                text += decoder.decode(chunk)
                if len(text) >= end:
                    break
            else:
                text += decoder.decode(b"", final=True)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
    return text[start:end]
