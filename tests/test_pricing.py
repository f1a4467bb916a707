"""The dated price table and the cost estimate a dry run reports (issue 14: cost before spend)."""

from __future__ import annotations

import json
import tomllib
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from nova_mcp_server import pricing
from nova_mcp_server.pricing import PriceTable, UsageCounts, estimate, estimate_text_tokens, render

ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3


def test_the_table_holds_the_us_east_1_on_demand_prices_with_a_date_and_where_to_check() -> None:
    table = pricing.price_table()
    rates = table.regions["us-east-1"].bedrock.on_demand
    assert (rates.text_per_million_tokens, rates.per_image, rates.video_per_second, rates.audio_per_second) == (
        0.135,
        0.00006,
        0.0007,
        0.00014,
    )
    assert table.regions["us-east-1"].bedrock.batch_factor == 0.5
    assert isinstance(table.as_of, date)
    assert "https://aws.amazon.com/bedrock/pricing/" in table.check_current_prices_at


def test_the_table_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/*.json" in config["nova_mcp_server"]
    assert (ROOT / "nova_mcp_server" / "data" / "prices.json").is_file()


def test_a_damaged_table_is_refused() -> None:
    raw = json.loads((ROOT / "nova_mcp_server" / "data" / "prices.json").read_text())
    raw["regions"]["us-east-1"]["bedrock"]["on_demand"]["per_image"] = -1
    with pytest.raises(ValidationError, match="per_image"):
        PriceTable.model_validate(raw)


def test_bedrock_lines_follow_the_units() -> None:
    counts = UsageCounts(sources=3, text_tokens=2_000_000, images=1000, video_seconds=100, audio_seconds=50)
    report = estimate(counts)
    costs = {line.item: line.cost_usd for line in report.bedrock}
    assert costs == pytest.approx({"text": 0.27, "images": 0.06, "video": 0.07, "audio": 0.007})
    assert report.bedrock_usd == pytest.approx(0.407)
    halved = estimate(counts, batch=True)
    assert halved.mode == "batch" and halved.bedrock_usd == pytest.approx(0.2035)
    assert [line.item for line in estimate(UsageCounts(images=2)).bedrock] == ["images"]  # zero lines left out


def test_s3_vectors_storage_and_writes() -> None:
    million = estimate(UsageCounts(segments=1_000_000), dimension=1024, metadata_bytes_per_vector=0)
    per_vector = 4 * 1024 + pricing.KEY_BYTES
    assert million.s3vectors_storage_gb == pytest.approx(per_vector * 1e6 / GB)
    assert million.s3vectors_storage_usd_per_month == pytest.approx(per_vector * 1e6 / GB * 0.06)
    assert million.s3vectors_write_usd == pytest.approx(per_vector * 1e6 / GB * 0.2)
    # a small write is billed for at least 128 KB per PutVectors request (500 vectors each)
    one = estimate(UsageCounts(segments=1))
    assert one.s3vectors_write_usd == pytest.approx(131072 / GB * 0.2)
    small = estimate(UsageCounts(segments=501), dimension=256, metadata_bytes_per_vector=0)
    # 500 vectors of 1088 bytes in the first request, the 501st alone in a second one billed as 128 KB
    assert small.s3vectors_write_usd == pytest.approx((500 * 1088 + 131072) / GB * 0.2)
    assert estimate(UsageCounts(segments=10), dimension=3072).s3vectors_storage_gb > one.s3vectors_storage_gb * 10
    assert million.total_once_usd == pytest.approx(million.bedrock_usd + million.s3vectors_write_usd)


def test_local_backend_costs_nothing_on_aws() -> None:
    report = estimate(UsageCounts(segments=50, text_tokens=10_000, images=4), backend="local")
    assert report.bedrock_usd == report.total_once_usd == report.s3vectors_storage_usd_per_month == 0
    assert "cost: $0 (local backend)" in render(report)


def test_an_unpriced_region_says_which_prices_it_used() -> None:
    report = estimate(UsageCounts(images=10), region="eu-west-1")
    assert report.priced_region == "us-east-1"
    assert any("no prices for eu-west-1" in note for note in report.notes)


def test_text_tokens_are_estimated_from_characters() -> None:
    assert [estimate_text_tokens(n) for n in (0, 1, 4, 5, 4000)] == [0, 1, 1, 2, 1000]


def test_render_shows_every_figure_and_the_date() -> None:
    report = estimate(UsageCounts(sources=2, segments=3, text_tokens=1000, images=1, video_seconds=12))
    text = render(report)
    assert "2 source(s), 3 segment(s): ~1,000 text tokens, 1 image(s), 12 s video, 0 s audio" in text
    assert "images: 1 images x $0.00006 = $0.00006" in text
    assert "video: 12 seconds x $0.0007 = $0.0084" in text
    assert f"prices as of {report.prices_as_of}" in text and "https://aws.amazon.com/s3/pricing/" in text
    assert "e-0" not in text  # no exponent notation for small amounts


def test_segments_are_counted_by_what_they_send() -> None:
    from nova_mcp_server.ingest.model import Segment

    counts = UsageCounts()
    segments = [
        (True, Segment(ordinal=0, modality="text", embed_as="text", text="x" * 4001)),
        (False, Segment(ordinal=1, modality="document", embed_as="image", media=b"png", media_format="png", page=1)),
        (True, Segment(ordinal=0, modality="video", embed_as="video", media=b"mp4", start_s=10.0, end_s=20.5)),
        (True, Segment(ordinal=0, modality="audio", embed_as="audio", media=b"wav", start_s=0.0, end_s=7.0)),
    ]
    for first, segment in segments:
        pricing.count_segment(counts, segment, new_source=first)
    assert counts == UsageCounts(
        sources=3, segments=4, text_tokens=1001, images=1, video_seconds=10.5, audio_seconds=7.0
    )
