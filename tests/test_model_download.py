"""The local model is fetched before the first call needs it: `ModelDownloader` and `download-model`.

Downloads here never touch the network: a fake stands in for fastembed's download and drives the progress
bar hook exactly as huggingface_hub does (a byte bar whose total grows as files start), and pauses on an
event so the test can look at the state mid-download. fastembed's real download code is run offline, where it
must find both families' towers in its registry and then report that the cache is empty.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from nova_mcp_server.embedders.families import family_named
from nova_mcp_server.errors import ModelUnavailable
from nova_mcp_server.model_download import ModelDownloader, fastembed_download
from nova_mcp_server.settings import Settings
from nova_mcp_server.setup_commands import download_model

CLIP = family_named("Qdrant/clip-ViT-B-32")
MB = 1_000_000


class FakeHub:
    """Writes each tower's files while updating a `tqdm_class` byte bar like snapshot_download's aggregate bar."""

    def __init__(self, sizes: dict[str, int], pause_at: tuple[str, int] | None = None) -> None:
        self.sizes = sizes
        self.pause_at = pause_at
        self.paused, self.resume = threading.Event(), threading.Event()
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(self, kind: str, name: str, cache: Path, tqdm_class: type, cache_only: bool) -> Path:
        self.calls.append((kind, name, cache_only))
        folder = cache / name.replace("/", "--")
        if cache_only:
            if not folder.is_dir():
                raise ValueError(f"Could not load model {name} from any source.")
            return folder
        bar = tqdm_class(desc="Downloading bytes", total=0, initial=0, unit="B", unit_scale=True)
        files = tqdm_class(desc="Fetching 2 files", total=2)  # the file-count bar: not bytes, not counted
        bar.total = self.sizes[name]
        for _ in range(10):
            bar.update(self.sizes[name] // 10)
            if self.pause_at == (name, bar.n) and not self.paused.is_set():
                self.paused.set()
                assert self.resume.wait(30)
        files.update(2)
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"onnx")
        return folder


def test_download_reports_progress_and_answers_busy_until_ready(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hub = FakeHub({CLIP.text: 250 * MB, CLIP.vision: 350 * MB}, pause_at=(CLIP.vision, 140 * MB))
    seen: list[tuple[int, int]] = []
    downloader = ModelDownloader(CLIP, tmp_path / "models", download=hub, on_progress=lambda d, e: seen.append((d, e)))
    assert downloader.status().state == "not started" and downloader.busy_error() is None
    downloader.start()
    downloader.start()  # once only
    assert hub.paused.wait(30)
    status = downloader.status()
    assert status.state == "downloading" and status.done_bytes == 390 * MB and status.expected_bytes == 600 * MB
    assert status.percent == 65
    busy = downloader.busy_error()
    assert isinstance(busy, ModelUnavailable)
    assert "is downloading, 65 % done (390 of ~600 MB)" in busy.text and "Try again" in busy.text
    hub.resume.set()
    assert downloader.wait(30)
    status = downloader.status()
    assert (status.state, status.percent, status.done_bytes) == ("ready", 100, 600 * MB)
    assert downloader.busy_error() is None
    assert [c[:2] for c in hub.calls] == [("text", CLIP.text), ("image", CLIP.vision)]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (600 * MB, 600 * MB)
    assert downloader.cached()
    assert capsys.readouterr().out == ""  # the bars draw nothing: stdout stays protocol-only


def test_a_failed_download_says_why_and_stops_being_busy(tmp_path: Path) -> None:
    def broken(*_: Any) -> Path:
        raise OSError("No space left on device")

    downloader = ModelDownloader(CLIP, tmp_path / "models", download=broken)
    status = downloader.run()
    assert status.state == "failed" and status.error == "No space left on device"
    assert downloader.busy_error() is None and downloader.wait(0)


def test_a_model_folder_needs_no_download(tmp_path: Path, tiny_model: Path) -> None:
    ready = ModelDownloader.from_settings(Settings(data_dir=tmp_path, local_model_path=tiny_model)).run()
    assert (ready.state, ready.source, ready.folder) == ("ready", "model folder", str(tiny_model))
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = ModelDownloader(CLIP, tmp_path / "models", model_path=empty).run()
    assert broken.state == "failed" and "text/" in (broken.error or "")


def test_the_cache_folder_is_the_one_the_local_embedder_reads(tmp_path: Path) -> None:
    from nova_mcp_server.embedders.local import LocalEmbedder

    settings = Settings(data_dir=tmp_path, local_model="Qdrant/clip-ViT-B-32")
    downloader = ModelDownloader.from_settings(settings)
    assert downloader.cache_dir == LocalEmbedder.from_settings(settings).cache_dir
    assert downloader.family is CLIP


@pytest.mark.parametrize("family", ["Qdrant/clip-ViT-B-32", "jinaai/jina-clip-v1"])
def test_fastembeds_own_download_runs_offline_up_to_the_empty_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chosen = family_named(family)
    downloader = ModelDownloader(chosen, tmp_path / "models")  # the real fastembed_download
    assert not downloader.cached()
    status = downloader.run()
    assert status.state == "failed" and "Could not load model" in (status.error or "")
    with pytest.raises(ModelUnavailable, match="no not/a-model"):
        fastembed_download("text", "not/a-model", tmp_path, object, True)


def test_download_model_command_draws_a_bar_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("NOVA_MCP_PROGRESS", "1")
    monkeypatch.setenv("COLUMNS", "120")
    hub = FakeHub({CLIP.text: 250 * MB, CLIP.vision: 350 * MB})
    downloader = ModelDownloader(CLIP, tmp_path / "models", download=hub)
    assert download_model(Settings(data_dir=tmp_path), downloader=downloader) == 0
    captured = capsys.readouterr()
    assert f"local model {CLIP.name} is ready in {tmp_path / 'models'}" in captured.out
    assert "━" in captured.err and "600.0 MB" in captured.err and f"downloading {CLIP.name}" in captured.err


def test_download_model_command_fails_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    downloader = ModelDownloader(CLIP, tmp_path / "models")
    assert download_model(Settings(data_dir=tmp_path), downloader=downloader, json_output=False) == 1
    err = capsys.readouterr().err
    assert "could not be made ready" in err and "HF_HUB_OFFLINE is set: unset it" in err
