"""Format sniffing and source resolution: allowed roots, folder walks, S3 (moto), inline content."""

from __future__ import annotations

import base64
import codecs
import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.media import (
    BLUE,
    make_audio,
    make_image,
    make_mislabelled,
    make_pdf,
    make_video,
    make_wav,
    make_zero_byte,
    truncate,
)

from nova_mcp_server.errors import InvalidInput, NovaError
from nova_mcp_server.ingest.loading import Opened, open_source
from nova_mcp_server.ingest.sniff import decode_text, sniff_bytes, sniff_file
from nova_mcp_server.ingest.sources import SourceFailure, SourceItem, parse_s3_uri, resolve_sources
from nova_mcp_server.schema import Modality

# ---- sniffing ----------------------------------------------------------------------------------------------

IMAGE_FORMATS = ["png", "jpeg", "gif", "webp", "bmp", "tiff"]
AUDIO_FORMATS = ["mp3", "ogg", "flac", "m4a"]
VIDEO_FORMATS = ["mp4", "mov", "mkv", "webm", "3gp", "flv", "mpeg", "avi", "wmv"]


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_sniff_images_by_content_even_without_extension(tmp_path: Path, fmt: str) -> None:
    path = make_image(tmp_path / "picture", fmt)  # no extension: the bytes decide
    found = sniff_file(path)
    assert (found.format, found.modality) == (fmt, Modality.IMAGE)


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_sniff_audio(tmp_path: Path, fmt: str) -> None:
    path = make_audio(tmp_path / "sound.bin", fmt, seconds=0.5)
    assert (sniff_file(path).format, sniff_file(path).modality) == (fmt, Modality.AUDIO)


def test_sniff_wav_and_pdf(tmp_path: Path) -> None:
    assert sniff_file(make_wav(tmp_path / "a", seconds=0.2)).format == "wav"
    pdf = sniff_file(make_pdf(tmp_path / "b", ["hello"]))
    assert (pdf.format, pdf.modality, pdf.mime) == ("pdf", Modality.DOCUMENT, "application/pdf")


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_sniff_video_containers(tmp_path: Path, fmt: str) -> None:
    path = make_video(tmp_path / "clip.dat", seconds=0.4, fmt=fmt)
    found = sniff_file(path)
    assert (found.format, found.modality) == (fmt, Modality.VIDEO)


@pytest.mark.parametrize(
    ("name", "content", "flavour"),
    [
        ("notes.md", "# Title\n\nbody", "markdown"),
        ("page.HTML", "<p>hi</p>", "html"),
        ("main.py", "print('hi')\n", "code"),
        ("Dockerfile", "FROM python\n", "code"),
        ("notes.txt", "plain words", "text"),
        ("page", "<!DOCTYPE html><html><body>x</body></html>", "html"),
        ("spec.md", "The header is %PDF-1.7 in every PDF.", "markdown"),  # text that mentions a signature
        ("readme.txt", "MZ is the DOS header; this is still text.", "text"),
        ("id3.txt", "ID3 tags hold the title.", "text"),
    ],
)
def test_text_flavour_by_extension(tmp_path: Path, name: str, content: str, flavour: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    found = sniff_file(path)
    assert (found.format, found.modality) == (flavour, Modality.TEXT)


def test_mislabelled_png_named_txt_is_a_png(tmp_path: Path) -> None:
    found = sniff_file(make_mislabelled(tmp_path / "notes.txt"))
    assert (found.format, found.modality) == ("png", Modality.IMAGE)


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="zero-byte file"):
        sniff_file(make_zero_byte(tmp_path / "empty.txt"))
    with pytest.raises(InvalidInput, match="zero-byte"):
        sniff_bytes(b"")


def test_truncated_file_keeps_its_signature(tmp_path: Path) -> None:
    # Sniffing reads the header only; the decoders report the damage (see test_segment).
    path = truncate(make_image(tmp_path / "a.png", "png", size=(200, 200)), 0.5)
    assert sniff_file(path).format == "png"


