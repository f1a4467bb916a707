"""S3 sources at the ingestion boundary: HEAD at resolution, per-call downloads, text read back, errors.

moto plays S3; every call the code under test makes is recorded from botocore's own events, so "no
download" is checked on the wire, not on our code's word.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from fixtures.media import make_image

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.model import SourceRef
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.ingest.s3_objects import downloaded, read_text
from nova_mcp_server.ingest.sources import resolve_sources

BUCKET = "media-bucket"
LOCAL = EmbedderInfo(
    provider="local", model="m", dimensions=[8], default_dimension=8, modalities=["text", "image"], max_text_chars=512
)
NOVA = LOCAL.model_copy(update={"provider": "nova", "max_text_chars": 8192})


class Recorder:
    """The S3 operations a client sent (with their parameters), from botocore's before-call event."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, dict(params.get("headers", {}))))

    @property
    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def resolve(s3: Any, tmp_path: Path, *uris: str) -> list[SourceRef]:
    sources, failures = resolve_sources(list(uris), allowed_roots=[], s3_client=s3, download_dir=tmp_path / "dl")
    assert failures == []
    return sources


def test_resolution_heads_the_object_and_reads_no_byte(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="docs/plain.txt", Body=b"alpha bravo")
    body = b"checksummed text"
    s3.put_object(Bucket=BUCKET, Key="docs/sum.md", Body=body, ChecksumAlgorithm="SHA256")
    recorder = Recorder(s3)
    plain, summed = resolve(s3, tmp_path, f"s3://{BUCKET}/docs/plain.txt", f"s3://{BUCKET}/docs/sum.md")
    assert recorder.operations == ["HeadObject", "HeadObject"]
    assert plain.content_hash == "s3-etag:" + hashlib.md5(b"alpha bravo").hexdigest()
    # the checksum S3 keeps names the bytes themselves: it is preferred over the ETag
    assert summed.content_hash == "s3-sha256:" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert (summed.format, summed.local_path) == ("markdown", None)


def test_a_key_without_a_known_extension_is_sniffed_from_a_ranged_read(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="blobs/picture", Body=make_image(tmp_path / "p.png", "png").read_bytes())
    recorder = Recorder(s3)
    [src] = resolve(s3, tmp_path, f"s3://{BUCKET}/blobs/picture")
    assert src.format == "png"
    assert recorder.operations == ["HeadObject", "GetObject"]
    assert recorder.calls[1][1]["Range"] == "bytes=0-1048576"


def test_an_empty_or_oversized_object_fails_alone_before_any_download(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="e/empty.txt", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="e/big.png", Body=b"\x89PNG" + b"0" * 2000)
    s3.put_object(Bucket=BUCKET, Key="e/ok.txt", Body=b"fine")
    recorder = Recorder(s3)
    sources, failures = resolve_sources(
        [f"s3://{BUCKET}/e/"], allowed_roots=[], s3_client=s3, download_dir=tmp_path, limits=Limits(max_file_bytes=1000)
    )
    assert [s.uri for s in sources] == [f"s3://{BUCKET}/e/ok.txt"]
    reasons = {f.source: f.reason for f in failures}
    assert "empty" in reasons[f"s3://{BUCKET}/e/empty.txt"]
    assert "2,004 bytes" in reasons[f"s3://{BUCKET}/e/big.png"]
    assert "GetObject" not in recorder.operations


def test_download_is_per_call_and_removed_after_success_and_after_failure(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="d/a.txt", Body=b"one two three")
    [src] = resolve(s3, tmp_path, f"s3://{BUCKET}/d/a.txt")
    folder = tmp_path / "downloads"
    with downloaded(src, client=s3, folder=folder, limits=Limits()) as local:
        assert local.local_path is not None and local.local_path.read_bytes() == b"one two three"
        where = local.local_path
    assert not where.exists() and list(folder.iterdir()) == []
    with pytest.raises(RuntimeError), downloaded(src, client=s3, folder=folder, limits=Limits()) as local:
        assert local.local_path is not None and local.local_path.exists()
        raise RuntimeError("the segmenter failed")
    assert list(folder.iterdir()) == []


def test_two_concurrent_calls_on_one_uri_do_not_share_a_file(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="d/shared.txt", Body=b"shared text")
    [src] = resolve(s3, tmp_path, f"s3://{BUCKET}/d/shared.txt")
    both_inside = threading.Barrier(2)

    def one_call() -> tuple[Path, bytes]:
        with downloaded(src, client=s3, folder=tmp_path / "downloads", limits=Limits()) as local:
            assert local.local_path is not None
            both_inside.wait(timeout=30)  # each holds its download while the other has one too
            data = local.local_path.read_bytes()
            both_inside.wait(timeout=30)  # neither removes its folder before the other read its file
            return local.local_path, data

    with ThreadPoolExecutor(2) as pool:
        (first, data1), (second, data2) = pool.map(lambda _: one_call(), range(2))
    assert first != second and data1 == data2 == b"shared text"
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_download_reads_only_the_version_that_was_headed(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="d/moving.txt", Body=b"first version")
    [src] = resolve(s3, tmp_path, f"s3://{BUCKET}/d/moving.txt")
    s3.put_object(Bucket=BUCKET, Key="d/moving.txt", Body=b"second version, written meanwhile")
    changed = pytest.raises(InvalidInput, match="changed after it was checked")
    with changed, downloaded(src, client=s3, folder=tmp_path / "downloads", limits=Limits()):
        pass
    assert list((tmp_path / "downloads").iterdir()) == []


