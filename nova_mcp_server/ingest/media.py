"""Audio and video into segments with PyAV (bundled FFmpeg; no system ffmpeg needed).

Nova embeds at most 30 s of audio or video per sync request, so a short clip goes as it is (or transcoded
when Nova does not take its format) and a longer one is cut into windows that are re-encoded in a single
decoding pass (mp4 h264+aac for video, wav for audio). A backend without video (local CLIP) gets one key
frame per window instead, and audio there needs a speech-to-text model (the optional ``audio`` extra).
"""

from __future__ import annotations

import bisect
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
from PIL import Image

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput, LimitExceeded
from nova_mcp_server.ingest import speech
from nova_mcp_server.ingest.model import Segment
from nova_mcp_server.ingest.sniff import NOVA_AUDIO_FORMATS, NOVA_VIDEO_FORMATS
from nova_mcp_server.ingest.speech import AUDIO_EXTRA_HINT, whisper_available
from nova_mcp_server.ingest.text import snippet as text_snippet
from nova_mcp_server.schema import MAX_SYNC_BODY_BYTES, MAX_SYNC_MEDIA_SECONDS, Modality

MediaInput = Path | bytes | BinaryIO  # a path, the bytes, or the one open file (read from offset 0)

MAX_VIDEO_SIDE = 1280  # re-encoded windows: 720p-class is plenty for an embedding and keeps requests small
MAX_VIDEO_FPS = 30
MAX_AUDIO_RATE = 48_000
MAX_INLINE_RAW = int(MAX_SYNC_BODY_BYTES * 0.95 * 3 / 4)  # raw bytes whose base64 still fits one request
KEY_FRAME_SIDE = 1280
TAIL_MERGE_SECONDS = 1.0  # a last window shorter than this joins the one before (e.g. AAC priming)
TAIL_DROP_SECONDS = 0.5  # ... or is dropped if joining would exceed the sync limit
_TB = Fraction(1, 90_000)


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds, from the container start
    start: float  # container start time in seconds (timestamps are shifted by it)
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None


@contextmanager
def _open(src: MediaInput) -> Iterator[Any]:
    """Open media for reading; FFmpeg errors (while opening or decoding) become InvalidInput."""
    try:
        if isinstance(src, bytes):
            container = av.open(io.BytesIO(src), mode="r")
        elif isinstance(src, Path):
            container = av.open(str(src), mode="r")
        else:
            src.seek(0)
            container = av.open(src, mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"corrupt or truncated media: {_reason(exc)}") from None
    try:
        yield container
    except av.FFmpegError as exc:
        raise InvalidInput(f"corrupt or truncated media: {_reason(exc)}") from None
    finally:
        container.close()


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _video_stream(container: Any) -> Any | None:
    """The first real video stream (cover art in an mp3 is a 'video' stream marked attached_pic)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def probe(src: MediaInput) -> MediaInfo:
    """Duration and streams; raises InvalidInput for unreadable media or media without audio or video."""
    with _open(src) as container:
        video = _video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise InvalidInput("media has no audio or video stream.")
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
        duration = container.duration / av.time_base if container.duration else 0.0
        if duration <= 0:
            duration = max((_stream_seconds(s) for s in (video, audio) if s is not None), default=0.0)
        if duration <= 0:
            duration = _scan_duration(container, start)
        if duration <= 0:
            raise InvalidInput("media has no decodable content (zero duration).")
        return MediaInfo(
            duration=duration,
            start=start,
            has_video=video is not None,
            has_audio=audio is not None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
        )


def _stream_seconds(stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _scan_duration(container: Any, start: float) -> float:
    """Last packet end when the container does not say (raw streams): demux without decoding."""
    end = 0.0
    for packet in container.demux():
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return max(0.0, end - start)


def media_duration(path: MediaInput) -> float:
    """Length in seconds; the pipeline sends media longer than Nova's sync limit to an async job."""
    return probe(path).duration


