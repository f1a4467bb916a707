"""Assembling a `Core` from settings: the aws backend (Bedrock + S3 Vectors) or the local default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nova_mcp_server.core import Core
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.jobs import JobStore
from nova_mcp_server.settings import Settings

if TYPE_CHECKING:
    from nova_mcp_server.aws import AwsClients


class LazyClient:
    """A boto3 client built on first attribute access, so start-up pays for no client construction."""

    def __init__(self, clients: AwsClients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.client(self._service), name)


def build_core(settings: Settings, *, clients: AwsClients | None = None) -> Core:
    """Cheap: no model is loaded and no AWS call is made until a tool needs one.

    `clients` lets tests hand in moto- or fake-backed clients; by default they come from the AWS chain.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    jobs = JobStore(settings.data_dir / "jobs.sqlite")
    if settings.resolved_backend == "aws":
        from nova_mcp_server.aws import AwsClients

        return _aws(settings, jobs, clients or AwsClients.from_settings(settings))
    return _local(settings, jobs)


def build_ingest(settings: Settings, s3_client: object = None) -> Ingest:
    return Ingest(
        allowed_roots=list(settings.allowed_roots),
        allowed_buckets=list(settings.allowed_buckets),
        download_dir=settings.data_dir / "downloads",
        segment_seconds=settings.segment_seconds,
        s3_client=s3_client,
        limits=Limits.from_settings(settings),
    )


def _local(settings: Settings, jobs: JobStore) -> Core:
    from nova_mcp_server.embedders.local import LocalEmbedder
    from nova_mcp_server.ingest import speech
    from nova_mcp_server.stores.local import LocalVectorStore

    speech.configure(settings.whisper_model, settings.data_dir / "models")

    embedder = LocalEmbedder(
        model=settings.local_model,
        model_path=settings.local_model_path,
        cache_dir=settings.data_dir / "models",
    )
    store = LocalVectorStore(settings.data_dir / "store")
    return Core(settings=settings, embedder=embedder, store=store, jobs=jobs, ingest=build_ingest(settings))


def _aws(settings: Settings, jobs: JobStore, clients: AwsClients) -> Core:
    from nova_mcp_server.embedders.nova import NovaEmbedder
    from nova_mcp_server.stores.s3vectors import S3VectorsStore

    if not settings.vector_bucket:
        raise InvalidInput(
            "The aws backend needs a vector bucket.",
            "Set NOVA_MCP_VECTOR_BUCKET (or --vector-bucket); it is created on first use.",
        )
    embedder = NovaEmbedder.from_settings(settings, clients)
    s3 = LazyClient(clients, "s3")
    store = S3VectorsStore(LazyClient(clients, "s3vectors"), settings.vector_bucket)
    async_media = build_async_media(settings, embedder, s3) if settings.staging_bucket else None
    return Core(
        settings=settings,
        embedder=embedder,
        store=store,
        jobs=jobs,
        ingest=build_ingest(settings, s3),
        async_media=async_media,
    )


def build_async_media(settings: Settings, embedder: Any, s3_client: Any) -> Any:
    """Nova's async segmented path for long media, staged in `settings.staging_bucket`."""
    from nova_mcp_server.async_media import AsyncMedia
    from nova_mcp_server.ingest.media import media_duration

    return AsyncMedia(
        embedder=embedder,
        s3_client=s3_client,
        staging_bucket=settings.staging_bucket or "",
        staging_prefix=settings.staging_prefix,
        segment_seconds=settings.segment_seconds,
        duration_of=media_duration,
    )
