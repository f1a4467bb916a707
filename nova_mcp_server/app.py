"""The App: the services wired from settings. The only place that knows which backend runs.

Cheap to build: no model is loaded and no AWS call is made until a tool needs one.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nova_mcp_server import keys
from nova_mcp_server.embedders.base import Embedder
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.ingest.s3_objects import read_text
from nova_mcp_server.jobstore import AsyncJobStore, JobStore
from nova_mcp_server.schema import Modality
from nova_mcp_server.services.catalog import Catalog
from nova_mcp_server.services.embedding import EmbedderPolicy, Embedding
from nova_mcp_server.services.estimate import Estimator
from nova_mcp_server.services.indexing import Indexing
from nova_mcp_server.services.jobs import Jobs
from nova_mcp_server.services.media import MediaJobs
from nova_mcp_server.services.reading import Reading
from nova_mcp_server.services.search import Reranker, Search
from nova_mcp_server.settings import Settings
from nova_mcp_server.stores.base import MAX_DELETE, MAX_GET, MAX_PUT, VectorStore

if TYPE_CHECKING:
    from nova_mcp_server.aws import AwsClients
    from nova_mcp_server.embedders.nova_async import NovaAsyncMedia
    from nova_mcp_server.model_download import ModelDownloader

FILTER_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or"]


@dataclass
class App:
    settings: Settings
    embedder: Embedder
    store: VectorStore
    jobstore: JobStore
    ingest: Ingest
    policy: EmbedderPolicy
    embedding: Embedding
    catalog: Catalog
    indexing: Indexing
    search: Search
    reading: Reading
    jobs: Jobs
    estimator: Estimator
    async_media: bool = False
    downloader: ModelDownloader | None = None  # the local model, fetched in the background (local backend)
    clients: AwsClients | None = None  # the aws backend's clients, for doctor

    def capabilities(self) -> dict[str, Any]:
        info = self.embedder.info
        return {
            "backend": self.settings.resolved_backend,
            "provider": info.provider,
            "model": info.model,
            "model_status": self.embedder.status(),
            "model_download": self.downloader.status().model_dump(mode="json") if self.downloader else None,
            "dimension": self.policy.dimension,
            "dimensions": info.dimensions,
            "modalities": info.modalities,
            "index_modalities": [m.value for m in Modality],
            "max_text_chars_per_request": info.max_text_chars,
            "max_sync_media_seconds": info.max_sync_media_seconds,
            "async_jobs": self.async_media,
            "default_index": self.settings.default_index,
            "read_only": self.settings.read_only,
            "limits": {
                "top_k": [1, 100],
                "put_batch": MAX_PUT,
                "get_batch": MAX_GET,
                "delete_batch": MAX_DELETE,
                "metadata_total_bytes": 40 * 1024,
                "metadata_filterable_bytes": 2 * 1024,
                "metadata_keys": 50,
                "vector_key_chars": 1024,
            },
            "filter_operators": FILTER_OPERATORS,
            "filterable_keys": sorted(keys.RESERVED_KEYS - set(keys.NON_FILTERABLE_KEYS)),
        }


def assemble(
    settings: Settings,
    embedder: Embedder,
    store: VectorStore,
    ingest: Ingest,
    *,
    jobstore: JobStore | None = None,
    nova_async: NovaAsyncMedia | None = None,
    reranker: Reranker | None = None,
    lease_seconds: float | None = None,
    downloader: ModelDownloader | None = None,
    clients: AwsClients | None = None,
) -> App:
    """Wire the services over an embedder, a store and ingestion (tests hand in fakes of the first two)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    jobstore = jobstore or JobStore(settings.data_dir / "jobs.sqlite")
    jobs_async = AsyncJobStore(jobstore)
    lease = {"lease_seconds": lease_seconds} if lease_seconds else {}
    policy = EmbedderPolicy(embedder, settings.dimension, busy=downloader.busy_error if downloader else None)
    embedding = Embedding(policy, ingest)
    catalog = Catalog(store, policy, ingest)
    media = MediaJobs(nova_async, jobs_async, catalog, store, policy, **lease) if nova_async else None
    indexing = Indexing(
        policy,
        ingest,
        catalog,
        store,
        default_index=settings.default_index,
        media=media,
        video_mode=settings.video_embedding_mode if policy.is_nova else "combined",
    )
    search = Search(
        policy,
        ingest,
        catalog,
        store,
        embedding,
        default_index=settings.default_index,
        token_budget=settings.answer_token_budget,
        reranker=reranker,
    )
    reading = Reading(
        store,
        catalog,
        settings.allowed_roots,
        default_index=settings.default_index,
        source_text=functools.partial(read_text, ingest.s3_client),
    )
    jobs = Jobs(
        jobs_async, indexing, media, default_index=settings.default_index, read_only=settings.read_only, **lease
    )
    estimator = Estimator(
        policy,
        ingest,
        catalog,
        store,
        default_index=settings.default_index,
        backend=settings.resolved_backend,
        region=settings.bedrock_region or settings.region or os.environ.get("AWS_REGION"),
    )
    return App(
        settings=settings,
        estimator=estimator,
        downloader=downloader,
        clients=clients,
        embedder=embedder,
        store=store,
        jobstore=jobstore,
        ingest=ingest,
        policy=policy,
        embedding=embedding,
        catalog=catalog,
        indexing=indexing,
        search=search,
        reading=reading,
        jobs=jobs,
        async_media=media is not None,
    )


