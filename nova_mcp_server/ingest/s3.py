"""S3 sources: ``s3://bucket/key`` objects and ``s3://bucket/prefix/`` listings, resolved into `SourceRef`s.

Kept apart from `sources` (which owns local files, inline content and the resolution loop) so the S3 rules
live in one place: the bucket allow-list, prefix walking with the same include/exclude and hidden-name rules
as folders, how an object is fetched, and how botocore failures become errors the agent can act on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from nova_mcp_server.errors import AccessDenied, InvalidInput, NotFound, NovaError
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.model import SourceFailure, SourceRef

HASH_CHUNK = 1 << 20
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

# (path, root it is opened beneath, display, kind, uri) -> the hashed, sniffed SourceRef of a local file
ReadLocal = Callable[[Path, Path, str, str, str], SourceRef]
# (size, display) -> raises LimitExceeded when a download passes the per-file limit
CheckSize = Callable[[int, str], None]


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
        limits: Limits,
        download_dir: Path,
        read_local: ReadLocal,
        check_size: CheckSize,
    ) -> None:
        self._s3 = client
        self.buckets = list(buckets)
        self.recursive = recursive
        self.wanted = wanted
        self.limits = limits
        self.download_dir = download_dir
        self.read_local = read_local
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
                except OSError as exc:
                    yield SourceFailure(source=uri, reason=f"cannot write the download: {exc.strerror or exc}")

    def _object(self, bucket: str, key: str, uri: str) -> SourceRef:
        """Download to ``download_dir/<hash of uri>/<name>`` (keys never become paths), hashing on the way."""
        name = PurePosixPath(key).name or "object"
        dest = self.download_dir / hashlib.sha256(uri.encode()).hexdigest()[:24] / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with s3_errors(uri):
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            with dest.open("wb") as out:
                for chunk in iter(lambda: body.read(HASH_CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    if size > self.limits.max_file_bytes:
                        out.close()
                        dest.unlink(missing_ok=True)
                        self.check_size(size, uri)
                    out.write(chunk)
        try:
            ref = self.read_local(dest, dest.parent, uri, "s3", uri)
        except NovaError:
            dest.unlink(missing_ok=True)
            raise
        if ref.content_hash != digest.hexdigest():
            raise InvalidInput(f"{uri}: the download changed on disk before it was read; index it again.")
        return ref


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


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Turn botocore failures into NovaErrors that name the object."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise AccessDenied(f"{uri}: no AWS credentials.", "Configure a profile or AWS_* variables.") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or code
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NotFound(f"{uri} does not exist.") from None
        if code == "NoSuchBucket":
            raise NotFound(f"{uri}: the bucket does not exist.") from None
        if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise AccessDenied(f"{uri}: access denied by S3 ({message}).") from None
        raise InvalidInput(f"{uri}: S3 refused the request ({code}: {message}).") from None
    except BotoCoreError as exc:
        raise InvalidInput(f"{uri}: S3 request failed ({exc}).") from None