def plan_windows(duration: float, seconds: float, limit: float | None = None) -> list[tuple[float, float]]:
    """Consecutive ``seconds``-long windows covering ``duration``; a sliver of a tail is merged or dropped."""
    if seconds <= 0:
        raise InvalidInput("segment_seconds must be positive.")
    count = max(1, math.ceil(duration / seconds - 1e-9))
    wins = [(i * seconds, min((i + 1) * seconds, duration)) for i in range(count)]
    if len(wins) > 1:
        (prev_start, _), (_, end) = wins[-2], wins[-1]
        tail = end - wins[-1][0]
        if tail < TAIL_MERGE_SECONDS and (limit is None or end - prev_start <= limit):
            wins[-2:] = [(prev_start, end)]
        elif tail < TAIL_DROP_SECONDS:
            wins.pop()
    return [(round(s, 3), round(e, 3)) for s, e in wins]


def _clock(t: float) -> str:
    whole = int(t)
    return (
        f"{whole // 60}:{whole % 60:02d}"
        if whole < 3600
        else f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    )


# ---- entry point ---------------------------------------------------------------------------------------------


def media_segments(
    src: MediaInput, fmt: str, info: EmbedderInfo, *, segment_seconds: int = 10, max_seconds: float | None = None
) -> Iterator[Segment]:
    """Segments of an audio or video source for ``info``'s embedder (see the module docstring)."""
    meta = probe(src)
    if max_seconds is not None and meta.duration > max_seconds:
        raise LimitExceeded(
            f"media lasts {meta.duration:,.0f} s; at most {max_seconds:,.0f} s are indexed per file.",
            "Cut it into parts, or raise NOVA_MCP_MAX_MEDIA_SECONDS.",
        )
    kind = "video" if meta.has_video else "audio"
    modality = Modality.VIDEO if meta.has_video else Modality.AUDIO
    if kind in info.modalities:
        yield from _nova_segments(src, fmt, meta, kind, modality, info, segment_seconds)
    elif kind == "video" and "image" in info.modalities:
        count = 0
        for segment in _key_frame_segments(src, meta, segment_seconds):
            yield segment
            count += 1
        if meta.has_audio and "text" in info.modalities and whisper_available():
            yield from _transcript_segments(src, info, segment_seconds, Modality.VIDEO, first_ordinal=count)
    elif kind == "audio" and "text" in info.modalities:
        if not whisper_available():
            raise InvalidInput(AUDIO_EXTRA_HINT + ".", "Or index audio with the aws backend (Nova embeds sound).")
        yield from _transcript_segments(src, info, segment_seconds, Modality.AUDIO, first_ordinal=0)
    else:
        raise InvalidInput(f"the {info.provider} embedder cannot embed {kind}.")


def _nova_segments(
    src: MediaInput,
    fmt: str,
    meta: MediaInfo,
    kind: str,
    modality: Modality,
    info: EmbedderInfo,
    segment_seconds: int,
) -> Iterator[Segment]:
    limit = info.max_sync_media_seconds or MAX_SYNC_MEDIA_SECONDS
    native = NOVA_VIDEO_FORMATS if kind == "video" else NOVA_AUDIO_FORMATS
    if meta.duration <= limit:
        size = _size_of(src)
        if fmt in native and size <= MAX_INLINE_RAW:
            yield _media_segment(0, modality, kind, _read_all(src), fmt, 0.0, meta.duration)
            return
        wins = [(0.0, round(meta.duration, 3))]
    else:
        wins = plan_windows(meta.duration, min(segment_seconds, limit), limit)
    out_fmt = "mp4" if kind == "video" else "wav"
    ordinal = 0
    for (start, end), data in zip(wins, cut_windows(src, meta, wins), strict=True):
        if data is None:
            continue
        yield _media_segment(ordinal, modality, kind, data, out_fmt, start, end)
        ordinal += 1
    if ordinal == 0:
        raise InvalidInput("media has no decodable frames.")


def _size_of(src: MediaInput) -> int:
    if isinstance(src, bytes):
        return len(src)
    if isinstance(src, Path):
        return src.stat().st_size
    return os.fstat(src.fileno()).st_size


def _read_all(src: MediaInput) -> bytes:
    if isinstance(src, bytes):
        return src
    if isinstance(src, Path):
        return src.read_bytes()
    src.seek(0)
    return src.read()


