"""S3 sources: ``s3://bucket/key`` objects and ``s3://bucket/prefix/`` listings, resolved into `SourceRef`s.

Kept apart from `sources` (which owns local files, inline content and the resolution loop) so the S3 rules
live in one place: the bucket allow-list, prefix walking with the same include/exclude and hidden-name rules
as folders, and how botocore failures become errors the agent can act on.

An object is resolved by HeadObject alone (its version, size and type), so an unchanged object is skipped
with no byte read; `s3_objects` decides at segment time whether Nova reads it by reference or this call
downloads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from nova_mcp_server.errors import AccessDenied, InvalidInput, NotFound, NovaError
from nova_mcp_server.ingest.model import SourceFailure, SourceRef
from nova_mcp_server.ingest.sniff import (
    CODE_EXTS,
    CODE_NAMES,
    HTML_EXTS,
    MARKDOWN_EXTS,
    TEXT_PROBE_BYTES,
    Detected,
    detected,
    sniff_head,
)

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

# (size, display, format) -> raises LimitExceeded when an object passes the per-file limit
CheckSize = Callable[[int, str, Detected | None], None]


class S3Sources:
    """Resolves S3 URIs for one `resolve_sources` call; ``wanted(rel)`` applies the call's include/exclude
    patterns to a key relative to the listed prefix."""

    def __init__(
        self,
        *,
        client: Any,
        buckets: Sequence[str],
        recursive: bool,
        wanted: Callable[[str], bool],
        check_size: CheckSize,
    ) -> None:
        self._s3 = client
        self.buckets = list(buckets)
        self.recursive = recursive
        self.wanted = wanted
        self.check_size = check_size

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def item(self, uri: str) -> Iterator[SourceRef | SourceFailure]:
        bucket, key = parse_s3_uri(uri)
        if self.buckets and bucket not in self.buckets:
            raise AccessDenied(
                f"bucket '{bucket}' is not in the allowed buckets.",
                "Allowed buckets: " + ", ".join(self.buckets) + " (NOVA_MCP_ALLOWED_BUCKETS).",
            )
        if key == "" or key.endswith("/"):
            yield from self._prefix(bucket, key)
        else:
            yield self._object(bucket, key, f"s3://{bucket}/{key}")

    def _prefix(self, bucket: str, prefix: str) -> Iterator[SourceRef | SourceFailure]:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if not self.recursive:
            params["Delimiter"] = "/"
        with s3_errors(f"s3://{bucket}/{prefix}"):
            pages = list(self.s3.get_paginator("list_objects_v2").paginate(**params))
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                rel = key[len(prefix) :]
                if not rel or key.endswith("/") or any(part.startswith(".") for part in rel.split("/")):
                    continue
                if not self.wanted(rel):
                    continue
                uri = f"s3://{bucket}/{key}"
                try:
                    yield self._object(bucket, key, uri)
                except NovaError as exc:
                    yield SourceFailure(source=uri, reason=exc.text)

    def _object(self, bucket: str, key: str, uri: str) -> SourceRef:
        """HeadObject only: the version (checksum or ETag), size and type, so an unchanged object costs one
        HEAD and no download. The type comes from the key's extension; a key without a known one is sniffed
        from a ranged read of its first MiB (keys never become paths)."""
        try:
            with s3_errors(uri, "HeadObject"):
                head = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except NotFound:
            self._bucket_exists(bucket, uri)  # HEAD answers a bare 404 for a missing object and a missing bucket
            raise
        size = int(head.get("ContentLength") or 0)
        if size == 0:
            raise InvalidInput(f"zero-byte file: {uri} is empty.")
        found = format_of_key(key)
        if found is None:
            with s3_errors(uri, "GetObject"):
                probe = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{TEXT_PROBE_BYTES}")["Body"].read()
            found = sniff_head(probe, PurePosixPath(key).name)
        self.check_size(size, uri, found)
        etag = str(head.get("ETag") or "").strip('"') or None
        return SourceRef(
            uri=uri,
            display=uri,
            kind="s3",
            format=found.format,
            modality=found.modality,
            size=size,
            content_hash=object_version(head, uri),
            etag=etag,
        )

    def _bucket_exists(self, bucket: str, uri: str) -> None:
        """Raise "the bucket does not exist" when it does not (asked only after a HEAD said 404)."""
        try:
            with s3_errors(uri, "HeadBucket"):
                self.s3.head_bucket(Bucket=bucket)
        except NotFound:
            raise NotFound(f"{uri}: the bucket does not exist.") from None
        except NovaError:
            return  # cannot tell (e.g. no s3:ListBucket): the object's own 404 stands


def object_version(head: Mapping[str, Any], uri: str) -> str:
    """What names this version of an object: its SHA-256 checksum when S3 keeps one, else its ETag.

    Compared with the committed marker's ``content_hash``, so an unchanged object is skipped without a byte read.
    """
    if checksum := head.get("ChecksumSHA256"):
        return f"s3-sha256:{checksum}"
    if etag := str(head.get("ETag") or "").strip('"'):
        return f"s3-etag:{etag}"
    raise InvalidInput(f"{uri}: S3 reported neither an ETag nor a checksum, so changes could not be detected.")


_EXT_FORMATS = {
    **{ext: "text" for ext in (".txt", ".text", ".csv", ".tsv", ".log", ".rst", ".json", ".jsonl", ".yaml", ".yml")},
    ".pdf": "pdf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gif": "gif",
    ".webp": "webp",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".mp3": "mp3",
    ".wav": "wav",
    ".ogg": "ogg",
    ".flac": "flac",
    ".m4a": "m4a",
    ".aac": "aac",
    ".aif": "aiff",
    ".aiff": "aiff",
    ".wma": "wma",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "mkv",
    ".webm": "webm",
    ".flv": "flv",
    ".mpeg": "mpeg",
    ".mpg": "mpeg",
    ".ts": "ts",
    ".3gp": "3gp",
    ".avi": "avi",
    ".wmv": "wmv",
    ".ogv": "ogv",
}


def format_of_key(key: str) -> Detected | None:
    """The format an S3 key's name declares (checked against the bytes whenever they are downloaded), or None."""
    name = PurePosixPath(key).name.lower()
    ext = PurePosixPath(name).suffix
    if ext in MARKDOWN_EXTS:
        return detected("markdown")
    if ext in HTML_EXTS:
        return detected("html")
    if ext in CODE_EXTS or name in CODE_NAMES:
        return detected("code")
    fmt = _EXT_FORMATS.get(ext)
    return detected(fmt) if fmt else None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); InvalidInput with the expected shape when malformed."""
    shape = "Use s3://bucket/key (or s3://bucket/prefix/ for a folder)."
    if not uri.startswith("s3://"):
        raise InvalidInput(f"malformed S3 URI '{uri}': it must start with 's3://'.", shape)
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidInput(f"malformed S3 URI '{uri}': no bucket name.", shape)
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidInput(
            f"malformed S3 URI '{uri}': '{bucket}' is not a valid bucket name "
            "(3-63 lowercase letters, digits, dots or hyphens).",
            shape,
        )
    if len(key.encode()) > 1024:
        raise InvalidInput(f"malformed S3 URI '{uri}': the key is longer than 1024 bytes.")
    return bucket, key


_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


@contextmanager
def s3_errors(uri: str, operation: str = "GetObject") -> Iterator[None]:
    """Turn botocore failures into NovaErrors that name the object: a missing object or bucket and a version
    that changed meanwhile in our words, everything else through `aws_errors.translate` (which scrubs secrets
    and presigned URLs and names the IAM action, e.g. s3:GetObject)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from nova_mcp_server.aws_errors import S3, error_code, translate

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        code = error_code(exc)
        if code in _MISSING:
            raise NotFound(f"{uri} does not exist.") from None
        if code == "NoSuchBucket":
            raise NotFound(f"{uri}: the bucket does not exist.") from None
        if code in ("PreconditionFailed", "412"):
            raise InvalidInput(
                f"{uri} changed after it was checked; it was not indexed.", "Index it again once it is written."
            ) from None
        raise translate(exc, service=S3, operation=operation, resource=uri) from None
