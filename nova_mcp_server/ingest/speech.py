"""Speech to text for the local backend (the optional ``audio`` extra): faster-whisper on CTranslate2.

CLIP cannot hear, so on the local backend audio (and the sound of a video) is indexed by its transcript.

Why this shape:
- The model comes the way faster-whisper gets it for everyone: ``download_model`` of a size name from the
  Systran repositories on the Hugging Face hub, once, into ``<data_dir>/models/whisper`` (the hub's cache
  layout, so a model downloaded there is found offline). The default is ``tiny.en`` (75 MB, MIT,
  Systran/faster-whisper-tiny.en): English only but ~10x faster than real time on 2 cores, and good enough
  for CLIP's 77-token text tower, which only reads the gist anyway. No third-party wheel ships weights to us.
  `download` fetches it ahead of time (a ``download-model`` step), so the first audio file does not wait on
  it. ``NOVA_MCP_WHISPER_MODEL`` picks another size name ("base", "small", ...) or hub id, or a local folder.
- Loaded once per process (per model), under a lock, whatever number of files or threads ask for it; one
  transcription runs at a time on at most 2 CPU threads, so indexing never starves the server.
- Never hangs offline. A folder is used as it is (we check it holds ``tokenizer.json``, or faster-whisper
  would fetch one from the hub). A size name is looked up in the cache first; if it is not there,
  ``HF_HUB_OFFLINE`` or a hub that does not answer one bounded request gives ``ModelUnavailable`` at once,
  saying how to get a model, instead of the hub client's retries.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nova_mcp_server.errors import InvalidInput, ModelUnavailable

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper reads
DEFAULT_MODEL = "tiny.en"  # a faster-whisper size name: Systran/faster-whisper-tiny.en
MAX_THREADS = 2
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
WHISPER_SETTING = "NOVA_MCP_WHISPER_MODEL"
AUDIO_EXTRA_HINT = "audio on the local backend needs the audio extra: pip install 'nova-multimodal-mcp[audio]'"


@dataclass(frozen=True)
class Phrase:
    """One stretch of recognised speech, in seconds from the start of the samples it came from."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class _Config:
    model: str | None
    cache_dir: Path | None


_config: _Config | None = None
_models: dict[tuple[Any, str], Any] = {}  # (WhisperModel class, model folder) -> loaded model
_load_lock = threading.Lock()
_run_lock = threading.Lock()