def _media_segment(
    ordinal: int, modality: Modality, kind: str, data: bytes, fmt: str, start: float, end: float
) -> Segment:
    return Segment(
        ordinal=ordinal,
        modality=modality,
        embed_as="video" if kind == "video" else "audio",
        media=data,
        media_format=fmt,
        start_s=round(start, 3),
        end_s=round(end, 3),
        snippet=f"{kind} {_clock(start)}-{_clock(end)}",
    )


# ---- cutting windows (one decoding pass) -------------------------------------------------------------------


class _WindowWriter:
    """One window's output file in memory: mp4 (h264 + aac) when there is video, else wav (pcm s16)."""

    def __init__(self, video: dict[str, Any] | None, audio: dict[str, Any] | None) -> None:
        self.buf = io.BytesIO()
        self.out = av.open(self.buf, mode="w", format="mp4" if video else "wav")
        self.video = self.audio = None
        self.frames = 0
        self.samples = 0
        self._last_pts = -1
        if video is not None:
            self.video = self.out.add_stream("libx264", rate=video["fps"])
            self.video.width, self.video.height, self.video.pix_fmt = video["width"], video["height"], "yuv420p"
            self.video.time_base = _TB
            self.video.codec_context.time_base = _TB
            self.video.options = {"preset": "veryfast", "crf": "23"}
        if audio is not None:
            self.audio = self.out.add_stream("aac" if video else "pcm_s16le", rate=audio["rate"])
            self.audio.layout = audio["layout"]
            if video is not None:
                self.audio.options = {"aac_coder": "fast"}
                self.audio.bit_rate = 128_000

    def add_video(self, frame: Any, rel: float) -> None:
        assert self.video is not None
        out = frame.reformat(width=self.video.width, height=self.video.height, format="yuv420p")
        pts = max(int(round(rel / _TB)), self._last_pts + 1)
        self._last_pts = pts
        out.pts, out.time_base = pts, _TB
        self.out.mux(self.video.encode(out))
        self.frames += 1

    def add_audio(self, planes: np.ndarray, rel_sample: int, layout: str, rate: int) -> None:
        assert self.audio is not None
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, rel_sample, Fraction(1, rate)
        self.out.mux(self.audio.encode(frame))
        self.samples += planes.shape[1]

    def finish(self) -> bytes | None:
        if self.frames == 0 and self.samples == 0:
            self.out.close()
            return None
        for stream in (self.video, self.audio):
            if stream is not None:
                self.out.mux(stream.encode(None))
        self.out.close()
        return self.buf.getvalue()


def _even_fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height, 1))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def cut_windows(src: MediaInput, meta: MediaInfo, windows: list[tuple[float, float]]) -> Iterator[bytes | None]:
    """Re-encode each window (seconds from the media start) in one pass; None for a window with no frames."""
    starts = [s for s, _ in windows]
    with _open(src) as inp:
        vin = _video_stream(inp)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        vspec: dict[str, Any] | None = None
        aspec: dict[str, Any] | None = None
        if vin is not None:
            vin.thread_type = "AUTO"
            width, height = _even_fit(vin.codec_context.width, vin.codec_context.height, MAX_VIDEO_SIDE)
            rate = vin.average_rate or vin.guessed_rate or 25
            vspec = {"width": width, "height": height, "fps": min(Fraction(rate).limit_denominator(1001), 30)}
        resampler = None
        if ain is not None:
            layout = "mono" if ain.codec_context.channels == 1 else "stereo"
            sample_rate = min(ain.codec_context.sample_rate or 44_100, MAX_AUDIO_RATE)
            aspec = {"layout": layout, "rate": sample_rate}
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        writers: dict[int, _WindowWriter] = {}
        emitted = 0
        video_at = -math.inf if vin is not None else math.inf
        audio_at = -math.inf if ain is not None else math.inf
        cursor: int | None = None  # index of the next resampled audio sample on the media timeline

        def writer(k: int) -> _WindowWriter:
            if k not in writers:
                writers[k] = _WindowWriter(vspec, aspec)
            return writers[k]

        def window_of(t: float) -> int | None:
            k = bisect.bisect_right(starts, t) - 1
            return k if k >= 0 and t < windows[k][1] else None

        def feed_audio(frames: list[Any], first_time: float | None) -> None:
            nonlocal cursor, audio_at
            assert aspec is not None
            for rf in frames:
                if cursor is None:
                    cursor = int(round(((first_time or meta.start) - meta.start) * aspec["rate"]))
                planes = rf.to_ndarray()
                _spread_audio(planes, cursor, windows, aspec, writer)
                cursor += planes.shape[1]
            if cursor is not None:
                audio_at = cursor / aspec["rate"]

        streams = [s for s in (vin, ain) if s is not None]
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if packet.stream is vin:
                    if frame.time is None:
                        continue
                    t = frame.time - meta.start
                    k = window_of(t)
                    if k is not None:
                        writer(k).add_video(frame, t - windows[k][0])
                    video_at = max(video_at, t)
                elif resampler is not None:
                    feed_audio(resampler.resample(frame), frame.time)
            while emitted < len(windows) and min(video_at, audio_at) >= windows[emitted][1]:
                yield _finish(writers, emitted)
                emitted += 1
        if resampler is not None:
            feed_audio(resampler.resample(None), None)
        while emitted < len(windows):
            yield _finish(writers, emitted)
            emitted += 1