class LazyClient:
    """A boto3 client built on first attribute access, so start-up pays for no client construction."""

    def __init__(self, clients: AwsClients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.client(self._service), name)


def build_app(settings: Settings, *, clients: AwsClients | None = None) -> App:
    """The app for `settings`; `clients` lets tests hand in moto- or fake-backed AWS clients."""
    if settings.resolved_backend == "aws":
        from nova_mcp_server.aws import AwsClients

        return _aws(settings, clients or AwsClients.from_settings(settings))
    return _local(settings)


def build_ingest(settings: Settings, s3_client: object = None) -> Ingest:
    return Ingest(
        allowed_roots=list(settings.allowed_roots),
        allowed_buckets=list(settings.allowed_buckets),
        download_dir=settings.data_dir / "downloads",
        segment_seconds=settings.segment_seconds,
        s3_client=s3_client,
        limits=Limits.from_settings(settings),
    )


def _local(settings: Settings) -> App:
    from nova_mcp_server.embedders.local import LocalEmbedder
    from nova_mcp_server.ingest import speech
    from nova_mcp_server.stores.local import LocalVectorStore

    speech.configure(settings.whisper_model, settings.data_dir / "models")
    store = LocalVectorStore(settings.data_dir / "store")
    if not settings.local_model and not settings.local_model_path:
        # No family chosen: the one the existing indexes were built with (CLIP before jina), else the default.
        from nova_mcp_server.embedders.families import choose_family

        recorded = [i.embedder.model for i in store.list_indexes() if i.embedder and i.embedder.provider == "local"]
        settings = settings.model_copy(update={"local_model": choose_family(None, recorded)})
    embedder = LocalEmbedder(
        model=settings.local_model,
        model_path=settings.local_model_path,
        cache_dir=settings.data_dir / "models",
    )
    from nova_mcp_server.model_download import ModelDownloader

    downloader = ModelDownloader.from_settings(settings)
    return assemble(settings, embedder, store, build_ingest(settings), downloader=downloader)


def _aws(settings: Settings, clients: AwsClients) -> App:
    from nova_mcp_server.embedders.nova import NovaEmbedder
    from nova_mcp_server.embedders.rerank import BedrockReranker
    from nova_mcp_server.stores.s3vectors import S3VectorsStore

    if not settings.vector_bucket:
        raise InvalidInput(
            "The aws backend needs a vector bucket.",
            "Set NOVA_MCP_VECTOR_BUCKET (or --vector-bucket); it is created on first use.",
        )
    embedder = NovaEmbedder.from_settings(settings, clients)
    s3 = LazyClient(clients, "s3")
    store = S3VectorsStore(LazyClient(clients, "s3vectors"), settings.vector_bucket)
    nova_async = build_nova_async(settings, embedder, s3) if settings.staging_bucket else None
    reranker = BedrockReranker(
        lambda: clients.client("bedrock-agent-runtime"),
        settings.rerank_model,
        settings.bedrock_region or clients.region,
    )
    return assemble(
        settings,
        embedder,
        store,
        build_ingest(settings, s3),
        nova_async=nova_async,
        reranker=reranker,
        clients=clients,
    )


def build_nova_async(settings: Settings, embedder: Any, s3_client: Any) -> NovaAsyncMedia:
    """Nova's async segmented path for long media, staged in `settings.staging_bucket`."""
    from nova_mcp_server.embedders.nova_async import NovaAsyncMedia
    from nova_mcp_server.ingest.media import media_duration

    return NovaAsyncMedia(
        embedder=embedder,
        s3_client=s3_client,
        staging_bucket=settings.staging_bucket or "",
        staging_prefix=settings.staging_prefix,
        segment_seconds=settings.segment_seconds,
        duration_of=media_duration,
        video_mode=settings.video_embedding_mode,
    )
