"""Cutting sources into segments: text chunks, PDF pages, images, audio/video windows and key frames."""

from __future__ import annotations

import io
import os
import random
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from fixtures.media import (
    BLUE,
    GREEN,
    RED,
    WHITE,
    YELLOW,
    block_freq,
    dominant_freq,
    make_audio,
    make_image,
    make_mp3,
    make_mp4,
    make_pdf,
    make_png_bomb,
    make_scanned_pdf,
    make_video,
    make_wav,
    truncate,
)
from PIL import Image
from support import LOCAL_CLIP_INFO as LOCAL

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest import media
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.segment import segment_source
from nova_mcp_server.ingest.sources import SourceItem, resolve_sources
from nova_mcp_server.ingest.text import chunk_size_for, chunk_text, html_to_text
from nova_mcp_server.schema import DetailLevel, EmbeddingPurpose, Modality

NOVA = EmbedderInfo(
    provider="nova",
    model="amazon.nova-2-multimodal-embeddings-v1:0",
    dimensions=[3072, 1024, 384, 256],
    default_dimension=1024,
    modalities=["text", "image", "audio", "video"],
    max_text_chars=8192,
    max_sync_media_seconds=30,
)


def source(path: Path) -> SourceRef:
    sources, failures = resolve_sources([path], allowed_roots=[path.parent], download_dir=path.parent / "dl")
    assert failures == [], failures
    return sources[0]


def segments(path: Path, info: EmbedderInfo = NOVA, **kw: object) -> list[Segment]:
    result = list(segment_source(source(path), info, **kw))  # type: ignore[arg-type]
    assert [s.ordinal for s in result] == list(range(len(result)))
    for seg in result:  # every segment must make a valid Nova request
        seg.to_request(EmbeddingPurpose.GENERIC_INDEX, 1024)
    return result


def pixel(data: bytes) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def close_to(color: tuple[int, ...], expected: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(color, expected, strict=True))


# ---- text chunking ----------------------------------------------------------------------------------------------

PROSE = (
    "Amazon Nova embeds text, images, audio and video into one space. Retrieval finds the closest items! "
    "Does chunking matter? It does: a chunk should hold one idea.\n\n"
)


def random_text(seed: int, n: int) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    parts: list[str] = []
    while sum(map(len, parts)) < n:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))).capitalize()
        parts.append(sentence + rng.choice([". ", "! ", "? ", ".\n", ".\n\n", "; ", " "]))
    return "".join(parts)


@pytest.mark.parametrize(("seed", "size", "overlap"), [(1, 300, 37), (2, 2000, 250), (3, 120, 0), (4, 50, 10)])
def test_chunks_are_exact_slices_that_cover_everything(seed: int, size: int, overlap: int) -> None:
    text = random_text(seed, 20 * size)
    chunks = chunk_text(text, size, overlap)
    covered = np.zeros(len(text), dtype=bool)
    for prev, chunk in zip([None, *chunks], chunks, strict=False):
        assert text[chunk.start : chunk.end] == chunk.text
        assert 0 < len(chunk.text) <= size
        assert chunk.text == chunk.text.strip()
        covered[chunk.start : chunk.end] = True
        if prev is not None:
            assert chunk.start > prev.start
            assert prev.end - chunk.start <= overlap  # overlap never exceeds what was asked
            assert chunk.start == 0 or text[chunk.start - 1].isspace()  # starts at a word
    uncovered = [text[i] for i in np.flatnonzero(~covered)]
    assert all(ch.isspace() for ch in uncovered)


def test_chunks_prefer_paragraphs_then_sentences_then_words() -> None:
    text = PROSE * 10
    chunks = chunk_text(text, 400, 50)
    assert len(chunks) > 3
    for chunk in chunks[:-1]:
        assert text[chunk.end : chunk.end + 2] == "\n\n"  # every cut lands on a paragraph break
    one_paragraph = PROSE.replace("\n\n", " ") * 10
    for chunk in chunk_text(one_paragraph, 400, 50)[:-1]:
        assert chunk.text[-1] in ".!?:"  # sentence ends
    words = "lorem ipsum dolor " * 100
    for chunk in chunk_text(words, 100, 10)[:-1]:
        assert words[chunk.end].isspace()  # never mid-word


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    text = random_text(7, 5000)
    chunks = chunk_text(text, 500, 60)
    overlaps = [prev.end - nxt.start for prev, nxt in zip(chunks, chunks[1:], strict=False)]
    assert all(o >= 0 for o in overlaps) and sum(overlaps) > 0


