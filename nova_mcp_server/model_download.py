"""Get the local model onto disk before the first tool call needs it.

The local backend's CLIP pair is 0.6-0.9 GB. Downloaded inside the first embedding call, it outlasts every
client's tool-call timeout, so it is fetched either by `nova-multimodal-mcp download-model` (progress bar on
stderr) or by the server in a background thread started after `initialize`; until it is done, embedding calls
answer at once with "model downloading, N %" (`ModelDownloader.busy_error`) instead of waiting.

The download is fastembed's own (`download_model` of the registry class that serves the model name, into the
cache folder `LocalEmbedder` reads with `local_files_only`), so what lands on disk is exactly what loading
expects. Progress comes from huggingface_hub's byte counters through the `tqdm_class` hook, which fastembed
passes on to `snapshot_download`; the bars draw nothing (stdout stays protocol-only in stdio mode).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from tqdm import tqdm

from nova_mcp_server.embedders.families import Family
from nova_mcp_server.errors import ModelUnavailable

log = logging.getLogger(__name__)

Kind = Literal["text", "image"]
State = Literal["not started", "downloading", "ready", "failed"]
OnProgress = Callable[[int, int], None]  # (bytes done, bytes expected)
# (kind, fastembed model name, cache folder, tqdm class, cache only) -> the model's folder
Download = Callable[[Kind, str, Path, type, bool], Path]


class DownloadStatus(BaseModel):
    """Where the local model stands; what `doctor` and the `download-model` command show."""

    model: str
    source: Literal["download", "model folder"]
    folder: str
    state: State
    done_bytes: int = 0
    expected_bytes: int = 0
    percent: int | None = None
    error: str | None = None


@contextmanager
def _fastembed_quiet() -> Iterator[None]:
    """fastembed logs ERROR lines (loguru) when a model is not in the cache; a cache probe expects that."""
    from loguru import logger

    logger.disable("fastembed")
    try:
        yield
    finally:
        logger.enable("fastembed")


def _registry_entry(kind: Kind, model_name: str) -> tuple[Any, Any]:
    """fastembed's implementation class and model description for `model_name` (what TextEmbedding() looks up)."""
    from fastembed import ImageEmbedding, TextEmbedding

    front: Any = TextEmbedding if kind == "text" else ImageEmbedding
    for impl in front.EMBEDDINGS_REGISTRY:
        for description in impl._list_supported_models():
            if description.model.lower() == model_name.lower():
                return impl, description
    raise ModelUnavailable(
        f"fastembed {kind} models have no {model_name}.", "Upgrade fastembed or pick another family."
    )


def fastembed_download(kind: Kind, model_name: str, cache_dir: Path, tqdm_class: type, cache_only: bool) -> Path:
    """fastembed's download of one tower into `cache_dir`; `cache_only` (or HF_HUB_OFFLINE) only looks in it."""
    impl, description = _registry_entry(kind, model_name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = impl.download_model(description, str(cache_dir), tqdm_class=tqdm_class, local_files_only=cache_only)
    return Path(found)


class ModelDownloader:
    """Downloads one family's text and vision towers once, and reports how far it got."""

    def __init__(
        self,
        family: Family,
        cache_dir: Path,
        *,
        model_path: Path | None = None,
        download: Download = fastembed_download,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.family = family
        self.cache_dir = cache_dir
        self.model_path = model_path
        self._download = download
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()
        self._expected = int(family.download_gb * 1e9)
        self._done_before = 0  # bytes of towers already finished
        self._bars: list[tqdm] = []
        self._state: State = "not started"
        self._error: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> ModelDownloader:
        """The family, cache folder and model folder exactly as `LocalEmbedder.from_settings` reads them."""
        from nova_mcp_server.embedders.local import LocalEmbedder

        embedder = LocalEmbedder.from_settings(settings)  # cheap: loads nothing
        cache = embedder.cache_dir or Path(settings.data_dir) / "models"
        return cls(embedder.family, cache, model_path=embedder.model_path, **kwargs)

    # ---- progress ----------------------------------------------------------------------------------------

    def _bytes(self) -> tuple[int, int]:
        with self._lock:
            bars = [b for b in self._bars if getattr(b, "unit", "") == "B"]
            done = self._done_before + max((int(b.n) for b in bars), default=0)
            known = self._done_before + max((int(b.total or 0) for b in bars), default=0)
        return done, max(self._expected, known, done)

    def _tracker(self) -> type:
        owner = self

        class Tracker(tqdm):
            """A silent tqdm: huggingface_hub updates it, we read its counters."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                kwargs["file"] = io.StringIO()
                super().__init__(*args, **kwargs)
                with owner._lock:
                    owner._bars.append(self)

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                if owner.on_progress is not None:
                    owner.on_progress(*owner._bytes())
                return shown

        return Tracker

    def status(self) -> DownloadStatus:
        if self.model_path is not None:
            missing = self.family.missing_files(self.model_path)
            return DownloadStatus(
                model=self.family.name,
                source="model folder",
                folder=str(self.model_path),
                state="failed" if missing else "ready",
                error=f"missing {', '.join(missing)}" if missing else None,
            )
        done, expected = self._bytes()
        percent = 100 if self._state == "ready" else min(99, done * 100 // expected) if expected else None
        return DownloadStatus(
            model=self.family.name,
            source="download",
            folder=str(self.cache_dir),
            state=self._state,
            done_bytes=done,
            expected_bytes=expected,
            percent=percent if self._state != "not started" else None,
            error=self._error,
        )

    def busy_error(self) -> ModelUnavailable | None:
        """While the download runs: the error an embedding call answers with at once; None otherwise."""
        status = self.status()
        if status.state != "downloading":
            return None
        return ModelUnavailable(
            f"The local model {status.model} is downloading, {status.percent or 0} % done "
            f"({status.done_bytes / 1e6:.0f} of ~{status.expected_bytes / 1e6:.0f} MB).",
            "Try again in a minute; nova://capabilities shows the progress.",
        )

    # ---- running -----------------------------------------------------------------------------------------

    def run(self) -> DownloadStatus:
        """Download both towers (blocking); a cached tower costs nothing. Never raises: the status says."""
        if self.model_path is not None:
            self._finished.set()
            return self.status()
        self._state = "downloading"
        try:
            for kind, name in self.towers():
                self._download(kind, name, self.cache_dir, self._tracker(), False)
                done, _ = self._bytes()
                with self._lock:
                    self._done_before, self._bars = done, []
        except Exception as exc:  # network, disk, hub: reported, not raised
            self._state, self._error = "failed", str(exc) or type(exc).__name__
            log.warning("local model download failed: %s", self._error)
        else:
            self._state = "ready"
        finally:
            self._finished.set()
        return self.status()

    def towers(self) -> list[tuple[Kind, str]]:
        return [("text", self.family.text), ("image", self.family.vision)]

    def cached(self) -> bool:
        """Both towers are in the cache folder already (looked up without any network call)."""
        if self.model_path is not None:
            return not self.family.missing_files(self.model_path)
        try:
            with _fastembed_quiet():
                for kind, name in self.towers():
                    self._download(kind, name, self.cache_dir, self._tracker(), True)
        except Exception:  # fastembed raises plain exceptions for "not in the cache"
            return False
        return True

    def start(self) -> None:
        """Run in a daemon thread (once); returns at once."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self.run, name="nova-model-download", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)