def test_tiny_truncated_header_is_not_mistaken_for_text(tmp_path: Path) -> None:
    path = tmp_path / "stub.png"
    path.write_bytes(b"\x89PN")
    with pytest.raises(InvalidInput, match="not a supported format"):
        sniff_file(path)


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.bin", bytes(range(256)) * 4)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("archive.zip", _zip_bytes(), "looks like a ZIP archive"),
        ("report.docx", _zip_bytes(), "Word document"),
        ("data.gz", b"\x1f\x8b\x08\x00" + bytes(range(200)), "gzip"),
        ("tool", b"\x7fELF\x02\x01\x01" + bytes(64), "ELF executable"),
        ("blob.txt", bytes(range(256)), "neither a known media type nor UTF-8 text"),
        ("latin1.txt", "café crème".encode("latin-1"), "UTF-8"),
        ("photo.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        ("doc.ps", b"%!PS-Adobe-3.0\n", "PostScript"),
    ],
)
def test_unsupported_content_names_what_it_looks_like(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InvalidInput, match=reason) as info:
        sniff_file(path)
    assert "not a supported format" in str(info.value) or "UTF-8" in str(info.value)


def test_utf16_with_bom_is_text(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + "héllo wörld".encode("utf-16-le")
    assert sniff_bytes(data, "a.txt").format == "text"
    assert decode_text(data) == "héllo wörld"
    assert decode_text(codecs.BOM_UTF8 + b"abc") == "abc"


# ---- paths and allowed roots ----------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# A\n\nalpha")
    (root / "docs" / "b.txt").write_text("bravo")
    (root / "docs" / "sub" / "c.md").write_text("charlie")
    (root / "docs" / ".hidden.md").write_text("hidden")
    (root / "docs" / ".git").mkdir()
    (root / "docs" / ".git" / "config.md").write_text("hidden folder")
    (root / "docs" / "drafts").mkdir()
    (root / "docs" / "drafts" / "d.md").write_text("delta")
    make_image(root / "docs" / "pic.png", "png")
    (tmp_path / "outside.txt").write_text("secret")
    return root


def resolve(items: list[Any], roots: list[Path], tmp_path: Path, **kw: Any):  # type: ignore[no-untyped-def]
    return resolve_sources(items, allowed_roots=roots, download_dir=tmp_path / "downloads", **kw)


def load(items: list[Any], roots: list[Path], tmp_path: Path, **kw: Any) -> tuple[list[Opened], list[SourceFailure]]:
    """Resolve, then open each source once as the indexing worker does (and close it): what each turned out to
    be, and the failures of both steps (resolution's first)."""
    sources, failures = resolve(items, roots, tmp_path, **kw)
    opened = []
    for src in sources:
        try:
            with open_source(src, kw.get("limits")) as one:
                opened.append(one)
        except NovaError as exc:
            failures.append(SourceFailure(source=src.display, reason=exc.text))
    return opened, failures


def rel_names(sources: list[Any], root: Path) -> list[str]:
    refs = [s.source if isinstance(s, Opened) else s for s in sources]
    return [str(s.local_path.relative_to(root)) for s in refs]


def test_file_source_is_canonical_and_hashed(root: Path, tmp_path: Path) -> None:
    given = str(root / "docs" / "sub" / ".." / "a.md")
    sources, failures = resolve([given], [root], tmp_path)
    assert failures == []
    [src] = sources
    real = (root / "docs" / "a.md").resolve()
    assert src.uri == f"file://{real}"
    assert src.display == given
    assert (src.kind, src.local_path, src.root, src.size) == ("file", real, root.resolve(), real.stat().st_size)
    assert (src.format, src.content_hash) == (None, None)  # resolution only looks; the worker opens and hashes
    with open_source(src) as opened:
        assert (opened.format, opened.modality, opened.size) == ("markdown", Modality.TEXT, real.stat().st_size)
        assert opened.content_hash == hashlib.sha256(real.read_bytes()).hexdigest()
        assert opened.reader().read() == real.read_bytes()


def test_dotdot_escape_is_refused_with_the_allowed_roots(root: Path, tmp_path: Path) -> None:
    sources, failures = resolve([str(root / ".." / "outside.txt")], [root], tmp_path)
    assert sources == []
    [failure] = failures
    assert "outside the allowed roots" in failure.reason
    assert str(root.resolve()) in failure.reason


def test_symlink_pointing_outside_is_refused(root: Path, tmp_path: Path) -> None:
    link = root / "docs" / "escape.txt"
    link.symlink_to(tmp_path / "outside.txt")
    sources, failures = resolve([str(link)], [root], tmp_path)
    assert sources == [] and "outside the allowed roots" in failures[0].reason
    # inside a walked folder the escaping link fails on its own; the other files still resolve
    sources, failures = resolve([str(root / "docs")], [root], tmp_path)
    assert [f.source for f in failures] == [str(root / "docs" / "escape.txt")]
    assert "docs/a.md" in rel_names(sources, root)


def test_symlink_inside_roots_is_followed_to_its_real_path(root: Path, tmp_path: Path) -> None:
    link = root / "shortcut.md"
    link.symlink_to(root / "docs" / "sub" / "c.md")
    sources, failures = resolve([str(link)], [root], tmp_path)
    assert failures == []
    assert sources[0].uri == f"file://{(root / 'docs' / 'sub' / 'c.md').resolve()}"
    assert sources[0].display == str(link)


def test_second_root_and_missing_file(root: Path, tmp_path: Path) -> None:
    sources, failures = resolve(
        [str(tmp_path / "outside.txt"), str(root / "nope.md")], [root, tmp_path / "outside.txt"], tmp_path
    )
    assert [s.display for s in sources] == [str(tmp_path / "outside.txt")]
    assert "does not exist" in failures[0].reason


def test_no_roots_means_no_files(root: Path, tmp_path: Path) -> None:
    _, failures = resolve([str(root / "docs" / "a.md")], [], tmp_path)
    assert "No folders are allowed" in failures[0].reason and "cannot be read" in failures[0].reason


def test_folder_walk_skips_hidden_and_sorts(root: Path, tmp_path: Path) -> None:
    sources, failures = load([str(root / "docs")], [root], tmp_path)
    assert failures == []
    assert rel_names(sources, root) == ["docs/a.md", "docs/b.txt", "docs/drafts/d.md", "docs/pic.png", "docs/sub/c.md"]
    assert sources[0].display == str(root / "docs" / "a.md")
    assert {s.modality for s in sources} == {Modality.TEXT, Modality.IMAGE}


def test_include_exclude_and_non_recursive(root: Path, tmp_path: Path) -> None:
    docs = str(root / "docs")
    md, _ = resolve([docs], [root], tmp_path, include=["*.md"])
    assert rel_names(md, root) == ["docs/a.md", "docs/drafts/d.md", "docs/sub/c.md"]
    no_drafts, _ = resolve([docs], [root], tmp_path, include=["*.md"], exclude=["drafts/**"])
    assert rel_names(no_drafts, root) == ["docs/a.md", "docs/sub/c.md"]
    by_path, _ = resolve([docs], [root], tmp_path, include=["sub/*"])
    assert rel_names(by_path, root) == ["docs/sub/c.md"]
    flat, _ = resolve([docs], [root], tmp_path, recursive=False)
    assert rel_names(flat, root) == ["docs/a.md", "docs/b.txt", "docs/pic.png"]
    no_png, _ = resolve([docs], [root], tmp_path, exclude=["*.png", "**/sub/**"])
    assert rel_names(no_png, root) == ["docs/a.md", "docs/b.txt", "docs/drafts/d.md"]


def test_symlinked_folder_loop_terminates(root: Path, tmp_path: Path) -> None:
    (root / "docs" / "sub" / "loop").symlink_to(root / "docs")
    sources, failures = resolve([str(root / "docs")], [root], tmp_path)
    assert failures == []
    assert len(sources) == 5  # each real file once


def test_one_bad_item_does_not_stop_the_others(root: Path, tmp_path: Path) -> None:
    make_zero_byte(root / "empty.txt")
    items = [
        str(root / "missing.txt"),
        str(root / "docs" / "a.md"),
        str(tmp_path / "outside.txt"),
        str(root / "empty.txt"),
        "s3://Not_A_Bucket/x",
        str(root / "docs"),  # a.md again: deduplicated
    ]
    sources, failures = load(items, [root], tmp_path)
    assert [f.source for f in failures] == [  # resolution's failures, then the one found when it was opened
        str(root / "missing.txt"),
        str(tmp_path / "outside.txt"),
        "s3://Not_A_Bucket/x",
        str(root / "empty.txt"),
    ]
    assert "malformed S3 URI" in failures[2].reason and "zero-byte" in failures[3].reason
    assert len(sources) == 5 and len({s.uri for s in sources}) == 5


def test_unreadable_file_in_folder_is_a_failure(root: Path, tmp_path: Path) -> None:
    (root / "docs" / "bad.bin").write_bytes(bytes(range(256)))
    sources, failures = load([str(root / "docs")], [root], tmp_path)
    assert [f.source for f in failures] == [str(root / "docs" / "bad.bin")]
    assert len(sources) == 5


# ---- inline content -------------------------------------------------------------------------------------------


def test_inline_text_and_flavour(tmp_path: Path) -> None:
    sources, failures = resolve([SourceItem(text="# Hi\n\nthere", format="markdown"), {"text": "plain"}], [], tmp_path)
    assert failures == []
    md, plain = sources
    digest = hashlib.sha256(b"# Hi\n\nthere").hexdigest()
    assert (md.uri, md.kind, md.format, md.modality, md.data) == (
        f"inline:{digest[:32]}",
        "inline",
        "markdown",
        Modality.TEXT,
        b"# Hi\n\nthere",
    )
    assert md.content_hash == digest and md.display == "inline text"
    assert plain.format == "text"


def test_inline_text_errors(tmp_path: Path) -> None:
    _, failures = resolve([SourceItem(text="  \n "), SourceItem(text="x", format="pdf")], [], tmp_path)
    assert "empty text" in failures[0].reason
    assert "not one of text, markdown, html, code" in failures[1].reason
    with pytest.raises(ValueError, match="exactly one"):
        SourceItem(text="a", path="b")


def test_inline_base64_is_sniffed_by_content(tmp_path: Path) -> None:
    png = make_image(tmp_path / "p.png", "png", BLUE).read_bytes()
    wav = make_wav(tmp_path / "a.wav", seconds=0.2).read_bytes()
    items = [
        SourceItem(data=base64.b64encode(png).decode(), format="jpeg"),  # the format is only a hint
        f"data:audio/wav;base64,{base64.b64encode(wav).decode()}",
        "data:text/markdown,%23 Title",
        SourceItem(data="not base64!!", format="png"),
    ]
    sources, failures = resolve(items, [], tmp_path)
    assert [(s.format, s.modality, s.kind) for s in sources] == [
        ("png", Modality.IMAGE, "inline"),
        ("wav", Modality.AUDIO, "inline"),
        ("markdown", Modality.TEXT, "inline"),
    ]
    assert sources[0].data == png and sources[2].data == b"# Title"
    assert "not valid base64" in failures[0].reason


# ---- S3 -------------------------------------------------------------------------------------------------------

BUCKET = "media-bucket"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket="other-bucket")
        objects = {
            "docs/a.md": b"# A\n\nalpha",
            "docs/sub/b.txt": b"bravo",
            "docs/.hidden.txt": b"hidden",
            "docs/folder/": b"",
            "docs/c.png": make_image(tmp_path / "c.png", "png").read_bytes(),
            "docs/empty.txt": b"",
            "other/x.txt": b"x-ray",
            "../../escape.txt": b"path traversal in a key",
        }
        for key, body in objects.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield client


