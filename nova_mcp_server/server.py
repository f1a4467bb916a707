"""The MCP surface: tools, resources and prompts over `Core`. No business logic lives here.

Every `NovaError` becomes a `ToolError` (the only kind of error whose text reaches the model); argument
errors are caught by the SDK's schema validation before a tool runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.types import (
    CallToolResult,
    EmptyResult,
    ImageContent,
    SubscribeRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field, ValidationError

from nova_mcp_server import __version__
from nova_mcp_server.core import Core
from nova_mcp_server.errors import NotFound, NovaError
from nova_mcp_server.models import (
    ContentInput,
    DeleteReport,
    EmbedResult,
    IndexReport,
    IndexSummary,
    JobInfo,
    SearchResult,
)
from nova_mcp_server.schema import EmbeddingPurpose, Modality
from nova_mcp_server.thumbnails import hit_image

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
POLL_SECONDS = 15.0

INSTRUCTIONS = """\
Multimodal retrieval: text, documents (PDF pages), images, audio and video share one vector space.
- index_content puts files, folders, s3:// objects or text into a named index (created on first use;
  unchanged sources are skipped). Long audio/video may go to an async job: follow it with job_status.
- semantic_search takes a text query or an image and returns ranked hits with source, page or time range,
  and a nova:// URI. Narrow with modality=[...] or a filter in the S3 Vectors language, e.g.
  {"page": {"$gte": 3}}, {"source": {"$eq": "/docs/a.pdf"}}, {"$and": [...]}. top_k is 1-100.
