"""The MCP tools: thin adapters from arguments to the services, errors turned into text for the agent.

Every `NovaError` becomes a `ToolError` (the only kind of error whose text reaches the model); anything
unexpected becomes a ToolError that says what failed and what to try, with the traceback in the log only,
so the agent never sees a bare "Error executing tool".
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, TypeVar

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from nova_mcp_server.contact_sheet import MAX_CELLS as MAX_SHEET_CELLS
from nova_mcp_server.contact_sheet import contact_sheet
from nova_mcp_server.errors import NovaError
from nova_mcp_server.models import (
    ContentInput,
    DeleteReport,
    Detail,
    DoctorReport,
    EmbedResult,
    FetchResult,
    IndexFacets,
    IndexReport,
    IndexSummary,
    JobInfo,
    Mode,
    SearchResult,
)
from nova_mcp_server.roots import combine_roots
from nova_mcp_server.schema import EmbeddingPurpose, Modality
from nova_mcp_server.server.arguments import argument_problems
from nova_mcp_server.server.handle import AppHandle
from nova_mcp_server.thumbnails import MAX_IMAGES_PER_ANSWER

if TYPE_CHECKING:
    from nova_mcp_server.app import App

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
Progress = Callable[[float, float | None, str], Awaitable[None]]


class IndexList(BaseModel):
    indexes: list[IndexSummary]


class JobList(BaseModel):
    jobs: list[JobInfo]


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
    """Turn every failure into a ToolError whose text says what to do; bugs keep their traceback in the log."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except NovaError as exc:
            raise ToolError(exc.text) from None
        except ValidationError as exc:
            raise ToolError(
                f"Invalid arguments: {argument_problems(exc)}. Nothing was done: call it again with them fixed."
            ) from None
        except ToolError:
            raise
        except Exception:
            log.exception("%s failed unexpectedly", fn.__name__)
            raise ToolError(
                f"{fn.__name__} failed because of an internal error (the details are in the server's log). "
                "Nothing was lost: try the call again, or with fewer sources; if it keeps failing, report it "
                "with the server log."
            ) from None

    return wrapper


NO_ROOTS = ListRootsResult(roots=[])


def client_roots(ctx: Context) -> ListRootsResult | ListRoots:
    """The client's roots when it declared the capability (asked on every era the SDK speaks), else none.

    A capability the client did not declare is never relied on: without it only configured roots count.
    """
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return NO_ROOTS
    return ListRoots()


def allowed_roots(app: App, declared: ListRootsResult) -> list[Path]:
    """This call's allowed folders: the configured ones plus the client's (never / or home unless configured)."""
    combined = combine_roots(app.settings.allowed_roots, declared.roots)
    for refused in combined.refused:
        log.warning("client root %s refused: %s", refused.root, refused.reason)
    return combined.allowed


def progress_of(ctx: Context) -> Progress:
    async def report(done: float, total: float | None, message: str) -> None:
        await ctx.report_progress(done, total=total, message=message)

    return report


def as_content(source: str) -> ContentInput:
    # Any "s3:" spelling is an S3 URI, so a malformed one ("s3:/b/k") is reported as such, not as a path.
    return ContentInput(s3_uri=source) if source[:3].lower() == "s3:" else ContentInput(path=source)


async def pictures_of(app: App, result: SearchResult, include: bool | str, roots: Sequence[Path]) -> list[ImageContent]:
    """Pictures of image, page and frame hits: one each (at most 5), or one numbered contact sheet."""
    if not include:
        return []
    wanted = result.hits[: MAX_SHEET_CELLS if include == "sheet" else MAX_IMAGES_PER_ANSWER]
    found: list[tuple[int, bytes]] = []
    for hit in wanted:
        picture, _ = await anyio.to_thread.run_sync(
            partial(app.reading.picture_of, hit.source, hit.modality, hit, roots=roots)
        )
        if picture is not None:
            found.append((hit.rank, picture))
    if not found:
        return []
    if include == "sheet":
        sheet = await anyio.to_thread.run_sync(
            lambda: contact_sheet([p for _, p in found], numbers=[rank for rank, _ in found])
        )
        result.note = (
            f"the contact sheet numbers each picture with its hit's rank ({', '.join(str(r) for r, _ in found)})"
        )
        return [ImageContent(type="image", data=base64.b64encode(sheet.png).decode("ascii"), mime_type="image/png")]
    return [
        ImageContent(type="image", data=base64.b64encode(p).decode("ascii"), mime_type="image/png") for _, p in found
    ]