def test_s3_object_is_resolved_by_head_without_a_download(s3: Any, tmp_path: Path) -> None:
    sources, failures = resolve(["s3://media-bucket/docs/a.md"], [], tmp_path, s3_client=s3)
    assert failures == []
    [src] = sources
    assert (src.uri, src.display, src.kind, src.format) == (
        "s3://media-bucket/docs/a.md",
        "s3://media-bucket/docs/a.md",
        "s3",
        "markdown",
    )
    assert src.local_path is None and not (tmp_path / "downloads").exists()  # bytes are read only when needed
    md5 = hashlib.md5(b"# A\n\nalpha").hexdigest()  # a single-part object's ETag
    assert (src.content_hash, src.etag, src.size) == (f"s3-etag:{md5}", md5, 10)


def test_s3_prefix_listing_filters_and_recursion(s3: Any, tmp_path: Path) -> None:
    sources, failures = resolve(["s3://media-bucket/docs/"], [], tmp_path, s3_client=s3)
    assert [s.uri for s in sources] == [
        "s3://media-bucket/docs/a.md",
        "s3://media-bucket/docs/c.png",
        "s3://media-bucket/docs/sub/b.txt",
    ]
    assert [f.source for f in failures] == ["s3://media-bucket/docs/empty.txt"]
    flat, _ = resolve(["s3://media-bucket/docs/"], [], tmp_path, s3_client=s3, recursive=False)
    assert [s.uri.rsplit("/", 1)[1] for s in flat] == ["a.md", "c.png"]
    md, _ = resolve(["s3://media-bucket/docs/"], [], tmp_path, s3_client=s3, include=["*.md", "*.txt"])
    assert [s.uri.rsplit("/", 1)[1] for s in md] == ["a.md", "b.txt"]
    no_sub, _ = resolve(["s3://media-bucket/docs/"], [], tmp_path, s3_client=s3, exclude=["sub/**", "*.png"])
    assert [s.uri.rsplit("/", 1)[1] for s in no_sub] == ["a.md"]