- embed_content returns vectors (preview + handle; full vector only if include_vector) and a similarity matrix.
- Read nova://capabilities for the backend, model, dimension and limits.
"""


def hints(title: str, *, read_only: bool, destructive: bool, idempotent: bool, open_world: bool) -> ToolAnnotations:
    """Tool annotations, every hint stated: clients decide from them what to run without asking."""
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


def agent_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn our errors into ToolErrors whose text says what to do; leave real bugs to the SDK's log."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except NovaError as exc:
            raise ToolError(exc.text) from None
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            raise ToolError(f"Invalid arguments: {details}") from None

    return wrapper


class IndexList(BaseModel):
    indexes: list[IndexSummary]


class JobList(BaseModel):
    jobs: list[JobInfo]


def build_server(core: Core, *, poll_seconds: float = POLL_SECONDS) -> MCPServer:
    bus = InMemorySubscriptionBus()
    watchers = JobWatchers(bus)
    core.job_listeners.append(watchers.changed)

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as tg:
            core.spawn = tg.start_soon
            if poll_seconds > 0:
                tg.start_soon(_poll_forever, core, poll_seconds)
            try:
                yield {"core": core}
            finally:
                core.spawn = None
                tg.cancel_scope.cancel()

    mcp = MCPServer(
        "nova-multimodal-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=core.settings.log_level.upper(),
        subscriptions=bus,
    )
    watchers.install(mcp)
    writable = not core.settings.read_only

    # ---- tools ---------------------------------------------------------------------------------------------

    @mcp.tool(
        annotations=hints(
            "Embed content",
            read_only=True,
            destructive=False,
            idempotent=True,
            open_world=core.embedder.info.provider == "nova",
        )
    )
    @agent_errors
    async def embed_content(
        ctx: Context,
        contents: Annotated[list[ContentInput], Field(min_length=1, max_length=32, description="1-32 contents")],
        purpose: EmbeddingPurpose = EmbeddingPurpose.GENERIC_INDEX,
        dimension: Annotated[int | None, Field(description="3072, 1024, 384 or 256 on Nova; default: server's")] = None,
        include_vector: bool = False,
    ) -> EmbedResult:
        """Embed text, files, s3:// objects or base64 media into the shared vector space.

        Returns per content its modality, dimension, model, norm, a short preview and a handle usable as
        semantic_search's vector_handle; the full vector only when include_vector is true. With two or more
        contents, also their cosine similarity matrix.
        """
        return await core.embed(
            contents, purpose=purpose, dimension=dimension, include_vector=include_vector, progress=_progress(ctx)
        )

    @mcp.tool(
        annotations=hints("Semantic search", read_only=True, destructive=False, idempotent=True, open_world=False)
    )
    @agent_errors
    async def semantic_search(
        ctx: Context,
        query: Annotated[str | None, Field(description="text to search for")] = None,
        image: Annotated[
            ContentInput | None, Field(description="an image to search with: path, s3_uri or data")
        ] = None,
        vector_handle: Annotated[str | None, Field(description="handle from embed_content")] = None,
        index: Annotated[str | None, Field(description="index name; default: the server's default index")] = None,
        top_k: Annotated[int, Field(ge=1, le=100)] = 5,
        filter: Annotated[dict[str, Any] | None, Field(description="S3 Vectors metadata filter")] = None,
        modality: Annotated[list[Modality] | None, Field(description="only these modalities")] = None,
        include_images: Annotated[bool, Field(description="attach image hits as images")] = False,
    ) -> Annotated[CallToolResult, SearchResult]:
        """Find the closest content to a text query, an image, or an embedded vector.

        Hits carry score, modality, source, page (documents) or start/end seconds (audio, video) or a
        character range (text), a snippet, the user's metadata and a nova:// URI.
        """
        result = await core.search(
            query=query,
            image=image,
            vector_handle=vector_handle,
            index=index,
            top_k=top_k,
            filter=filter,
            modality=[m.value for m in modality] if modality else None,
            progress=_progress(ctx),
        )
        structured = result.model_dump(mode="json")
        content: list[Any] = [TextContent(type="text", text=json.dumps(structured, ensure_ascii=False))]
        if include_images:
            for hit in result.hits:
                picture = await anyio.to_thread.run_sync(lambda h=hit: hit_image(core, h))
                if picture is not None:
                    content.append(ImageContent(type="image", data=picture[0], mime_type=picture[1]))
        return CallToolResult(content=content, structured_content=structured)

    @mcp.tool(annotations=hints("List indexes", read_only=True, destructive=False, idempotent=True, open_world=False))
    @agent_errors
    async def list_indexes() -> IndexList:
        """List the indexes with their dimension, embedder and vector count."""
        return IndexList(indexes=await core.list_indexes())

    @mcp.tool(
        annotations=hints(
            "Job status", read_only=False, destructive=False, idempotent=True, open_world=core.async_media is not None
        )
    )
    @agent_errors
    async def job_status(
        job_id: Annotated[str | None, Field(description="a job id; omit to list recent jobs")] = None,
    ) -> JobList:
        """Report one job (or the recent ones) and move it forward: a finished Bedrock job is ingested once."""
        return JobList(jobs=await core.job_status(job_id))

    if writable:

        @mcp.tool(
            annotations=hints(
                "Index content",
                read_only=False,
                destructive=False,
                idempotent=True,
                open_world=core.embedder.info.provider == "nova",
            )
        )
        @agent_errors
        async def index_content(
            ctx: Context,
            sources: Annotated[
                list[str], Field(description="file or folder paths, or s3://bucket/key (a prefix ending in /)")
            ] = [],  # noqa: B006 - pydantic copies defaults
            texts: Annotated[list[str], Field(description="inline texts to index")] = [],  # noqa: B006
            index: Annotated[str | None, Field(description="index name (3-63 chars a-z0-9.-)")] = None,
            metadata: Annotated[
                dict[str, Any] | None,
                Field(description="your metadata, filterable; omitted: a source keeps what it had"),
            ] = None,
            include: Annotated[list[str], Field(description="glob patterns to keep, e.g. *.pdf")] = [],  # noqa: B006
            exclude: Annotated[list[str], Field(description="glob patterns to skip")] = [],  # noqa: B006
            recursive: bool = True,
            wait: Annotated[
                bool, Field(description="false: return a job id at once and index in the background")
            ] = True,
        ) -> IndexReport:
            """Index files, folders, s3:// objects or texts; unchanged sources are skipped, changed ones replaced.

            Returns counts (indexed, skipped, failed with reasons) and the ids of async jobs for long media.
            With wait=false the whole run is a background job: follow it with job_status or nova://jobs/{id}.
            """
            items = [ContentInput(text=t) for t in texts] + [_as_content(s) for s in sources]
            progress = _progress(ctx)
            if not wait:
                job_id = await core.start_index_job(
                    items, index=index, metadata=metadata, include=include, exclude=exclude, recursive=recursive
                )
                return IndexReport(index=index or core.settings.default_index, jobs=[job_id])

            report = await core.index(
                items,
                index=index,
                metadata=metadata,
                include=include,
                exclude=exclude,
                recursive=recursive,
                progress=progress,
            )
            if report.failed and not (report.indexed_sources or report.skipped_unchanged or report.jobs):
                raise NovaError(_nothing_indexed(report))  # is_error, so an agent cannot mistake it for success
            return report

        @mcp.tool(
            annotations=hints("Create index", read_only=False, destructive=False, idempotent=True, open_world=False)
        )
        @agent_errors
        async def create_index(name: Annotated[str, Field(description="3-63 chars: a-z 0-9 - .")]) -> IndexSummary:
            """Create an empty index for this server's embedder (or return the existing one)."""
            return await core.create_index(name)

        @mcp.tool(
            annotations=hints("Delete index", read_only=False, destructive=True, idempotent=False, open_world=False)
        )
        @agent_errors
        async def delete_index(name: str) -> IndexSummary:
            """Delete an index and every vector in it. This cannot be undone."""
            return await core.delete_index(name)

        @mcp.tool(
            annotations=hints(
                "Delete a source's content", read_only=False, destructive=True, idempotent=True, open_world=False
            )
        )
        @agent_errors
        async def delete_content(
            source: Annotated[str, Field(description="the path, s3:// URI or `source` value of a hit")],
            index: str | None = None,
        ) -> DeleteReport:
            """Delete every vector of one source from an index."""
            return await core.delete_content(index or core.settings.default_index, source)

    # ---- resources -----------------------------------------------------------------------------------------

    @mcp.resource("nova://capabilities", mime_type="application/json", title="Server capabilities")
    def capabilities() -> str:
        """Backend, model, dimensions, modalities, limits and filter operators."""
        return json.dumps(core.capabilities(), indent=2)

    @mcp.resource("nova://indexes", mime_type="application/json", title="Indexes")
    async def indexes_resource() -> str:
        """Every index with its dimension, embedder and vector count."""
        return _dump([i.model_dump(mode="json") for i in await core.list_indexes()])

    @mcp.resource("nova://indexes/{name}", mime_type="application/json", title="One index")
    async def index_resource(name: str) -> str:
        """One index's description."""
        return _dump((await _found(core.describe_index(name))).model_dump(mode="json"))

    @mcp.resource("nova://indexes/{name}/items", mime_type="application/json", title="Items of an index")
    async def items_resource(name: str) -> str:
        """The first 100 items of an index (key, source, modality, locator)."""
        return _dump(await _found(core.list_items(name, limit=100)))

    @mcp.resource("nova://indexes/{name}/items/{key}", mime_type="application/json", title="One item")
    async def item_resource(name: str, key: str) -> str:
        """One indexed segment with all its metadata."""
        return _dump(await _found(core.get_item(name, key)))

    @mcp.resource("nova://jobs", mime_type="application/json", title="Recent jobs")
    def jobs_resource() -> str:
        """The 20 most recent jobs."""
        return _dump([j.model_dump(mode="json") for j in core.jobs.recent(20)])

    @mcp.resource("nova://jobs/{job_id}", mime_type="application/json", title="One job")
    async def job_resource(job_id: str) -> str:
        """One job's status, progress and errors."""
        try:
            return _dump(core.jobs.get(job_id).model_dump(mode="json"))
        except NotFound as exc:
            raise ResourceNotFoundError(exc.text) from None

    # ---- prompts -------------------------------------------------------------------------------------------

    @mcp.prompt(title="Answer from the index with citations")
    def answer_with_citations(question: str, index: str = "") -> str:
        """Answer a question from indexed content, citing sources, pages and time ranges."""
        where = f" in index '{index}'" if index else ""
        return (
            f"Answer this question using only content found with semantic_search{where}: {question}\n"
            "Search with one or two phrasings (top_k 8). Read the hits' snippets; open a nova:// item URI when you "
            "need its metadata. Cite each fact as [source, page N] for documents, [source, mm:ss-mm:ss] for audio "
            "and video, or [source] for text. If nothing relevant is found, say so rather than guessing."
        )

    @mcp.prompt(title="Find a topic in a video")
    def find_in_video(topic: str, source: str = "") -> str:
        """Find where a topic appears in indexed video or audio, as time ranges."""
        scope = f' and filter {{"source": {{"$eq": "{source}"}}}}' if source else ""
        return (
            f"Find where '{topic}' appears in the indexed videos and recordings. Call semantic_search with "
            f"query='{topic}', modality=['video', 'audio'], top_k 10{scope}. List the hits as start-end times "
            "(mm:ss) per source, merge adjacent segments, and say how confident each match looks from its score."
        )

    log.debug("server built with %d tools", len(mcp._tool_manager.list_tools()))
    return mcp


