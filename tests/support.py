"""Builders of a real `App` for tests: the local backend on the tiny CLIP model, or Nova through the fake."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from nova_mcp_server.app import App, assemble, build_ingest, build_nova_async
from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.settings import Settings

# What the local CLIP backend tells the segmenter (512-d, text and images, 300 chars per text).
LOCAL_CLIP_INFO = EmbedderInfo(
    provider="local",
    model="clip",
    dimensions=[512],
    default_dimension=512,
    modalities=["text", "image"],
    max_text_chars=300,
)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "allowed_roots": [tmp_path],
        "backend": "local",
    }
    base.update(overrides)
    return Settings(**base)


def local_core(tmp_path: Path, model_dir: Path, **overrides: Any) -> App:
    """The embedded default exactly as `app.build_app` assembles it, on the tiny test model."""
    from nova_mcp_server.app import build_app

    settings = make_settings(tmp_path, local_model_path=model_dir, **overrides)
    return build_app(settings)


def nova_core(
    tmp_path: Path,
    bedrock: Any,
    *,
    s3: Any = None,
    async_media: bool = False,
    lease_seconds: float | None = None,
    store: Any = None,
    **overrides: Any,
) -> App:
    """Nova (through a fake Bedrock client) over the local store, which implements S3 Vectors query semantics."""
    from nova_mcp_server.embedders.nova import NovaEmbedder
    from nova_mcp_server.stores.local import LocalVectorStore

    settings = make_settings(tmp_path, backend="aws", dimension=overrides.pop("dimension", 256), **overrides)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = NovaEmbedder(
        default_dimension=settings.dimension,
        concurrency=settings.concurrency,
        bedrock=bedrock,
        s3=s3,
        backoff_base=0.01,
    )
    if async_media and not settings.staging_bucket:
        settings = settings.model_copy(update={"staging_bucket": "nova-test-output"})
    nova_async = build_nova_async(settings, embedder, s3) if async_media else None
    store = store or LocalVectorStore(settings.data_dir / "store")
    return assemble(
        settings, embedder, store, build_ingest(settings, s3), nova_async=nova_async, lease_seconds=lease_seconds
    )


# ---- the console script as a client starts it (transport, security and benchmark tests) ----
SCRIPT = str(Path(sys.executable).parent / "nova-mcp-server")
REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def server_env(tmp_path: Path, tiny_model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_MCP_")}
    env.update(
        NOVA_MCP_DATA_DIR=str(tmp_path / "data"),
        NOVA_MCP_LOCAL_MODEL_PATH=str(tiny_model),
        NOVA_MCP_ALLOWED_ROOTS=str(tmp_path),
        HF_HUB_OFFLINE="1",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
