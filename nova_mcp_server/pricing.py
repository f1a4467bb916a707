"""What indexing will cost, before anything is spent: counts in, a dated estimate out.

The prices live in one data file, `nova_mcp_server/data/prices.json` (dated, with where to check current
prices); this module only does arithmetic on it. The indexing service's dry run resolves and segments without
embedding or writing, fills `UsageCounts`, and calls `estimate()`; the CLI and the MCP tool show the report as is.

Billing facts the arithmetic follows (from the price file's sources): Bedrock bills Nova embeddings per input
text token, per image (a PDF page sent as DOCUMENT_IMAGE is an image) and per second of audio or video, with
nothing for output; batch inference is half price. Whether an AUDIO_VIDEO_COMBINED segment is billed as video
seconds only is not documented: video seconds are priced at the video rate and nothing is added for their sound.
S3 Vectors bills storage per logical GB-month (4 bytes per dimension + key + metadata) and writes per GB
uploaded, each PutVectors request billed for at least 128 KB. Nova returns no token counts and its tokenizer is
not public, so text tokens are estimated from characters (`estimate_text_tokens`).
"""

from __future__ import annotations

import json
import math
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, Field, NonNegativeFloat, NonNegativeInt

GB = 1024**3
CHARS_PER_TOKEN = 4.0  # a common rule of thumb for English text; the Nova tokenizer is not public
KEY_BYTES = 64  # our keys: a source hash and an ordinal
METADATA_BYTES = 1024  # source, locator, snippet, content hash, indexed_at and your metadata, about 1 KB


class BedrockRates(BaseModel):
    text_per_million_tokens: NonNegativeFloat
    per_image: NonNegativeFloat
    video_per_second: NonNegativeFloat
    audio_per_second: NonNegativeFloat


class BedrockPrices(BaseModel):
    model_id: str
    on_demand: BedrockRates
    batch_factor: float = Field(gt=0, le=1)


class S3VectorsPrices(BaseModel):
    storage_per_gb_month: NonNegativeFloat
    put_per_gb: NonNegativeFloat
    put_minimum_bytes_per_request: NonNegativeInt
    vectors_per_put_request: int = Field(ge=1)
    query_per_million_requests: NonNegativeFloat


class RegionPrices(BaseModel):
    bedrock: BedrockPrices
    s3vectors: S3VectorsPrices


class PriceTable(BaseModel):
    as_of: date
    currency: Literal["USD"]
    check_current_prices_at: list[str] = Field(min_length=1)
    sources: str
    regions: dict[str, RegionPrices] = Field(min_length=1)


@cache
def price_table() -> PriceTable:
    """The packaged price file, validated (a damaged file fails loudly, not with a wrong figure)."""
    text = resources.files("nova_mcp_server").joinpath("data/prices.json").read_text(encoding="utf-8")
    return PriceTable.model_validate(json.loads(text))


class UsageCounts(BaseModel):
    """What a dry run found: the inputs Bedrock bills and the vectors S3 Vectors stores."""

    sources: NonNegativeInt = 0
    segments: NonNegativeInt = Field(default=0, description="vectors to write (one per segment)")
    text_tokens: NonNegativeInt = Field(default=0, description="estimated text tokens (see estimate_text_tokens)")
    images: NonNegativeInt = Field(default=0, description="images, including PDF pages embedded as page images")
    video_seconds: NonNegativeFloat = 0.0
    audio_seconds: NonNegativeFloat = 0.0


class CostLine(BaseModel):
    item: str
    quantity: float
    unit: str
    unit_price_usd: float
    cost_usd: float


class CostEstimate(BaseModel):
    """One dry run's price: Bedrock once, S3 Vectors writes once, S3 Vectors storage every month."""

    backend: Literal["aws", "local"]
    counts: UsageCounts
    region: str
    priced_region: str = Field(description="the region whose prices were used")
    mode: Literal["on_demand", "batch"]
    dimension: int
    bedrock: list[CostLine]
    bedrock_usd: float
    s3vectors_write_usd: float
    s3vectors_storage_gb: float
    s3vectors_storage_usd_per_month: float
    total_once_usd: float = Field(description="Bedrock embedding plus S3 Vectors writes, charged once")
    prices_as_of: date
    check_current_prices_at: list[str]
    notes: list[str]


def estimate_text_tokens(chars: int) -> int:
    """Tokens for `chars` characters of text: an estimate, since Nova reports no usage and its tokenizer is private."""
    return math.ceil(max(chars, 0) / CHARS_PER_TOKEN)


def count_segment(counts: UsageCounts, segment: Any, *, new_source: bool = False, reference_chars: int = 0) -> None:
    """Add one segment (anything with `embed_as`, `text`, `start_s`, `end_s`, like ingest's Segment) to `counts`.

    Text is counted in estimated tokens, an image (or a PDF page image) as one image, audio and video by their
    seconds. The dry run calls this for every segment it produces, with `new_source` on a source's first one.
    A text Nova reads by reference (s3Location, no text here) counts as `reference_chars`: the caller knows
    the most such a segment can hold.
    """
    counts.segments += 1
    counts.sources += new_source
    kind = segment.embed_as
    if kind == "text":
        by_reference = segment.text is None and getattr(segment, "s3_uri", None)
        counts.text_tokens += estimate_text_tokens(reference_chars if by_reference else len(segment.text or ""))
    elif kind == "image":
        counts.images += 1
    elif kind in ("audio", "video"):
        seconds = max((segment.end_s or 0.0) - (segment.start_s or 0.0), 0.0)
        if kind == "audio":
            counts.audio_seconds += seconds
        else:
            counts.video_seconds += seconds
    else:
        raise ValueError(f"unknown embed_as {kind!r}: text, image, audio or video")