def test_word_longer_than_a_chunk_is_cut_hard() -> None:
    text = "x" * 1000
    chunks = chunk_text(text, 300, 30)
    assert [len(c.text) for c in chunks][:3] == [300, 300, 300]
    assert "".join(c.text for c in chunks).replace("x", "") == ""
    assert chunks[-1].end == 1000


def test_chunk_size_follows_the_embedder() -> None:
    assert chunk_size_for(NOVA) == 2000
    assert chunk_size_for(LOCAL) == 300


def test_text_file_segments_for_both_backends(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    text = random_text(11, 9000)
    path.write_text(text)
    nova = segments(path, NOVA)
    local = segments(path, LOCAL)
    assert 5 <= len(nova) <= 6 and len(local) > 30  # 9000 chars: 2000-char chunks with ~12 % overlap
    for seg in nova + local:
        assert (seg.modality, seg.embed_as) == (Modality.TEXT, "text")
        assert text[seg.char_start : seg.char_end] == seg.text
        assert seg.snippet and len(seg.snippet) <= 300
    assert max(len(s.text or "") for s in nova) <= 2000 and max(len(s.text or "") for s in local) <= 300
    custom = segments(path, NOVA, chunk_chars=1000, overlap_chars=0)
    assert all(a.char_end <= b.char_start for a, b in zip(custom, custom[1:], strict=False))


def test_empty_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("  \n\t \n")
    with pytest.raises(InvalidInput, match="empty text"):
        segments(path)


def test_html_becomes_visible_text(tmp_path: Path) -> None:
    html = (
        "<!doctype html><html><head><title>Guide</title><style>p {color: red}</style>"
        "<script>var hidden = 1;</script></head><body><h1>Install</h1><p>Run <b>pip</b> &amp; wait.</p>"
        "<ul><li>one</li><li>two</li></ul><pre>a  b\n  c</pre></body></html>"
    )
    assert html_to_text(html) == "Guide\n\nInstall\n\nRun pip & wait.\n\none\ntwo\n\na  b\nc"
    path = tmp_path / "page.html"
    path.write_text(html)
    [seg] = segments(path)
    assert "hidden" not in (seg.text or "") and "color" not in (seg.text or "")
    assert seg.char_start == 0 and seg.char_end == len(html_to_text(html))


# ---- PDF -----------------------------------------------------------------------------------------------------


def test_pdf_pages_give_an_image_and_text_chunks(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "doc.pdf", ["First page\nabout embeddings", "", "Third page text"])
    segs = segments(path)
    assert [(s.page, s.embed_as) for s in segs] == [(1, "image"), (1, "text"), (2, "image"), (3, "image"), (3, "text")]
    assert all(s.modality is Modality.DOCUMENT for s in segs)
    first_image, first_text = segs[0], segs[1]
    assert first_image.detail_level is DetailLevel.DOCUMENT_IMAGE and first_image.media_format == "png"
    page = Image.open(io.BytesIO(first_image.media or b""))
    assert page.format == "PNG" and 1200 <= max(page.size) <= 2048 and page.height > page.width
    assert first_text.text == "First page\nabout embeddings"
    assert (first_text.char_start, first_text.char_end) == (0, len(first_text.text))
    assert "no text layer" in (segs[2].snippet or "")


def test_scanned_pdf_still_gets_page_images(tmp_path: Path) -> None:
    segs = segments(make_scanned_pdf(tmp_path / "scan.pdf", pages=2))
    assert [(s.page, s.embed_as) for s in segs] == [(1, "image"), (2, "image")]


def test_huge_pdf_page_is_rendered_within_the_pixel_cap(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "poster.pdf", ["Poster"])
    path.write_bytes(path.read_bytes().replace(b"/MediaBox [0 0 612 792]", b"/MediaBox [0 0 5000 3000]"))
    image = Image.open(io.BytesIO(segments(path)[0].media or b""))
    assert max(image.size) == 2048


def test_pdf_on_a_text_only_embedder_gives_only_text(tmp_path: Path) -> None:
    text_only = NOVA.model_copy(update={"modalities": ["text"]})
    segs = segments(make_pdf(tmp_path / "doc.pdf", ["Only words"]), text_only)
    assert [(s.embed_as, s.text) for s in segs] == [("text", "Only words")]
    with pytest.raises(InvalidInput, match="no content"):
        segments(make_scanned_pdf(tmp_path / "scan.pdf"), text_only)


def test_encrypted_and_truncated_pdfs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="encrypted PDF"):
        segments(make_pdf(tmp_path / "locked.pdf", ["secret"], encrypt=True))
    with pytest.raises(InvalidInput, match="corrupt or truncated PDF"):
        segments(truncate(make_pdf(tmp_path / "cut.pdf", ["a", "b"]), 0.3))