def _finish(writers: dict[int, _WindowWriter], k: int) -> bytes | None:
    w = writers.pop(k, None)
    return w.finish() if w is not None else None


def _spread_audio(planes: np.ndarray, first: int, windows: list[tuple[float, float]], spec: dict, writer) -> None:
    """Hand the samples [first, first + n) to every window they overlap, cut at exact sample positions."""
    rate = spec["rate"]
    last = first + planes.shape[1]
    for k, (start, end) in enumerate(windows):
        lo, hi = int(round(start * rate)), int(round(end * rate))
        a, b = max(lo, first), min(hi, last)
        if a < b:
            writer(k).add_audio(planes[:, a - first : b - first], a - lo, spec["layout"], rate)


# ---- local backend: key frames and transcripts --------------------------------------------------------------


def _key_frame_segments(src: MediaInput, meta: MediaInfo, segment_seconds: int) -> Iterator[Segment]:
    wins = plan_windows(meta.duration, segment_seconds)
    for ordinal, ((start, end), (jpeg, at)) in enumerate(zip(wins, key_frames(src, meta, wins), strict=True)):
        yield Segment(
            ordinal=ordinal,
            modality=Modality.VIDEO,
            embed_as="image",
            media=jpeg,
            media_format="jpeg",
            start_s=start,
            end_s=end,
            snippet=f"video frame at {_clock(at)} ({_clock(start)}-{_clock(end)})",
        )


def key_frames(src: MediaInput, meta: MediaInfo, windows: list[tuple[float, float]]) -> Iterator[tuple[bytes, float]]:
    """One JPEG per window: the frame shown at the window's midpoint (found by seeking, not decoding it all)."""
    with _open(src) as inp:
        stream = _video_stream(inp)
        if stream is None:
            raise InvalidInput("media has no video stream.")
        stream.thread_type = "AUTO"
        last: Any = None
        for start, end in windows:
            frame = _frame_near(inp, stream, meta.start + (start + end) / 2, meta.start + end) or last
            if frame is None:
                raise InvalidInput("media has no decodable video frames.")
            last = frame
            image = frame.to_image()
            image.thumbnail((KEY_FRAME_SIDE, KEY_FRAME_SIDE), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            image.convert("RGB").save(buf, "JPEG", quality=90)
            yield buf.getvalue(), round(frame.time - meta.start, 3)


def _frame_near(inp: Any, stream: Any, target: float, limit: float) -> Any | None:
    """First frame at or after ``target`` (absolute seconds); seek first, fall back to decoding from the start."""
    for seek_to in (target, None):
        if seek_to is not None:
            inp.seek(max(0, int(seek_to / stream.time_base)), stream=stream)
        else:
            inp.seek(0, stream=stream)
        best = None
        for frame in inp.decode(stream):
            if frame.time is None:
                continue
            if best is not None and frame.time > limit:
                break
            best = frame
            if frame.time >= target - 1e-3:
                break
        if best is not None and best.time <= limit:
            return best
    return best


def _speech_samples(src: MediaInput, meta: MediaInfo) -> tuple[np.ndarray, float]:
    """The first audio stream as mono float32 at 16 kHz, and where it starts (seconds from the media start).

    Decoded here rather than by faster-whisper so corrupt media gives our InvalidInput, a damaged packet is
    skipped instead of ending the file, and a stream starting late keeps its place on the media timeline.
    """
    chunks: list[np.ndarray] = []
    first: float | None = None
    with _open(src) as inp:
        if not inp.streams.audio:
            raise InvalidInput("media has no audio stream.")
        stream = inp.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=speech.SAMPLE_RATE)
        for packet in inp.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                if first is None and frame.time is not None:
                    first = frame.time
                chunks.extend(rf.to_ndarray().reshape(-1) for rf in resampler.resample(frame))
        chunks.extend(rf.to_ndarray().reshape(-1) for rf in resampler.resample(None))
    if not chunks:
        raise InvalidInput("media has no decodable audio.")
    offset = max(0.0, (first if first is not None else meta.start) - meta.start)
    return np.concatenate(chunks).astype(np.float32, copy=False), offset


