"""Builders of a real `Core` for tests: the local backend on the tiny CLIP model, or Nova through the fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nova_mcp_server.backends import build_async_media, build_ingest
from nova_mcp_server.core import Core
from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.jobs import JobStore
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


def local_core(tmp_path: Path, model_dir: Path, **overrides: Any) -> Core:
    """The embedded default exactly as `backends.build_core` assembles it, on the tiny test model."""
    from nova_mcp_server.backends import build_core

    settings = make_settings(tmp_path, local_model_path=model_dir, **overrides)
    return build_core(settings)


def nova_core(tmp_path: Path, bedrock: Any, *, s3: Any = None, async_media: bool = False, **overrides: Any) -> Core:
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
    media = build_async_media(settings, embedder, s3) if async_media else None
    return Core(
        settings=settings,
        embedder=embedder,
        store=LocalVectorStore(settings.data_dir / "store"),
        jobs=JobStore(settings.data_dir / "jobs.sqlite"),
        ingest=build_ingest(settings, s3),
        async_media=media,
    )