# ---- images --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "gif", "webp"])
def test_nova_image_formats_pass_through_unchanged(tmp_path: Path, fmt: str) -> None:
    path = make_image(tmp_path / f"a.{fmt}", fmt, GREEN, (64, 48))
    [seg] = segments(path)
    assert (seg.modality, seg.embed_as, seg.media_format) == (Modality.IMAGE, "image", fmt)
    assert seg.media == path.read_bytes()
    assert seg.snippet == f"{fmt} image 64x48"


@pytest.mark.parametrize("fmt", ["bmp", "tiff"])
def test_other_image_formats_become_png(tmp_path: Path, fmt: str) -> None:
    [seg] = segments(make_image(tmp_path / f"a.{fmt}", fmt, BLUE, (40, 30)))
    assert seg.media_format == "png"
    image = Image.open(io.BytesIO(seg.media or b""))
    assert image.format == "PNG" and image.size == (40, 30) and close_to(pixel(seg.media or b""), BLUE, 2)


def test_large_images_are_downscaled(tmp_path: Path) -> None:
    [seg] = segments(make_image(tmp_path / "wide.jpeg", "jpeg", YELLOW, (5000, 1000)))
    image = Image.open(io.BytesIO(seg.media or b""))
    assert seg.media_format == "jpeg" and image.size == (4096, 819)
    assert seg.snippet == "jpeg image 5000x1000"  # the original size
    [seg] = segments(make_image(tmp_path / "tall.png", "png", WHITE, (300, 4500)))
    assert Image.open(io.BytesIO(seg.media or b"")).size == (273, 4096) and seg.media_format == "png"


def test_image_bombs_and_truncated_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="too large to decode safely"):
        segments(make_png_bomb(tmp_path / "bomb.png", 40_000, 40_000))  # Pillow's own bomb error
    with pytest.raises(InvalidInput, match="too large to decode safely: 12000x10000"):
        segments(make_png_bomb(tmp_path / "big.png", 12_000, 10_000))  # over our limit, under Pillow's
    with pytest.raises(InvalidInput, match="corrupt or truncated image"):
        segments(truncate(make_image(tmp_path / "cut.jpeg", "jpeg", RED, (300, 300)), 0.6))


def test_images_need_an_image_embedder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot embed images"):
        segments(make_image(tmp_path / "a.png"), NOVA.model_copy(update={"modalities": ["text"]}))


# ---- audio -----------------------------------------------------------------------------------------------------


def wav_window(seg: Segment) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(seg.media or b"")) as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
        assert w.getnchannels() == 1
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768, rate


def test_short_audio_goes_to_nova_as_it_is(tmp_path: Path) -> None:
    path = make_mp3(tmp_path / "a.mp3", seconds=3.0)
    [seg] = segments(path)
    assert (seg.modality, seg.embed_as, seg.media_format, seg.start_s) == (Modality.AUDIO, "audio", "mp3", 0.0)
    assert seg.media == path.read_bytes() and seg.end_s == pytest.approx(3.0, abs=0.1)


def test_short_audio_in_other_formats_is_transcoded_to_wav(tmp_path: Path) -> None:
    [seg] = segments(make_audio(tmp_path / "a.flac", "flac", 2.0, (660.0,)))
    samples, rate = wav_window(seg)
    assert seg.media_format == "wav" and len(samples) == pytest.approx(2.0 * rate, abs=2)
    assert dominant_freq(samples, rate) == pytest.approx(660, abs=5)