def test_local_backend_segments_an_s3_text_from_a_download_removed_after(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="d/notes.txt", Body=b"solar panels make electricity from sunlight")
    [src] = resolve(s3, tmp_path, f"s3://{BUCKET}/d/notes.txt")
    ingest = Ingest(allowed_roots=[], allowed_buckets=[], download_dir=tmp_path / "downloads", s3_client=s3)
    recorder = Recorder(s3)
    iterator = ingest.segments(src, LOCAL)
    [segment] = list(iterator)
    assert segment.text == "solar panels make electricity from sunlight" and segment.s3_uri is None
    assert recorder.operations == ["GetObject"]
    assert list((tmp_path / "downloads").iterdir()) == []


def test_nova_backend_sends_an_image_and_a_one_chunk_text_by_reference(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="d/p.png", Body=make_image(tmp_path / "p.png", "png").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="d/t.txt", Body=b"short text")
    s3.put_object(Bucket=BUCKET, Key="d/p.bmp", Body=make_image(tmp_path / "p.bmp", "bmp").read_bytes())
    image, text, bmp = resolve(s3, tmp_path, *(f"s3://{BUCKET}/d/{n}" for n in ("p.png", "t.txt", "p.bmp")))
    ingest = Ingest(allowed_roots=[], allowed_buckets=[], download_dir=tmp_path / "downloads", s3_client=s3)
    recorder = Recorder(s3)
    [by_ref_image] = list(ingest.segments(image, NOVA))
    [by_ref_text] = list(ingest.segments(text, NOVA))
    assert recorder.operations == []
    request = by_ref_image.to_request("GENERIC_INDEX", 256).model_dump(by_alias=True, exclude_none=True)  # type: ignore[arg-type]
    assert request["singleEmbeddingParams"]["image"]["source"] == {"s3Location": {"uri": f"s3://{BUCKET}/d/p.png"}}
    request = by_ref_text.to_request("GENERIC_INDEX", 256).model_dump(by_alias=True, exclude_none=True)  # type: ignore[arg-type]
    assert request["singleEmbeddingParams"]["text"]["source"] == {"s3Location": {"uri": f"s3://{BUCKET}/d/t.txt"}}
    [converted] = list(ingest.segments(bmp, NOVA))  # BMP is not a format Nova takes: downloaded and converted
    assert converted.s3_uri is None and converted.media_format == "png"
    assert recorder.operations == ["GetObject"]
    assert list((tmp_path / "downloads").iterdir()) == []


def test_read_text_returns_characters_not_bytes(s3: Any) -> None:
    text = "ÆØÅ naïve café – " * 40 + "the needle is here" + " tail" * 10
    s3.put_object(Bucket=BUCKET, Key="d/u.txt", Body=b"\xef\xbb\xbf" + text.encode("utf-8"))
    start = text.index("the needle")
    recorder = Recorder(s3)
    assert read_text(s3, f"s3://{BUCKET}/d/u.txt", start, start + 18) == "the needle is here"
    assert recorder.calls[0][1]["Range"] == f"bytes=0-{4 * (start + 18) + 3}"
    assert read_text(s3, f"s3://{BUCKET}/d/u.txt", 0, 4) == "ÆØÅ "


def test_s3_errors_are_translated_scrubbed_and_name_the_iam_action(tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    secret = "AKIAIOSFODNN7EXAMPLE"
    url = f"https://{BUCKET}.s3.amazonaws.com/k?X-Amz-Credential={secret}%2F20261201&X-Amz-Signature=abcdef0123"
    with Stubber(client) as stub:
        stub.add_client_error("head_object", "AccessDenied", f"Access Denied for {secret} at {url}", 403)
        stub.add_client_error("head_object", "SlowDown", "Please reduce your request rate.", 503)
        sources, failures = resolve_sources(
            [f"s3://{BUCKET}/a.txt", f"s3://{BUCKET}/b.txt"], allowed_roots=[], s3_client=client, download_dir=tmp_path
        )
    assert sources == []
    denied, slow = (f.reason for f in failures)
    assert "s3:GetObject" in denied and secret not in denied and "abcdef0123" not in denied
    assert "throttling" in slow


def test_a_missing_bucket_is_named_as_such(s3: Any, tmp_path: Path) -> None:
    sources, failures = resolve_sources(
        ["s3://no-such-bucket-here/x.txt", f"s3://{BUCKET}/none.txt"],
        allowed_roots=[],
        s3_client=s3,
        download_dir=tmp_path,
    )
    assert sources == []
    assert "the bucket does not exist" in failures[0].reason
    assert failures[1].reason == f"s3://{BUCKET}/none.txt does not exist."