def test_s3_key_cannot_escape_the_download_dir(s3: Any, tmp_path: Path) -> None:
    from nova_mcp_server.ingest.limits import Limits
    from nova_mcp_server.ingest.s3_objects import downloaded

    sources, failures = resolve(["s3://media-bucket/../../escape.txt"], [], tmp_path, s3_client=s3)
    assert failures == []
    with downloaded(sources[0], client=s3, folder=tmp_path / "downloads", limits=Limits()) as local:
        assert local.local_path is not None and local.local_path.read_bytes() == b"path traversal in a key"
        assert local.local_path.resolve().is_relative_to((tmp_path / "downloads").resolve())


def test_s3_bucket_allow_list_and_missing_objects(s3: Any, tmp_path: Path) -> None:
    items = ["s3://media-bucket/docs/a.md", "s3://other-bucket/none.txt", "s3://media-bucket/nope.txt"]
    sources, failures = resolve(items, [], tmp_path, s3_client=s3, allowed_buckets=["other-bucket"])
    assert sources == []
    assert "not in the allowed buckets" in failures[0].reason and "other-bucket" in failures[0].reason
    assert "does not exist" in failures[1].reason
    assert "not in the allowed buckets" in failures[2].reason
    _, failures = resolve(["s3://no-such-bucket-here/x.txt"], [], tmp_path, s3_client=s3)
    assert "bucket does not exist" in failures[0].reason