def nothing_indexed(report: IndexReport) -> str:
    shown = "; ".join(f"{f.source}: {f.reason}" for f in report.failed[:5])
    more = f" (and {len(report.failed) - 5} more)" if len(report.failed) > 5 else ""
    return f"Nothing was indexed into '{report.index}': {len(report.failed)} source(s) failed. {shown}{more}"


def nothing_found(report: IndexReport, sources: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> str:
    """All counts zero: the sources named no file, which an agent would otherwise read as done."""
    named = ", ".join(sources[:3]) + (f" (and {len(sources) - 3} more)" if len(sources) > 3 else "")
    patterns = [f"include {list(include)}" if include else "", f"exclude {list(exclude)}" if exclude else ""]
    kept = " and ".join(p for p in patterns if p)
    why = f"no file under {named} passed {kept}" if kept else f"{named} holds no file (an empty folder or prefix)"
    return f"Nothing was indexed into '{report.index}': {why}. Check the paths" + (
        " and the patterns (they match file names, e.g. *.pdf)." if kept else ", or name the files directly."
    )


def register_read_tools(mcp: MCPServer, handle: AppHandle) -> None:
    nova = handle.is_nova

    @mcp.tool(annotations=hints("Embed content", read_only=True, destructive=False, idempotent=True, open_world=nova))
    @agent_errors
    async def embed_content(
        ctx: Context,
        contents: Annotated[list[ContentInput], Field(min_length=1, max_length=32, description="1-32 contents")],
        purpose: EmbeddingPurpose = EmbeddingPurpose.GENERIC_INDEX,
        dimension: Annotated[int | None, Field(description="3072, 1024, 384 or 256 on Nova; default: server's")] = None,
        include_vector: bool = False,
        roots: Annotated[ListRootsResult, Resolve(client_roots)] = NO_ROOTS,
    ) -> EmbedResult:
        """Embed text, files, s3:// objects or base64 media into the shared vector space.

        Returns per content its modality, dimension, model, norm, a short preview and a handle usable as
        semantic_search's vector_handle; the full vector only when include_vector is true. With two or more
        contents, also their cosine similarity matrix. Only each content's first segment is embedded.
        """
        app = await handle.get()
        return await app.embedding.embed(
            contents,
            purpose=purpose,
            dimension=dimension,
            include_vector=include_vector,
            progress=progress_of(ctx),
            roots=allowed_roots(app, roots),
        )

    @mcp.tool(annotations=hints("Semantic search", read_only=True, destructive=False, idempotent=True, open_world=nova))
    @agent_errors
    async def semantic_search(
        ctx: Context,
        query: Annotated[str | None, Field(description="text to search for")] = None,
        image: Annotated[
            ContentInput | None, Field(description="an image to search with: path, s3_uri or data")
        ] = None,
        vector_handle: Annotated[str | None, Field(description="handle from embed_content")] = None,
        similar_to: Annotated[
            str | None, Field(description="a hit's uri or key: find items like it (no new embedding)")
        ] = None,
        index: Annotated[str | None, Field(description="index name; default: the server's default index")] = None,
        top_k: Annotated[int, Field(ge=1, le=100)] = 5,
        filter: Annotated[dict[str, Any] | None, Field(description="S3 Vectors metadata filter")] = None,
        modality: Annotated[list[Modality] | None, Field(description="only these modalities")] = None,
        mode: Annotated[
            Mode | None,
            Field(description="vector, keyword or hybrid (local backend); default: hybrid where available"),
        ] = None,
        detail: Annotated[Detail, Field(description="compact: one-line snippets; full: each segment's text")] = (
            "compact"
        ),
        distinct_sources: Annotated[bool, Field(description="only the best segment of each source")] = False,
        rerank: Annotated[
            bool, Field(description="reorder text hits with a reranker (aws: Bedrock Rerank, billed per call)")
        ] = False,
        include_images: Annotated[
            bool | Literal["sheet"],
            Field(description='attach pictures of image, page and frame hits (true), or one numbered "sheet"'),
        ] = False,
        roots: Annotated[ListRootsResult, Resolve(client_roots)] = NO_ROOTS,
    ) -> Annotated[CallToolResult, SearchResult]:
        """Find the closest content to a text query, an image, an embedded vector, or an indexed item.

        Hits carry score, modality, source, page (documents) or start/end seconds (audio, video) or a
        character range (text), a one-line snippet and a nova:// URI: read a hit in full with fetch.
        The answer stays within a token budget and says `truncated` when hits were left out.
        """
        app = await handle.get()
        allowed = allowed_roots(app, roots)
        result = await app.search.search(
            query=query,
            image=image,
            vector_handle=vector_handle,
            similar_to=similar_to,
            index=index,
            top_k=top_k,
            filter=filter,
            modality=[m.value for m in modality] if modality else None,
            mode=mode,
            detail=detail,
            distinct_sources=distinct_sources,
            rerank=rerank,
            progress=progress_of(ctx),
            roots=allowed,
        )
        pictures = await pictures_of(app, result, include_images, allowed)
        structured = result.model_dump(mode="json", exclude_none=True)
        content: list[Any] = [TextContent(type="text", text=json.dumps(structured, ensure_ascii=False)), *pictures]
        return CallToolResult(content=content, structured_content=structured)

    @mcp.tool(annotations=hints("Read a hit", read_only=True, destructive=False, idempotent=True, open_world=nova))
    @agent_errors
    async def fetch(
        item: Annotated[str, Field(description="a hit's uri (nova://indexes/NAME/items/KEY) or key")],
        index: Annotated[str | None, Field(description="the index of a bare key; a uri names its own")] = None,
        context: Annotated[int, Field(ge=0, le=10, description="neighbouring segments to add on each side")] = 0,
        include_image: Annotated[bool, Field(description="attach the image, the PDF page or the video frame")] = False,
        roots: Annotated[ListRootsResult, Resolve(client_roots)] = NO_ROOTS,
    ) -> Annotated[CallToolResult, FetchResult]:
        """Read one indexed segment in full: its text, locator and metadata, with neighbours on request.

        For a PDF page also the page's text, for audio/video the time range and transcript where there is one;
        with include_image, the image itself, the rendered page or the frame (one picture under 1 MB).
        """
        app = await handle.get()
        result, picture = await app.reading.fetch(
            item, index=index, context=context, include_image=include_image, roots=allowed_roots(app, roots)
        )
        structured = result.model_dump(mode="json", exclude_none=True)
        content: list[Any] = [TextContent(type="text", text=json.dumps(structured, ensure_ascii=False))]
        if picture is not None:
            content.append(
                ImageContent(type="image", data=base64.b64encode(picture).decode("ascii"), mime_type="image/png")
            )
        return CallToolResult(content=content, structured_content=structured)

    @mcp.tool(
        annotations=hints("Describe an index", read_only=True, destructive=False, idempotent=True, open_world=nova)
    )
    @agent_errors
    async def describe_index(name: Annotated[str, Field(description="the index to describe")]) -> IndexFacets:
        """An index's embedder and size, and its filterable keys with types, top values and counts.

        Build semantic_search filters from these instead of guessing key names or values.
        """
        app = await handle.get()
        return await app.catalog.facets(name)

    @mcp.tool(
        annotations=hints("Check the set-up", read_only=True, destructive=False, idempotent=True, open_world=nova)
    )
    @agent_errors
    async def doctor() -> DoctorReport:
        """Check credentials, region, model access, buckets, index mode, IAM, the local model and allowed folders.

        Each check passes, fails or is skipped, with the fix to apply. Makes at most one minimal embedding call.
        """
        from nova_mcp_server.doctor import run_doctor

        try:
            app: App | None = await handle.get()
        except NovaError:  # a configuration the App refuses is what the doctor is for: check from the settings
            app = None
        clients, downloader = (app.clients, app.downloader) if app is not None else (None, None)
        return await anyio.to_thread.run_sync(
            partial(run_doctor, handle.settings, clients=clients, downloader=downloader)
        )

    @mcp.tool(annotations=hints("List indexes", read_only=True, destructive=False, idempotent=True, open_world=nova))
    @agent_errors
    async def list_indexes() -> IndexList:
        """List the indexes with their dimension, embedder and vector count."""
        app = await handle.get()
        return IndexList(indexes=await app.catalog.list())

    @mcp.tool(
        annotations=hints(
            "Job status", read_only=handle.settings.read_only, destructive=False, idempotent=True, open_world=nova
        )
    )
    @agent_errors
    async def job_status(
        job_id: Annotated[str | None, Field(description="a job id; omit to list recent jobs")] = None,
    ) -> JobList:
        """Report one job (or the recent ones) and move it forward: a finished Bedrock job is ingested once."""
        app = await handle.get()
        return JobList(jobs=await app.jobs.status(job_id))


# What register_write_tools registers (a read-only server registers none of them, and says so when called).
WRITE_TOOLS = ("index_content", "create_index", "delete_index", "delete_content")


def register_write_tools(mcp: MCPServer, handle: AppHandle) -> None:
    nova = handle.is_nova

    @mcp.tool(annotations=hints("Index content", read_only=False, destructive=False, idempotent=True, open_world=nova))
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
        wait: Annotated[bool, Field(description="false: return a job id at once and index in the background")] = True,
        dry_run: Annotated[
            bool, Field(description="true: only count sources and segments and estimate the cost; write nothing")
        ] = False,
        roots: Annotated[ListRootsResult, Resolve(client_roots)] = NO_ROOTS,
    ) -> IndexReport:
        """Index files, folders, s3:// objects or texts; unchanged sources are skipped, changed ones replaced.

        Returns counts (indexed, skipped, failed with reasons) and the ids of async jobs for long media.
        With wait=false the whole run is a background job: follow it with job_status or nova://jobs/{id}.
        A call that would outlast the client's patience returns what it did and continues as a job
        (continues_in_job). dry_run=true resolves and segments only, and estimates the Bedrock and S3 Vectors
        cost before anything is spent.
        """
        app = await handle.get()
        items = [ContentInput(text=t) for t in texts] + [as_content(s) for s in sources]
        allowed = allowed_roots(app, roots)
        options: dict[str, Any] = {"metadata": metadata, "include": include, "exclude": exclude, "recursive": recursive}
        if dry_run:
            return await app.estimator.dry_run(items, index=index, roots=allowed, **options)
        if not wait:
            job_id = await app.jobs.start_index_job(items, index=index, roots=allowed, **options)
            return IndexReport(index=index or app.settings.default_index, jobs=[job_id], continues_in_job=job_id)
        report = await app.indexing.index(
            items,
            index=index,
            progress=progress_of(ctx),
            roots=allowed,
            deadline=time.monotonic() + app.settings.call_time_budget_s,
            **options,
        )
        if report.not_yet_indexed:  # the rest runs as a job, so the client's tool-call timeout never fires
            job_id = await app.jobs.start_index_job(items, index=index, roots=allowed, **options)
            report.continues_in_job = job_id
            report.jobs.append(job_id)
        elif report.failed and not (report.indexed_sources or report.skipped_unchanged or report.jobs):
            raise NovaError(nothing_indexed(report))  # is_error, so an agent cannot mistake it for success
        elif not (report.indexed_sources or report.skipped_unchanged or report.jobs or report.removed_segments):
            raise NovaError(nothing_found(report, sources, include, exclude))
        return report

    @mcp.tool(annotations=hints("Create index", read_only=False, destructive=False, idempotent=True, open_world=nova))
    @agent_errors
    async def create_index(name: Annotated[str, Field(description="3-63 chars: a-z 0-9 - .")]) -> IndexSummary:
        """Create an empty index for this server's embedder (or return the existing one)."""
        app = await handle.get()
        return await app.catalog.create(name)

    @mcp.tool(annotations=hints("Delete index", read_only=False, destructive=True, idempotent=False, open_world=nova))
    @agent_errors
    async def delete_index(name: str) -> IndexSummary:
        """Delete an index and every vector in it. This cannot be undone."""
        app = await handle.get()
        return await app.catalog.delete(name)

    @mcp.tool(
        annotations=hints(
            "Delete a source's content", read_only=False, destructive=True, idempotent=True, open_world=nova
        )
    )
    @agent_errors
    async def delete_content(
        source: Annotated[str, Field(description="the path, s3:// URI or `source` value of a hit")],
        index: str | None = None,
    ) -> DeleteReport:
        """Delete every vector of one source from an index."""
        app = await handle.get()
        return await app.catalog.delete_source(index or app.settings.default_index, source)