def whisper_available() -> bool:
    """True when faster-whisper imports (the audio extra is installed)."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


def configure(model: str | None = None, cache_dir: Path | str | None = None) -> None:
    """Use these instead of ``NOVA_MCP_WHISPER_MODEL`` / ``<NOVA_MCP_DATA_DIR>/models`` (flags beat env)."""
    global _config
    _config = _Config(model or None, Path(cache_dir).expanduser() if cache_dir is not None else None)


def default_model() -> str:
    """The model used when ``NOVA_MCP_WHISPER_MODEL`` is unset: ``tiny.en``, downloaded once by faster-whisper."""
    return DEFAULT_MODEL


def download(model: str | None = None, cache_dir: Path | None = None, *, hub_timeout: float = 10.0) -> Path:
    """Make the speech-to-text model ready on disk now and return its folder (the ``download-model`` step).

    A folder setting is only checked; a size name already in the cache is found offline; otherwise it is
    downloaded, unless offline (``HF_HUB_OFFLINE``, or a hub that does not answer one bounded request), which
    raises ModelUnavailable at once saying how to get a model.
    """
    try:
        import faster_whisper  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(AUDIO_EXTRA_HINT + ".") from exc
    configured, default_cache = _settings() if model is None or cache_dir is None else (model, cache_dir)
    with _load_lock:
        return _model_folder(
            model or configured, Path(cache_dir) if cache_dir is not None else default_cache, hub_timeout
        )


def _settings() -> tuple[str, Path]:
    """(model, cache dir): `configure`'s values, else the environment's (via `Settings`), else defaults."""
    model = _config.model if _config is not None else None
    cache = _config.cache_dir if _config is not None else None
    if model is None or cache is None:
        from nova_mcp_server.settings import Settings

        settings = Settings()
        model = model or settings.whisper_model
        cache = cache or Path(settings.data_dir) / "models"
    return model or default_model(), cache / "whisper"


def transcribe(
    samples: np.ndarray, *, model: str | None = None, cache_dir: Path | None = None, hub_timeout: float = 10.0
) -> list[Phrase]:
    """Phrases spoken in ``samples`` (mono float32 at 16 kHz); VAD skips silence and music cheaply.

    Whisper's phrase times (snapped to its timestamp tokens) include the pauses around a phrase, so a hit's
    range starts before the first word; word timestamps (tried: ~5% slower) start ~0.3 s late as often.
    Not conditioning on the previous text keeps one misheard phrase from looping through a long recording.

    Raises InvalidInput without the audio extra; ModelUnavailable for a bad model setting or a model that
    cannot be loaded (offline and not downloaded, incomplete folder) or fails.
    """
    whisper = load_model(model, cache_dir, hub_timeout=hub_timeout)
    audio = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    with _run_lock:  # ctranslate2 would queue a second call anyway; this also keeps feature extraction serial
        try:
            pieces, _ = whisper.transcribe(audio, vad_filter=True, condition_on_previous_text=False)
            phrases = [Phrase(float(p.start), float(p.end), p.text.strip()) for p in pieces]
        except Exception as exc:  # ctranslate2 / onnxruntime (VAD) failures
            raise ModelUnavailable(f"Speech-to-text failed: {exc or 'no details given'}") from exc
    return [p for p in phrases if p.text]


def load_model(model: str | None = None, cache_dir: Path | None = None, *, hub_timeout: float = 10.0) -> Any:
    """The WhisperModel for ``model`` (default: the setting), loaded once per process; see the module docstring.

    ``cache_dir`` is where size names are downloaded (default ``<data_dir>/models/whisper``).
    """
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise InvalidInput(AUDIO_EXTRA_HINT + ".", "Or index audio with the aws backend (Nova embeds sound).") from exc
    configured, default_cache = _settings() if model is None or cache_dir is None else (model, cache_dir)
    spec = model or configured
    cache = Path(cache_dir) if cache_dir is not None else default_cache
    with _load_lock:
        folder = _model_folder(spec, cache, hub_timeout)
        key = (WhisperModel, str(folder.resolve()))  # the class too: tests swap faster_whisper for a stand-in
        if key not in _models:
            log.info("loading the speech-to-text model %s", folder)
            try:
                _models[key] = WhisperModel(
                    str(folder),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=min(MAX_THREADS, os.cpu_count() or 1),
                    num_workers=1,
                )
            except Exception as exc:  # a corrupt model.bin, an incompatible CTranslate2 version, ...
                raise ModelUnavailable(
                    f"The speech-to-text model in {folder} could not be loaded: {exc or 'no details given'}",
                    _how_to_get_one(cache),
                ) from exc
        return _models[key]


def _model_folder(spec: str, cache: Path, hub_timeout: float) -> Path:
    """A complete local model folder for ``spec``: the folder itself, or the cached (or new) download."""
    path = Path(spec).expanduser()
    if path.is_dir() or _looks_like_path(spec):
        return _checked_folder(path, spec, cache)
    from faster_whisper.utils import available_models, download_model

    if spec not in available_models() and spec.count("/") != 1:
        raise ModelUnavailable(
            f"{WHISPER_SETTING}={spec!r} is neither a model folder nor a faster-whisper model.",
            f"Use a size name ({', '.join(available_models())}), a hub id like Systran/faster-whisper-small, or a "
            f"folder with a CTranslate2 Whisper model; unset it for {DEFAULT_MODEL}.",
        )
    try:
        found = download_model(spec, cache_dir=str(cache), local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache
        found = None
    if found is None:
        if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _hub_offline_constant():
            raise _not_downloaded(spec, cache, "HF_HUB_OFFLINE is set, so it cannot be downloaded")
        reason = _hub_unreachable(hub_timeout)
        if reason:
            raise _not_downloaded(spec, cache, f"the model hub is not reachable ({reason})")
        log.warning("downloading the speech-to-text model %s into %s (once)", spec, cache)
        try:
            found = download_model(spec, cache_dir=str(cache))
        except Exception as exc:
            raise _not_downloaded(spec, cache, f"the download failed ({exc or 'no details given'})") from exc
    return _checked_folder(Path(found), spec, cache)


def _checked_folder(path: Path, spec: str, cache: Path) -> Path:
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if not path.is_dir() or missing:
        what = "does not exist" if not path.is_dir() else f"is missing {', '.join(missing)}"
        raise ModelUnavailable(
            f"The speech-to-text model folder {path} ({WHISPER_SETTING}={spec}) {what}.", _how_to_get_one(cache)
        )
    return path


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "~", ".", "\\")) or (len(spec) > 1 and spec[1] == ":") or spec.count("/") > 1


def _how_to_get_one(cache: Path) -> str:
    return (
        f"Set {WHISPER_SETTING} to a folder with a CTranslate2 Whisper model ({', '.join(MODEL_FILES)}), to a "
        f"faster-whisper size such as 'base', or unset it for {DEFAULT_MODEL}: a size is downloaded once into "
        f"{cache} with internet access (the audio extra, pip install 'nova-multimodal-mcp[audio]', brings "
        "faster-whisper)."
    )


def _not_downloaded(spec: str, cache: Path, why: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"The speech-to-text model '{spec}' is not downloaded yet and {why}.", _how_to_get_one(cache)
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "TRUE", "YES", "ON"}


def _hub_offline_constant() -> bool:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import; honour that too."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a faster-whisper dependency
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_unreachable(timeout: float) -> str | None:
    """One bounded HEAD request to the hub, in a daemon thread so even a stuck DNS lookup cannot hang us.

    Any HTTP answer counts as reachable; the download itself then reports a missing repository.
    """
    result: list[str | None] = []
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"

    def probe() -> None:
        try:
            import httpx

            httpx.head(endpoint, timeout=timeout)
            result.append(None)
        except Exception as exc:
            result.append((str(exc).strip() or "no answer")[:300])

    thread = threading.Thread(target=probe, name="nova-whisper-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return result[0] if result else f"no answer from {endpoint} within {timeout:g} s"
