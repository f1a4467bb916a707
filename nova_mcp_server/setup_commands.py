"""`doctor` and `download-model`: the two commands that prepare a machine, run before any server or core exists.

Both need only settings (no store is opened, no model loaded). Results go to stdout (text, or JSON with
`--json`); the download's progress bar goes to stderr, drawn only on a terminal (or with NOVA_MCP_PROGRESS=1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from nova_mcp_server import doctor
from nova_mcp_server.model_download import DownloadStatus, ModelDownloader


def _emit(model: BaseModel) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


def run(command: str, settings: Any, *, json_output: bool = False, with_speech: bool = False) -> int:
    if command == "doctor":
        report = doctor.run_doctor(settings)
        _emit(report) if json_output else print(doctor.render(report))
        return 0 if report.ok else 1
    code = download_model(settings, json_output=json_output)
    return max(code, download_speech(settings)) if with_speech else code


def download_speech(settings: Any) -> int:
    """The speech-to-text model local audio needs (audio extra), into the folder ingest/speech.py reads."""
    from nova_mcp_server.errors import NovaError
    from nova_mcp_server.ingest import speech

    model = settings.whisper_model or speech.default_model()
    try:
        folder = speech.download(model, Path(settings.data_dir) / "models" / "whisper")
    except NovaError as exc:
        Console(stderr=True).print(f"speech model {model}: {exc.text}", markup=False, highlight=False, soft_wrap=True)
        return 1
    print(f"speech model {model} is ready in {folder}")
    return 0


def describe(status: DownloadStatus) -> str:
    if status.state == "ready":
        where = "uses the model folder" if status.source == "model folder" else "is ready in"
        return f"local model {status.model} {where} {status.folder}"
    hint = (
        "HF_HUB_OFFLINE is set: unset it, or set NOVA_MCP_LOCAL_MODEL_PATH to a model folder"
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        else "check the network (huggingface.co) and the free disk space, then run this again"
    )
    why = (status.error or "unknown error").rstrip(".")
    return f"local model {status.model} could not be made ready in {status.folder}: {why}. Fix: {hint}."


def download_model(settings: Any, *, json_output: bool = False, downloader: ModelDownloader | None = None) -> int:
    """Download both towers of the configured family with a progress bar; exit 0 once they are on disk."""
    err = Console(stderr=True)
    show = not json_output and (err.is_terminal or os.environ.get("NOVA_MCP_PROGRESS") == "1")
    dl = downloader or ModelDownloader.from_settings(settings)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
    ) as bar:
        task = bar.add_task(f"downloading {dl.family.name}", total=None)

        def progress(done: int, expected: int) -> None:
            bar.update(task, completed=done, total=expected)

        dl.on_progress = progress
        status = dl.run()
        bar.update(task, completed=status.done_bytes, total=status.expected_bytes or None)
    if json_output:
        _emit(status)
    elif status.state == "ready":
        print(describe(status))
    else:
        err.print(describe(status), markup=False, highlight=False, soft_wrap=True)
    return 0 if status.state == "ready" else 1