@pytest.mark.parametrize(
    "uri",
    ["s3://", "s3:///key.txt", "s3://Bad_Bucket/key", "s3:/media-bucket/x", "s3://ab/x", "s3://a..b/x", "S3://b/k"],
)
def test_malformed_s3_uris_are_refused_clearly(uri: str, tmp_path: Path) -> None:
    sources, failures = resolve([uri], [], tmp_path, s3_client=object())  # never called
    assert sources == []
    assert "malformed S3 URI" in failures[0].reason and "s3://bucket/key" in failures[0].reason


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://my.bucket-1/a/b c.txt") == ("my.bucket-1", "a/b c.txt")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")


def test_os_pathlike_items(root: Path, tmp_path: Path) -> None:
    sources, _ = load([root / "docs" / "b.txt", os.fspath(root / "docs" / "a.md")], [root], tmp_path)
    assert [s.format for s in sources] == ["text", "markdown"]


# ---- opened once, never through a link ----------------------------------------------------------------------


from nova_mcp_server.errors import AccessDenied, LimitExceeded, NotFound  # noqa: E402
from nova_mcp_server.ingest import opening  # noqa: E402
from nova_mcp_server.ingest.limits import Limits  # noqa: E402


@pytest.fixture(params=["openat", "portable"])
def opener(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the openat walk and through the lstat-and-compare fallback Windows uses."""
    if request.param == "portable":
        monkeypatch.setattr(opening, "OPENAT", False)
    else:
        assert opening.OPENAT  # Linux and macOS have openat with O_NOFOLLOW
    return str(request.param)


def swap_on_open(monkeypatch: pytest.MonkeyPatch, purpose: str, swaps: dict[str, Any]) -> None:
    """Between the root check and the open, apply ``swaps[name](path)`` to the file of that name (once)."""

    def hook(path: Path, why: str) -> None:
        swap = swaps.pop(path.name, None) if why == purpose else None
        if swap is not None:
            swap(path)

    monkeypatch.setattr(opening, "BEFORE_OPEN", hook)


def to_symlink(target: Path) -> Any:
    def swap(path: Path) -> None:
        path.unlink()
        path.symlink_to(target)

    return swap


def to_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def test_file_swapped_for_a_symlink_after_the_root_check_is_refused(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: str
) -> None:
    swap_on_open(monkeypatch, "read", {"b.txt": to_symlink(tmp_path / "outside.txt")})
    sources, failures = load([str(root / "docs")], [root], tmp_path)
    assert "b.txt" not in rel_names(sources, root / "docs") and len(sources) == 4
    [failure] = failures
    assert failure.source.endswith("b.txt") and "symbolic link" in failure.reason
    assert all(s.content_hash != hashlib.sha256(b"secret").hexdigest() for s in sources)


def test_folder_swapped_for_a_symlink_after_the_root_check_is_refused(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "c.md").write_text("secret plans")

    def swap(path: Path) -> None:  # the folder holding c.md becomes a link to another folder
        folder = path.parent
        folder.rename(folder.with_name("moved"))
        folder.symlink_to(outside, target_is_directory=True)

    swap_on_open(monkeypatch, "read", {"c.md": swap})
    sources, failures = load([str(root / "docs" / "sub" / "c.md")], [root], tmp_path)
    assert sources == [] and "symbolic link" in failures[0].reason


def test_file_swapped_for_a_fifo_is_refused_without_blocking(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: str
) -> None:
    swap_on_open(monkeypatch, "read", {"b.txt": to_fifo})
    sources, failures = load([str(root / "docs" / "b.txt"), str(root / "docs" / "a.md")], [root], tmp_path)
    assert [s.display for s in sources] == [str(root / "docs" / "a.md")]
    assert "FIFO" in failures[0].reason and "only regular files" in failures[0].reason


def test_special_files_in_a_folder_are_refused_with_what_they_are(root: Path, tmp_path: Path) -> None:
    import socket

    os.mkfifo(root / "docs" / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "docs" / "sock.txt"))
    try:
        sources, failures = resolve([str(root / "docs"), str(root / "docs" / "pipe.txt")], [root], tmp_path)
    finally:
        sock.close()
    reasons = {Path(f.source).name: f.reason for f in failures}
    assert "FIFO" in reasons["pipe.txt"] and "socket" in reasons["sock.txt"]
    assert len(sources) == 5
    _, devices = resolve(["/dev/null"], [Path("/dev")], tmp_path)
    assert "a device" in devices[0].reason


def test_hashing_and_reading_share_one_open_file(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: str
) -> None:
    opens: list[str] = []
    real_open = opening.open_regular

    def counting(path: Path, *args: Any, **kw: Any) -> int:
        opens.append(path.name)
        return real_open(path, *args, **kw)

    monkeypatch.setattr(opening, "open_regular", counting)
    [source], _ = resolve([str(root / "docs" / "b.txt")], [root], tmp_path)
    assert opens == [] and source.root == root.resolve()  # resolution opens nothing
    with open_source(source) as opened:
        assert opened.content_hash == hashlib.sha256(b"bravo").hexdigest()
        assert opened.reader().read() == b"bravo" and opened.proven  # the bytes read are the bytes hashed
        opened.verify()
    assert opens == ["b.txt"]


def test_deep_folder_is_walked_to_the_depth_limit_without_recursion(root: Path, tmp_path: Path) -> None:
    deep = root / "deep"
    leaf = deep
    for _ in range(1000):  # mkdir(parents=True) would itself recurse 1,000 deep
        leaf = leaf / "d"
        leaf.mkdir(parents=leaf.parent == deep)
    try:
        (leaf / "bottom.txt").write_text("far down")
        (deep / "d" / "d" / "near.txt").write_text("near the top")
        sources, failures = resolve([str(deep)], [root], tmp_path, limits=Limits(max_folder_depth=32))
        assert [s.display.rsplit("/", 1)[1] for s in sources] == ["near.txt"]
        [failure] = failures
        assert failure.source.removeprefix(str(deep)).count("/d") == 33
        assert "nested more than 32 levels" in failure.reason and "NOVA_MCP_MAX_FOLDER_DEPTH" in failure.reason
        unlimited, none_failed = resolve([str(deep)], [root], tmp_path, limits=Limits(max_folder_depth=1001))
        assert len(unlimited) == 2 and none_failed == []  # a stack, not recursion: 1,000 levels do not overflow
    finally:
        while leaf != deep:  # pytest's recursive rmtree of tmp_path would overflow on this tree
            for name in ("bottom.txt", "near.txt"):
                (leaf / name).unlink(missing_ok=True)
            leaf.rmdir()
            leaf = leaf.parent


def test_files_per_call_are_capped_with_the_rest_reported(root: Path, tmp_path: Path) -> None:
    sources, failures = resolve(
        [str(root / "docs"), str(tmp_path / "outside.txt")],
        [root, tmp_path],
        tmp_path,
        limits=Limits(max_files_per_call=3),
    )
    assert len(sources) == 3
    assert [f.source for f in failures] == [str(root / "docs"), str(tmp_path / "outside.txt")]
    assert all("stopped at 3 files" in f.reason and "NOVA_MCP_MAX_FILES_PER_CALL" in f.reason for f in failures)


def test_bytes_per_file_are_capped_before_reading(root: Path, tmp_path: Path) -> None:
    (root / "big.txt").write_text("x" * 5000)
    make_image(root / "pic.png", "png", size=(64, 64))
    items = [str(root / "big.txt"), str(root / "pic.png")]
    sources, failures = load(items, [root], tmp_path, limits=Limits(max_text_bytes=4000))  # text: known once open
    assert [s.format for s in sources] == ["png"]
    assert "5,000 bytes; text files of at most 4,000 bytes" in failures[0].reason
    assert "NOVA_MCP_MAX_TEXT_BYTES" in failures[0].reason
    sources, failures = resolve(items, [root], tmp_path, limits=Limits(max_file_bytes=100))
    assert sources == [] and len(failures) == 2
    assert all("files of at most 100 bytes" in f.reason and "NOVA_MCP_MAX_FILE_BYTES" in f.reason for f in failures)


def test_open_regular_explains_each_refusal(root: Path, tmp_path: Path, opener: str) -> None:
    real = root.resolve()
    with pytest.raises(NotFound, match="does not exist"):
        opening.open_regular(real / "docs" / "gone.txt", real, "gone.txt")
    (root / "link.txt").symlink_to(root / "docs" / "b.txt")
    with pytest.raises(AccessDenied, match="symbolic link"):
        opening.open_regular(real / "link.txt", real, "link.txt")
    with pytest.raises(InvalidInput, match="is a folder"):
        opening.open_regular(real / "docs", real, "docs")
    fd = opening.open_regular(real / "docs" / "b.txt", real, "b.txt")
    try:
        assert os.read(fd, 10) == b"bravo"
    finally:
        os.close(fd)
    assert issubclass(LimitExceeded, InvalidInput)


def test_limits_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nova_mcp_server.app import build_ingest
    from nova_mcp_server.settings import Settings

    for name, value in (("MAX_PDF_PAGES", "7"), ("MAX_FOLDER_DEPTH", "3"), ("MAX_FILES_PER_CALL", "9")):
        monkeypatch.setenv(f"NOVA_MCP_{name}", value)
    settings = Settings(data_dir=tmp_path, max_text_bytes=1234)
    expected = Limits(max_pdf_pages=7, max_folder_depth=3, max_files_per_call=9, max_text_bytes=1234)
    assert Limits.from_settings(settings) == expected == build_ingest(settings).limits
    assert Limits.from_settings(Settings(data_dir=tmp_path / "x", max_pdf_pages=500)).max_folder_depth == 3


def test_path_errors_quote_json(root: Path, tmp_path: Path) -> None:
    _, failures = resolve(["a\x00b.txt", {"text": "a", "path": "b"}], [root], tmp_path)
    assert '"a\\u0000b.txt" contains a NUL character' in failures[0].reason
    assert "give exactly one of text, path, s3_uri or data (got text, path)" in failures[1].reason


def test_malformed_items_are_told_in_json_terms(root: Path, tmp_path: Path) -> None:
    items: list[Any] = [None, 5, [1], {"path": ["x"]}, {"text": {"a": 1}}]
    _, failures = resolve(items, [root], tmp_path)
    assert [f.source for f in failures] == ["null", "5", "[1]", '["x"]', "inline text"]
    assert failures[0].reason.startswith("null is not a source. Give a path or s3:// URI as a string")
    assert failures[3].reason.startswith("path: Input should be a valid string.")
    assert failures[4].reason.startswith("text: Input should be a valid string.")
    for failure in failures:
        assert not any(word in failure.reason for word in ("None", "NoneType", "dict", "list", "str'", "['x']"))


def test_a_bug_resolving_one_item_fails_only_that_item(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from nova_mcp_server.ingest import sources as resolving

    real_walk = resolving._Resolver._walk

    def broken_walk(self: Any, top: Path, shown: str) -> Any:
        if top.name == "sub":
            raise RuntimeError("a bug")
        return real_walk(self, top, shown)

    monkeypatch.setattr(resolving._Resolver, "_walk", broken_walk)
    sources, failures = resolve([str(root / "docs" / "sub"), str(root / "docs" / "b.txt")], [root], tmp_path)
    assert [s.display for s in sources] == [str(root / "docs" / "b.txt")]
    [failure] = failures
    assert failure.source == str(root / "docs" / "sub")
    assert failure.reason.startswith("could not be read because of an internal error (details in the server log)")
    assert "RuntimeError" not in failure.reason and "a bug" in caplog.text  # the traceback goes to the log only