def test_long_audio_is_cut_into_exact_windows(tmp_path: Path) -> None:
    freqs = [300.0, 500.0, 700.0, 900.0, 1100.0]
    path = make_wav(tmp_path / "long.wav", seconds=45.0, freq=freqs, rate=8000)
    # blocks of 9 s: 0-9 300 Hz, 9-18 500, 18-27 700, 27-36 900, 36-45 1100
    segs = segments(path, segment_seconds=10)
    assert [(s.start_s, s.end_s) for s in segs] == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 45)]
    for seg in segs:
        samples, rate = wav_window(seg)
        assert seg.media_format == "wav" and rate == 8000
        assert len(samples) == round((seg.end_s - seg.start_s) * rate)  # cut at exact sample positions
        # the window's first second sits inside a known block
        block = int((seg.start_s or 0) // 9)
        assert dominant_freq(samples[: rate // 2], rate) == pytest.approx(freqs[block], abs=10)
    assert segs[2].snippet == "audio 0:20-0:30"


def test_audio_from_inline_bytes(tmp_path: Path) -> None:
    import base64

    data = make_wav(tmp_path / "a.wav", seconds=35.0, rate=8000).read_bytes()
    [src], _ = resolve_sources(
        [SourceItem(data=base64.b64encode(data).decode(), format="wav")], allowed_roots=[], download_dir=tmp_path
    )
    segs = list(segment_source(src, NOVA, segment_seconds=20))
    assert [(s.start_s, s.end_s) for s in segs] == [(0, 20), (20, 35)]


def test_local_audio_needs_the_audio_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "whisper_available", lambda: False)
    with pytest.raises(InvalidInput) as info:
        segments(make_wav(tmp_path / "a.wav", seconds=1.0), LOCAL)
    hint = "audio on the local backend needs the audio extra: pip install 'nova-multimodal-mcp[audio]'"
    assert hint in str(info.value)


# ---- video -----------------------------------------------------------------------------------------------------

COLORS = [RED, GREEN, BLUE, YELLOW]


def decode_window(data: bytes) -> tuple[float, list[tuple[float, tuple[int, ...]]], np.ndarray, int]:
    """Duration, (time, centre colour) per video frame and mono audio samples of an mp4 window."""
    with av.open(io.BytesIO(data)) as container:
        duration = container.duration / av.time_base
        frames = [
            (f.time, tuple(f.to_ndarray(format="rgb24")[f.height // 2, f.width // 2]))
            for f in container.decode(video=0)
        ]
    with av.open(io.BytesIO(data)) as container:
        rate = container.streams.audio[0].sample_rate
        audio = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    return duration, frames, audio, rate


@pytest.fixture(scope="module")
def clip40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mp4(tmp_path_factory.mktemp("v") / "clip40.mp4", 40, COLORS, block_seconds=10)


def test_short_video_goes_to_nova_as_it_is(tmp_path: Path) -> None:
    path = make_mp4(tmp_path / "short.mp4", 3, [RED])
    [seg] = segments(path)
    assert (seg.modality, seg.embed_as, seg.media_format) == (Modality.VIDEO, "video", "mp4")
    assert seg.media == path.read_bytes() and (seg.start_s, seg.end_s) == (0.0, 3.0)


def test_short_avi_is_transcoded_to_mp4(tmp_path: Path) -> None:
    [seg] = segments(make_video(tmp_path / "a.avi", 2, [GREEN], fmt="avi"))
    duration, frames, audio, rate = decode_window(seg.media or b"")
    assert seg.media_format == "mp4" and duration == pytest.approx(2.0, abs=0.15)
    assert all(close_to(color, GREEN) for _, color in frames) and len(audio) > rate


def test_long_video_windows_have_the_right_picture_and_sound(clip40: Path) -> None:
    segs = segments(clip40, segment_seconds=10)
    assert [(s.start_s, s.end_s) for s in segs] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    for i, seg in enumerate(segs):
        duration, frames, audio, rate = decode_window(seg.media or b"")
        assert (seg.media_format, seg.embed_as, seg.modality) == ("mp4", "video", Modality.VIDEO)
        assert duration == pytest.approx(10, abs=0.3)
        assert len(frames) == 50 and frames[0][0] == 0.0  # timestamps restart at zero in each window
        assert all(close_to(color, COLORS[i]) for _, color in frames)
        assert len(audio) == pytest.approx(10 * rate, abs=0.05 * rate)
        assert dominant_freq(audio[rate : 2 * rate], rate) == pytest.approx(block_freq(i), abs=10)


def test_windows_never_exceed_the_sync_limit(clip40: Path) -> None:
    segs = segments(clip40, segment_seconds=3600)  # asks for more than Nova takes in one call
    assert [(s.start_s, s.end_s) for s in segs] == [(0, 30), (30, 40)]


def test_local_key_frames_show_each_window(clip40: Path) -> None:
    segs = segments(clip40, LOCAL, segment_seconds=5)
    assert [(s.start_s, s.end_s) for s in segs] == [(i * 5, i * 5 + 5) for i in range(8)]
    for i, seg in enumerate(segs):
        assert (seg.modality, seg.embed_as, seg.media_format) == (Modality.VIDEO, "image", "jpeg")
        assert close_to(pixel(seg.media or b""), COLORS[i // 2]), (i, pixel(seg.media or b""))
    assert segs[3].snippet == "video frame at 0:17 (0:15-0:20)"


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mp4(tmp_path_factory.mktemp("v") / "two.mp4", 120, [RED, GREEN, BLUE], block_seconds=10)


def test_two_minute_video_on_nova_gives_twelve_windows(two_minutes: Path) -> None:
    assert media.media_duration(two_minutes) == pytest.approx(120, abs=0.1)
    segs = segments(two_minutes, segment_seconds=10)
    assert [(s.start_s, s.end_s) for s in segs] == [(i * 10, i * 10 + 10) for i in range(12)]
    _, frames, _, _ = decode_window(segs[7].media or b"")
    assert close_to(frames[25][1], [RED, GREEN, BLUE][7 % 3])


def test_two_minute_video_on_local_gives_a_key_frame_per_window(two_minutes: Path) -> None:
    segs = segments(two_minutes, LOCAL, segment_seconds=10)
    assert len(segs) == 12
    assert all(close_to(pixel(s.media or b""), [RED, GREEN, BLUE][i % 3]) for i, s in enumerate(segs))


def test_truncated_and_corrupt_media_are_refused(tmp_path: Path) -> None:
    cut = truncate(make_mp4(tmp_path / "cut.mp4", 3, [RED]), 0.5)
    with pytest.raises(InvalidInput, match="corrupt or truncated media"):
        segments(cut)
    with pytest.raises(InvalidInput, match="corrupt or truncated media"):
        media.media_duration(cut)
    garbage = tmp_path / "noise.mkv"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(random.Random(0).randbytes(4000)))
    with pytest.raises(InvalidInput, match="corrupt or truncated media"):
        segments(garbage)


def test_plan_windows_merges_or_drops_slivers() -> None:
    assert media.plan_windows(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert media.plan_windows(120.03, 10, 30) == [(i * 10, i * 10 + 10) for i in range(11)] + [(110, 120.03)]
    assert media.plan_windows(60.3, 30, 30) == [(0, 30), (30, 60)]  # 0.3 s tail dropped: merging breaks 30 s
    assert media.plan_windows(60.7, 30, 30) == [(0, 30), (30, 60), (60, 60.7)]
    assert media.plan_windows(4, 10) == [(0, 4)]


def test_local_audio_transcript_windows_with_a_stand_in_whisper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transcript path, driven by a fake ``faster_whisper`` (the real one is an optional extra)."""
    import sys
    import types
    from dataclasses import dataclass

    @dataclass
    class Piece:
        start: float
        end: float
        text: str

    class FakeWhisper:
        def __init__(self, name: str, **kw: object) -> None:
            self.name = name

        def transcribe(self, audio: object, **kw: object) -> tuple[list[Piece], None]:
            assert kw.get("vad_filter") is True
            return [Piece(0.0, 4.0, " hello there"), Piece(4.0, 9.0, " general"), Piece(9.5, 14.0, " kenobi ")], None

    monkeypatch.setitem(sys.modules, "faster_whisper", types.SimpleNamespace(WhisperModel=FakeWhisper))
    segs = segments(make_wav(tmp_path / "speech.wav", seconds=15.0, rate=8000), LOCAL, segment_seconds=10)
    assert [(s.embed_as, s.modality, s.text, s.start_s, s.end_s) for s in segs] == [
        ("text", Modality.AUDIO, "hello there general", 0.0, 9.0),
        ("text", Modality.AUDIO, "kenobi", 9.5, 14.0),
    ]
    video = segments(make_mp4(tmp_path / "talk.mp4", 10, [RED]), LOCAL, segment_seconds=10)
    assert [s.embed_as for s in video] == ["image", "text", "text"]  # key frame, then the transcript


# ---- bounded, lazy, one descriptor --------------------------------------------------------------------------

from nova_mcp_server.errors import LimitExceeded, NotFound  # noqa: E402
from nova_mcp_server.ingest.limits import Limits  # noqa: E402
from nova_mcp_server.ingest.text import iter_chunks  # noqa: E402


@pytest.mark.parametrize("seed", range(40))
def test_streamed_chunks_equal_the_whole_text_cut(seed: int) -> None:
    rng = random.Random(seed)
    words = ["alpha", "beta.", "gamma!", "\n\n", "\n", "  ", "delta?", "x" * rng.randint(1, 400), "é", "。"]
    text = "".join(rng.choice(words) + rng.choice([" ", "", "\t"]) for _ in range(rng.randint(0, 3000)))
    if seed % 5 == 0:
        text = " " * rng.randint(0, 5000) + text + " \n" * rng.randint(0, 3000)  # long blank runs at both ends
    size = rng.choice([1, 7, 64, 300, 2000])
    overlap = rng.choice([None, 0, 3, size // 3])
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 40))))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert list(iter_chunks(iter(pieces), size, overlap)) == chunk_text(text, size, overlap)


def test_a_large_text_file_is_segmented_in_flat_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.txt"
    line = "Retrieval works best when a chunk holds one idea, and the rest follows from there. " * 4 + "\n"
    with path.open("w") as fh:
        for _ in range((10 << 20) // len(line)):
            fh.write(line)
    src = source(path)
    tracemalloc.start()
    try:
        count = 0
        for segment in segment_source(src, LOCAL):
            count += 1
            assert segment.ordinal == count - 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count > 40_000
    assert peak < 6 << 20, f"peak {peak:,} bytes for a {path.stat().st_size:,}-byte file"  # 10 MiB, never held


def test_a_pdf_of_thousands_of_blank_pages_is_refused_before_rendering(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    path = tmp_path / "blank.pdf"
    pdf = pdfium.PdfDocument.new()
    for _ in range(2000):
        pdf.new_page(612, 792)
    pdf.save(str(path))
    pdf.close()
    with pytest.raises(LimitExceeded, match="PDF has 2,000 pages; at most 500 pages") as info:
        next(segment_source(source(path), NOVA, limits=Limits()))
    assert "NOVA_MCP_MAX_PDF_PAGES" in info.value.text
    text_only = LOCAL.model_copy(update={"modalities": ["text"]})
    with pytest.raises(InvalidInput, match="no content this embedder can index"):  # read past the cap: all blank
        list(segment_source(source(path), text_only, limits=Limits(max_pdf_pages=2000)))


def test_media_longer_than_the_limit_is_refused_after_probing(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "a.wav", seconds=3.0)
    with pytest.raises(LimitExceeded, match="media lasts 3 s; at most 2 s") as info:
        list(segment_source(source(path), NOVA, limits=Limits(max_media_seconds=2)))
    assert "NOVA_MCP_MAX_MEDIA_SECONDS" in info.value.text
    assert len(list(segment_source(source(path), NOVA, limits=Limits(max_media_seconds=3)))) == 1


@pytest.mark.parametrize("kind", ["text", "pdf", "image", "audio"])
def test_a_file_rewritten_between_hashing_and_segmenting_is_not_segmented(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nova_mcp_server.ingest import loading

    if kind == "text":
        path = tmp_path / "a.txt"
        path.write_text("first words")
    elif kind == "pdf":
        path = make_pdf(tmp_path / "a.pdf", ["first page"])
    elif kind == "image":
        path = make_image(tmp_path / "a.png", "png")
    else:
        path = make_wav(tmp_path / "a.wav", seconds=1.0)
    src = source(path)

    def flip_one_bit(at: Path) -> None:  # same size, same mtime: only the bytes tell
        mtime = at.stat().st_mtime_ns
        data = bytearray(at.read_bytes())
        data[-1] ^= 0x01
        with open(at, "r+b") as fh:  # in place: the open descriptor sees the new bytes
            fh.write(data)
        os.utime(at, ns=(mtime, mtime))

    monkeypatch.setattr(loading, "AFTER_HASH", flip_one_bit)
    with pytest.raises(InvalidInput, match="changed while it was being read") as caught:
        list(segment_source(src, NOVA))
    assert "it was not indexed" in caught.value.text
    monkeypatch.setattr(loading, "AFTER_HASH", None)
    assert list(segment_source(src, NOVA))  # rewritten before the open: simply the file as it is now
    path.unlink()
    with pytest.raises(NotFound, match="does not exist"):
        list(segment_source(src, NOVA))
