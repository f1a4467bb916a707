"""Cost before spend: a dry run resolves and segments what `index_content` would index, embeds and writes
nothing, and prices it with the dated table in `pricing` (Bedrock embedding, S3 Vectors writes and storage).

Sources whose commit marker says they are unchanged are counted as skipped, as the real run would skip them;
each file is opened once, as the real run opens it (hashed, then segmented from the same open file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from nova_mcp_server import keys
from nova_mcp_server.errors import InvalidInput, NovaError
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.ingest.text import RETRIEVAL_CHUNK_CHARS  # the most a by-reference text chunk holds
from nova_mcp_server.models import ContentInput, Failure, IndexReport
from nova_mcp_server.pricing import UsageCounts, count_segment, estimate
from nova_mcp_server.services.catalog import Catalog
from nova_mcp_server.services.embedding import EmbedderPolicy
from nova_mcp_server.services.indexing import unchanged
from nova_mcp_server.services.writer import markers
from nova_mcp_server.stores.base import VectorStore, check_index_name

BATCH = 64


class Estimator:
    def __init__(
        self,
        policy: EmbedderPolicy,
        ingest: Ingest,
        catalog: Catalog,
        store: VectorStore,
        *,
        default_index: str,
        backend: Literal["aws", "local"],
        region: str | None,
    ) -> None:
        self.policy = policy
        self.ingest = ingest
        self.catalog = catalog
        self.store = store
        self.default_index = default_index
        self.backend = backend
        self.region = region or "us-east-1"

    async def dry_run(
        self,
        items: Sequence[ContentInput],
        *,
        index: str | None = None,
        metadata: dict[str, Any] | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        recursive: bool = True,
        roots: Sequence[Path] | None = None,
        batch: bool = False,
    ) -> IndexReport:
        """What `index` would embed, priced; `indexed_*` stay 0 and `estimate.counts` holds the counts."""
        name = index or self.default_index
        check_index_name(name)
        user_meta = keys.check_user_metadata(metadata)
        if not items:
            raise InvalidInput("Give at least one path, s3:// URI or text to estimate.")
        sources, failures = await self.ingest.resolve_contents(
            items, include=include, exclude=exclude, recursive=recursive, roots=roots
        )
        failed = [Failure(source=f.source, reason=f.reason) for f in failures]
        target = await self.catalog.target(name)
        found = await markers(self.store, name, [keys.source_id(s.uri) for s in sources]) if target.exists else {}
        counts = UsageCounts()
        skipped = 0
        info = self.policy.embedder.info
        for source in sources:
            marker = found.get(keys.source_id(source.uri))
            first = True
            try:
                async with self.ingest.opened(source) as opened:  # once: hashed, then segmented from that file
                    if marker and unchanged(marker, opened.content_hash, user_meta):
                        skipped += 1
                        continue
                    async for segments in self.ingest.segment_batches(opened, info, BATCH):
                        for segment in segments:
                            count_segment(counts, segment, new_source=first, reference_chars=RETRIEVAL_CHUNK_CHARS)
                            first = False
            except NovaError as exc:
                failed.append(Failure(source=source.display, reason=exc.text))
        priced = estimate(
            counts, backend=self.backend, region=self.region, dimension=self.policy.dimension, batch=batch
        )
        return IndexReport(index=name, skipped_unchanged=skipped, failed=failed, dry_run=True, estimate=priced)