class JobWatchers:
    """Tells subscribers of nova://jobs/{id} when a job changes, on both protocol eras.

    2026-07-28 clients listen through `subscriptions/listen` (the bus); earlier clients send
    `resources/subscribe`, and their sessions get `notifications/resources/updated`.
    """

    def __init__(self, bus: InMemorySubscriptionBus) -> None:
        self._bus = bus
        self._sessions: dict[str, list[Any]] = {}

    def install(self, mcp: MCPServer) -> None:
        lowlevel = mcp._lowlevel_server  # the SDK has no public hook for the legacy subscribe requests
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe)

    async def _subscribe(self, ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        sessions = self._sessions.setdefault(str(params.uri), [])
        if ctx.session not in sessions:
            sessions.append(ctx.session)
        return EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        sessions = self._sessions.get(str(params.uri), [])
        if ctx.session in sessions:
            sessions.remove(ctx.session)
        return EmptyResult()

    async def changed(self, job_id: str) -> None:
        uri = f"nova://jobs/{job_id}"
        await self._bus.publish(ResourceUpdated(uri=uri))
        for session in list(self._sessions.get(uri, [])):
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a closed session stops listening
                self._sessions[uri].remove(session)


async def _poll_forever(core: Core, every: float) -> None:
    while True:
        await anyio.sleep(every)
        try:
            await core.poll_jobs()
        except Exception:  # the poller must outlive any one bad tick
            log.exception("job poller tick failed")


async def _found(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except NotFound as exc:
        raise ResourceNotFoundError(exc.text) from None
    except NovaError as exc:
        raise ResourceError(exc.text) from None


def _progress(ctx: Context) -> Callable[[float, float | None, str], Awaitable[None]]:
    async def report(done: float, total: float | None, message: str) -> None:
        await ctx.report_progress(done, total=total, message=message)

    return report


def _as_content(source: str) -> ContentInput:
    # Any "s3:" spelling is an S3 URI, so a malformed one ("s3:/b/k") is reported as such, not as a path.
    return ContentInput(s3_uri=source) if source[:3].lower() == "s3:" else ContentInput(path=source)


def _nothing_indexed(report: IndexReport) -> str:
    shown = "; ".join(f"{f.source}: {f.reason}" for f in report.failed[:5])
    more = f" (and {len(report.failed) - 5} more)" if len(report.failed) > 5 else ""
    return f"Nothing was indexed into '{report.index}': {len(report.failed)} source(s) failed. {shown}{more}"


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


Transport = Literal["stdio", "sse", "streamable-http"]
