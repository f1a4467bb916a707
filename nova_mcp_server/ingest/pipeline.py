"""`Ingest`: the settings-aware front of ingestion that the core calls.

It binds the allowed roots, the bucket allow-list and the S3 client to the pure functions in `sources`,
`loading` and `segment`, and runs their blocking work in worker threads. Resolution keeps no file open;
`opened` opens one source once (for as long as its worker needs it) and everything after reads that file.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest import s3_objects
from nova_mcp_server.ingest import segment as segmenting
from nova_mcp_server.ingest import sources as resolving
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.loading import Opened, open_source
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.models import ContentInput


@dataclass
class Ingest:
    allowed_roots: list[Path]
    allowed_buckets: list[str]
    download_dir: Path
    segment_seconds: int = 10
    s3_client: Any = None  # boto3 S3 client, or a factory's lazily built one
    limits: Limits = field(default_factory=Limits)

    async def resolve_contents(
        self,
        contents: Sequence[ContentInput],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        recursive: bool = True,
        roots: Sequence[Path] | None = None,
    ) -> tuple[list[SourceRef], list[resolving.SourceFailure]]:
        """Resolve the contents under ``roots`` (this call's allowed set, e.g. `roots.combine_roots` of the
        configured roots and the client's), or the configured ``allowed_roots`` when None."""
        items = list(contents)  # ContentInput is what resolution takes (it holds exactly one of its fields)
        allowed = list(self.allowed_roots if roots is None else roots)
        return await anyio.to_thread.run_sync(
            lambda: resolving.resolve_sources(
                items,
                allowed_roots=allowed,
                allowed_buckets=self.allowed_buckets,
                include=list(include),
                exclude=list(exclude),
                recursive=recursive,
                s3_client=self.s3_client,
                download_dir=self.download_dir,
                limits=self.limits,
            )
        )

    @asynccontextmanager
    async def opened(self, source: SourceRef) -> AsyncIterator[Opened]:
        """``source`` opened once and hashed (in a worker thread), closed when the block ends. An S3 object
        resolved by HeadObject is not opened: its version is the HEAD's, its bytes are read when segmented."""
        opened = await anyio.to_thread.run_sync(lambda: open_source(source, self.limits))
        try:
            yield opened
        finally:
            opened.close()

    def segments(self, source: SourceRef | Opened, info: EmbedderInfo) -> Iterator[Segment]:
        """The lazy segment iterator (blocking; a `SourceRef` is opened once and held until exhausted or closed).
        An S3 object goes by reference or from a download of this call, removed once the iterator ends
        (`s3_objects`)."""

        def cut(local: SourceRef | Opened) -> Iterator[Segment]:
            return segmenting.segment_source(local, info, segment_seconds=self.segment_seconds, limits=self.limits)

        ref = source.source if isinstance(source, Opened) else source
        if ref.kind == "s3" and ref.local_path is None:
            return s3_objects.s3_segments(
                ref, info, cut, client=self.s3_client, folder=self.download_dir, limits=self.limits
            )
        return cut(source)

    async def segment(self, source: SourceRef, info: EmbedderInfo) -> list[Segment]:
        """Every segment at once: only for callers that need them all (embed's first segment, tests)."""
        return await anyio.to_thread.run_sync(lambda: list(self.segments(source, info)))

    async def segment_batches(
        self, source: SourceRef | Opened, info: EmbedderInfo, size: int
    ) -> AsyncIterator[list[Segment]]:
        """Segments in lists of at most ``size``, each cut in a worker thread only when the consumer asks for it,
        so memory holds one batch, not the file. The file closes when this ends or is closed early."""
        iterator = self.segments(source, info)

        def take() -> list[Segment]:
            return list(itertools.islice(iterator, size))

        try:
            while batch := await anyio.to_thread.run_sync(take):
                yield batch
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close)

    async def first_segment(self, source: SourceRef, info: EmbedderInfo) -> tuple[Segment, bool]:
        """The first segment and whether more follow, cutting no further than the second one."""

        def two() -> list[Segment]:
            iterator = self.segments(source, info)
            try:
                return list(itertools.islice(iterator, 2))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()

        segments = await anyio.to_thread.run_sync(two)
        if not segments:
            raise InvalidInput(f"{source.display} has no content to embed.")
        return segments[0], len(segments) > 1

    def canonical_uri(self, source: str) -> str:
        """The identity a source was indexed under, without reading it (the file may be gone)."""
        if source.startswith(("s3://", "inline:")):
            return source
        if source.startswith("file://"):
            source = source.removeprefix("file://")
        if "\x00" in source:
            raise InvalidInput(f"{json.dumps(source)} contains a NUL character, which no file name can hold.")
        return "file://" + os.path.realpath(os.path.expanduser(source))
