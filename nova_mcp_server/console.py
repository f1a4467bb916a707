"""The CLI for people: `index`, `search`, `jobs`, `indexes` over the same services the MCP tools use.

Progress bars and tables go to the terminal (progress on stderr); `--json` prints machine-readable output
on stdout instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nova_mcp_server.app import App
from nova_mcp_server.models import ContentInput, IndexReport, JobInfo, SearchResult

out = Console()
err = Console(stderr=True)


async def run_command(app: App, args: argparse.Namespace) -> int:
    handler = {"index": _index, "search": _search, "jobs": _jobs, "indexes": _indexes}[args.command]
    return await handler(app, args)


def _emit_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


async def _index(app: App, args: argparse.Namespace) -> int:
    items = [ContentInput(s3_uri=p) if p.startswith("s3://") else ContentInput(path=p) for p in args.paths]
    if getattr(args, "dry_run", False):
        dry = await app.estimator.dry_run(
            items, index=args.index_name, metadata=args.metadata, include=args.include, exclude=args.exclude
        )
        if args.json:
            _emit_json(dry)
        else:
            from nova_mcp_server.pricing import render

            assert dry.estimate is not None
            out.print(f"dry run for index [bold]{escape(dry.index)}[/]: nothing embedded or written", soft_wrap=True)
            out.print(escape(render(dry.estimate)), soft_wrap=True)
            out.print(f"{dry.skipped_unchanged} unchanged source(s) skipped, {len(dry.failed)} failed", soft_wrap=True)
            for failure in dry.failed:
                out.print(f"  [red]failed[/] {escape(failure.source)}: {escape(failure.reason)}")
        return 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=args.json or not err.is_terminal and not _force_progress(),
    ) as bar:
        task = bar.add_task("resolving", total=None)

        async def progress(done: float, total: float | None, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message[:60])

        report = await app.indexing.index(
            items,
            index=args.index_name,
            metadata=args.metadata,
            include=args.include,
            exclude=args.exclude,
            progress=progress,
        )
    if args.json:
        _emit_json(report)
    else:
        _print_report(report)
    return 1 if report.failed and not (report.indexed_sources or report.skipped_unchanged or report.jobs) else 0


def _force_progress() -> bool:
    import os

    return os.environ.get("NOVA_MCP_PROGRESS") == "1"


def _print_report(report: IndexReport) -> None:
    out.print(
        f"index [bold]{escape(report.index)}[/]: {report.indexed_sources} source(s) indexed "
        f"({report.indexed_segments} segments), {report.skipped_unchanged} unchanged, "
        f"{len(report.failed)} failed, {len(report.jobs)} async job(s)",
        soft_wrap=True,  # one line even when piped (rich wraps at 80 columns without a terminal)
    )
    for failure in report.failed:
        out.print(f"  [red]failed[/] {escape(failure.source)}: {escape(failure.reason)}")
    for job in report.jobs:
        out.print(f"  job {job}: follow with `nova-multimodal-mcp jobs {job}`")


async def _search(app: App, args: argparse.Namespace) -> int:
    if (args.query is None) == (args.image is None):
        err.print("nova-multimodal-mcp search: give a text QUERY or --image FILE (exactly one)")
        return 2
    image = None
    if args.image:
        image = ContentInput(s3_uri=args.image) if args.image.startswith("s3://") else ContentInput(path=args.image)
    result = await app.search.search(
        query=args.query if image is None else None,
        image=image,
        index=args.index_name,
        top_k=args.top_k,
        filter=args.filter,
        modality=args.modality,
        detail="full",  # a person's terminal has no token budget: show each hit's text and metadata
    )
    if args.json:
        _emit_json(result)
    else:
        _print_hits(result)
    return 0


def _where(hit: Any) -> str:
    if hit.page is not None:
        return f"page {hit.page}"
    if hit.start_s is not None:
        return f"{_clock(hit.start_s)}-{_clock(hit.end_s if hit.end_s is not None else hit.start_s)}"
    if hit.char_start is not None:
        return f"chars {hit.char_start}-{hit.char_end}"
    return ""


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _print_hits(result: SearchResult) -> None:
    table = Table(title=f"{len(result.hits)} hit(s) in '{escape(result.index)}' ({result.purpose})")
    for column in ("#", "score", "modality", "source", "where", "snippet"):
        table.add_column(column, overflow="fold")
    for hit in result.hits:
        snippet = (hit.snippet or "").replace("\n", " ")
        table.add_row(
            str(hit.rank),
            f"{hit.score:.3f}",
            hit.modality or "",
            escape(hit.source or ""),  # indexed content is data, not rich markup
            _where(hit),
            escape(snippet[:80] + ("…" if len(snippet) > 80 else "")),
        )
    out.print(table)


async def _jobs(app: App, args: argparse.Namespace) -> int:
    jobs = await app.jobs.status(args.job_id)
    if args.json:
        _emit_json(jobs)
        return 0
    table = Table(title="jobs")
    for column in ("id", "status", "index", "source", "progress", "error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(
            job.id, job.status, escape(job.index), escape(job.source), _progress(job), escape(job.error or "")
        )
    out.print(table)
    return 0


def _progress(job: JobInfo) -> str:
    return f"{job.progress_done}/{job.progress_total}" if job.progress_total else str(job.progress_done)


async def _indexes(app: App, args: argparse.Namespace) -> int:
    indexes = await app.catalog.list()
    if args.json:
        _emit_json(indexes)
        return 0
    table = Table(title="indexes")
    for column in ("name", "vectors", "dimension", "embedder"):
        table.add_column(column)
    for info in indexes:
        count = "?" if info.vector_count is None else str(info.vector_count)
        table.add_row(info.name, count, str(info.dimension), f"{info.provider or '?'}/{info.model or '?'}")
    out.print(table)
    return 0