def estimate(
    counts: UsageCounts,
    *,
    backend: Literal["aws", "local"] = "aws",
    region: str = "us-east-1",
    dimension: int = 1024,
    batch: bool = False,
    metadata_bytes_per_vector: int = METADATA_BYTES,
) -> CostEstimate:
    """Price `counts` with the packaged table; the local backend costs nothing on AWS."""
    table = price_table()
    notes: list[str] = []
    priced = region if region in table.regions else "us-east-1"
    if priced != region:
        notes.append(f"no prices for {region} in the table: us-east-1 prices shown; {region} may differ")
    prices = table.regions[priced]
    factor = prices.bedrock.batch_factor if batch else 1.0
    rates = prices.bedrock.on_demand
    wanted = [
        ("text", counts.text_tokens / 1e6, "million tokens", rates.text_per_million_tokens),
        ("images", float(counts.images), "images", rates.per_image),
        ("video", counts.video_seconds, "seconds", rates.video_per_second),
        ("audio", counts.audio_seconds, "seconds", rates.audio_per_second),
    ]
    aws = backend == "aws"
    lines = [
        CostLine(item=item, quantity=qty, unit=unit, unit_price_usd=rate * factor, cost_usd=qty * rate * factor * aws)
        for item, qty, unit, rate in wanted
        if qty
    ]
    s3 = prices.s3vectors
    vector_bytes = 4 * dimension + KEY_BYTES + metadata_bytes_per_vector
    stored = counts.segments * vector_bytes
    full, rest = divmod(counts.segments, s3.vectors_per_put_request)
    floor = s3.put_minimum_bytes_per_request  # each PutVectors request is billed for at least this much
    uploaded = full * max(s3.vectors_per_put_request * vector_bytes, floor) + (
        max(rest * vector_bytes, floor) * bool(rest)
    )
    write_usd = uploaded / GB * s3.put_per_gb * aws
    storage_usd = stored / GB * s3.storage_per_gb_month * aws
    bedrock_usd = sum(line.cost_usd for line in lines)
    if aws:
        notes.append(f"text tokens are estimated at {CHARS_PER_TOKEN:g} characters per token")
        notes.append("unchanged sources are skipped when indexed again and cost nothing")
        if counts.video_seconds:
            notes.append("video is priced per second at the video rate; its sound is not billed separately here")
    else:
        notes.append("local backend: embeddings and vectors stay on this machine; no AWS charges")
    return CostEstimate(
        backend=backend,
        counts=counts,
        region=region,
        priced_region=priced,
        mode="batch" if batch else "on_demand",
        dimension=dimension,
        bedrock=lines,
        bedrock_usd=bedrock_usd,
        s3vectors_write_usd=write_usd,
        s3vectors_storage_gb=stored / GB,
        s3vectors_storage_usd_per_month=storage_usd,
        total_once_usd=bedrock_usd + write_usd,
        prices_as_of=table.as_of,
        check_current_prices_at=table.check_current_prices_at,
        notes=notes,
    )


def _usd(value: float) -> str:
    """$0.00006, $0.4518: enough digits for tiny unit prices, no exponent notation."""
    return "$" + (f"{value:.8f}".rstrip("0").rstrip(".") if value else "0")


def render(report: CostEstimate) -> str:
    """The estimate as a few lines of text for people (the CLI) and agents (a tool's text content)."""
    c = report.counts
    out = [
        f"{c.sources} source(s), {c.segments} segment(s): ~{c.text_tokens:,} text tokens, {c.images} image(s), "
        f"{c.video_seconds:g} s video, {c.audio_seconds:g} s audio",
    ]
    if report.backend == "local":
        out.append("cost: $0 (local backend)")
    else:
        for line in report.bedrock:
            out.append(
                f"  {line.item}: {line.quantity:g} {line.unit} x {_usd(line.unit_price_usd)} = {_usd(line.cost_usd)}"
            )
        out.append(f"Bedrock ({report.mode.replace('_', '-')}, {report.priced_region}): {_usd(report.bedrock_usd)}")
        out.append(
            f"S3 Vectors: writes {_usd(report.s3vectors_write_usd)} once; storage {report.s3vectors_storage_gb:.6f} GB "
            f"= {_usd(report.s3vectors_storage_usd_per_month)} per month ({report.dimension} dimensions)"
        )
        out.append(f"total once: {_usd(report.total_once_usd)}")
    out.append(f"prices as of {report.prices_as_of}; check {', '.join(report.check_current_prices_at)}")
    out.extend(f"note: {n}" for n in report.notes)
    return "\n".join(out)