def _transcript_segments(
    src: MediaInput,
    info: EmbedderInfo,
    segment_seconds: int,
    modality: Modality,
    *,
    first_ordinal: int,
) -> Iterator[Segment]:
    """Speech-to-text windows as text segments: whisper's phrases grouped up to ``segment_seconds`` each.

    Only the local backend comes here (Nova embeds sound itself); the model and its settings are in `speech`.
    A phrase longer than the embedder reads is split by words (times shared out by length), not cut off.
    Audio without any speech is refused (there is nothing to index); a silent video keeps its key frames.
    """
    meta = probe(src)
    samples, offset = _speech_samples(src, meta)
    phrases = speech.transcribe(samples)
    if not phrases and modality is Modality.AUDIO:
        raise InvalidInput(
            f"no speech was found in the audio ({meta.duration:.1f} s): the local backend indexes audio by its "
            "transcript.",
            "Index music or other sounds with the aws backend (Nova embeds sound itself).",
        )
    limit, cap = info.max_text_chars, meta.duration  # times are grouped as heard, reported within the media
    ordinal, text, start, end = first_ordinal, "", None, 0.0
    for piece in _fit_phrases(phrases, limit):
        p_start, p_end = piece.start + offset, max(piece.end, piece.start) + offset
        joined = f"{text} {piece.text}".strip()
        if start is not None and text and (p_end - start > segment_seconds or len(joined) > limit):
            yield _transcript(ordinal, modality, text, min(start, cap), min(end, cap))
            ordinal += 1
            text, start = piece.text, p_start
        else:
            text, start = joined, p_start if start is None else start
        end = max(end, p_end)
    if text and start is not None:
        yield _transcript(ordinal, modality, text, min(start, cap), min(end, cap))


def _fit_phrases(phrases: list[speech.Phrase], limit: int) -> Iterator[speech.Phrase]:
    """Phrases of at most ``limit`` characters: a longer one is split between words, its time shared by length."""
    for phrase in phrases:
        if len(phrase.text) <= limit:
            yield phrase
            continue
        parts: list[str] = []
        for word in phrase.text.split():
            if parts and len(parts[-1]) + 1 + len(word) <= limit:
                parts[-1] += " " + word
            else:
                parts.append(word[:limit])
        total, at = sum(len(p) for p in parts), phrase.start
        for part in parts:
            step = (phrase.end - phrase.start) * len(part) / total
            yield speech.Phrase(at, at + step, part)
            at += step


def _transcript(ordinal: int, modality: Modality, text: str, start: float, end: float) -> Segment:
    return Segment(
        ordinal=ordinal,
        modality=modality,
        embed_as="text",
        text=text,
        start_s=round(start, 3),
        end_s=round(end, 3),
        snippet=f"transcript {_clock(start)}-{_clock(end)}: {text_snippet(text, 240)}",
    )
