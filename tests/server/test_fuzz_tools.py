"""Generated arguments at every tool: the server always answers, never crashes, and failed calls change nothing.

Hypothesis builds argument objects from each tool's own parameter names, mixing values of the right shape
(edgy numbers, filters with real and unknown operators, content objects, paths in and out of the allowed
root, s3:// and data: URIs) with arbitrary JSON of the wrong type. Per call:

- `call_tool` returns (no exception, no protocol error);
- an error result carries a message, not the SDK's bare "Error executing tool X" that marks a crash;
- a failed call leaves every index exactly as it was (listing, keys, vectors, metadata);
- nothing is logged at ERROR (the SDK logs crashes there).

The client runs in a blocking portal (its own event loop in a thread) so one server session serves every
example; a final valid index + search proves the server is still consistent and working.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fixtures.media import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from support import local_core

from nova_mcp_server.app import App
from nova_mcp_server.server import build_server

TOOLS = [
    "embed_content",
    "semantic_search",
    "list_indexes",
    "job_status",
    "index_content",
    "create_index",
    "delete_index",
    "delete_content",
]
EXAMPLES = 40
USUALLY_GIVEN = {"semantic_search": ["query"]}  # optional in the schema, but nearly every real call has one

ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "..",
    "../../../../etc/passwd",
    "/etc/shadow",
    "~/.aws/credentials",
    "file:///etc/hostname",
    "s3://",
    "s3:/x",
    "s3://bucket",
    "s3://bucket/",
    "s3://Bad_Bucket/k",
    "data:,hello",
    "data:image/png;base64,!!!",
    "nova://indexes/docs",
    "$eq",
    "$and",
    "docs",
    "default",
    "nope",
    "A_B",
    "%s%n%x",
    "{}",
    "null",
    "🙂" * 5,
    "a" * 3000,
    "\u202e\ufeff",
]
OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or", "$not", "$regex"]
FIELDS = ["page", "modality", "source", "segment", "snippet", "team", "format", "$and"]

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 5, 100, 101, 256, 384, 1024, 3072, 2**31, 2**63, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40))
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)),
    max_leaves=12,
)


def filters() -> st.SearchStrategy[Any]:
    leaf = st.one_of(scalars, st.lists(scalars, max_size=3))
    condition = st.one_of(leaf, st.dictionaries(st.sampled_from(OPERATORS), leaf, min_size=1, max_size=2))
    return st.recursive(
        st.dictionaries(st.sampled_from(FIELDS), condition, min_size=1, max_size=2),
        lambda inner: st.one_of(
            st.dictionaries(st.sampled_from(["$and", "$or", "$not"]), st.lists(inner, max_size=3), min_size=1),
            st.dictionaries(st.sampled_from(FIELDS), inner, min_size=1, max_size=1),
        ),
        max_leaves=6,
    )


def contents(paths: list[str]) -> st.SearchStrategy[Any]:
    locator = st.one_of(odd_text, st.sampled_from(paths))
    data = st.one_of(odd_text, st.sampled_from(["iVBORw0KGgo=", "aGVsbG8=", "UEsDBAAAAA=="]))
    fmt = st.one_of(odd_text, st.sampled_from(["png", "mp3", "text", "zip", "PNG"]))
    single = st.one_of(
        st.fixed_dictionaries({"text": st.one_of(odd_text, st.just("red apples"))}),
        st.fixed_dictionaries({"path": locator}),
        st.fixed_dictionaries({"s3_uri": odd_text}),
        st.fixed_dictionaries({"data": data}, optional={"format": fmt}),
    )
    mixed = st.fixed_dictionaries(
        {}, optional={"text": odd_text, "path": locator, "s3_uri": odd_text, "data": data, "format": fmt}
    )
    return st.lists(st.one_of(single, single, single, mixed), min_size=1, max_size=3)


def plausible(name: str, paths: list[str]) -> st.SearchStrategy[Any]:
    """Values of about the right shape for a parameter, so calls get past schema validation and go deeper."""
    names = st.one_of(
        st.just("docs"), st.sampled_from(["docs", "default", "nope", "fresh-one", "A_B", "x" * 64]), odd_text
    )
    rarely = st.integers(0, 3).flatmap  # absent (None) three times in four, so a query alone is common
    table: dict[str, st.SearchStrategy[Any]] = {
        "contents": contents(paths),
        "image": rarely(lambda n: contents(paths).map(lambda c: c[0]) if n == 0 else st.none()),
        "purpose": st.sampled_from(["GENERIC_INDEX", "GENERIC_RETRIEVAL", "TEXT_RETRIEVAL", "nope", ""]),
        "dimension": numbers,
        "include_vector": st.booleans(),
        "query": st.one_of(odd_text, st.just("green grass"), st.just("green grass")),
        "vector_handle": rarely(lambda n: odd_text if n == 0 else st.none()),
        "index": names,
        "name": names,
        "top_k": st.one_of(st.integers(min_value=-2, max_value=102), numbers),
        "filter": filters(),
        "modality": st.lists(st.sampled_from(["text", "image", "document", "audio", "video"]), max_size=2),
        "include_images": st.booleans(),
        "job_id": st.one_of(odd_text, st.just("job-000000000000")),
        "sources": st.lists(st.one_of(st.sampled_from(paths), odd_text), max_size=3),
        "texts": st.lists(st.one_of(odd_text, st.just("blue sky")), max_size=3),
        "metadata": st.dictionaries(odd_text, json_values, max_size=4),
        "include": st.lists(odd_text, max_size=2),
        "exclude": st.lists(odd_text, max_size=2),
        "recursive": st.booleans(),
        "wait": st.booleans(),
        "source": st.one_of(st.sampled_from(paths), odd_text),
    }
    shaped = table.get(name, json_values)
    return st.integers(0, 9).flatmap(lambda n: json_values if n == 0 else shaped)  # 1 in 10: any JSON at all


def arguments(params: list[str], required: list[str], paths: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    values = {p: plausible(p, paths) for p in params}
    complete = st.fixed_dictionaries(
        {p: values[p] for p in required}, optional={p: v for p, v in values.items() if p not in required}
    )
    anything = st.fixed_dictionaries({}, optional=values)  # required ones may be missing too
    extra = st.dictionaries(odd_text, json_values, max_size=2)
    with_extra = st.tuples(complete, extra).map(lambda t: {**t[1], **t[0]})
    return st.integers(0, 9).flatmap(lambda n: anything if n == 0 else with_extra if n == 1 else complete)


class ErrorLog(logging.Handler):
    """Collects ERROR records: the SDK logs every crash of a tool there with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[tuple[BlockingPortal, Any, App, list[str]]]:
    """One server and client session for the module, driven from sync code through a blocking portal."""
    root = tmp_path_factory.mktemp("fuzz")
    docs = root / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("green grass grows in spring")
    make_image(docs / "red.png", "png", (250, 10, 10), (16, 16))
    (docs / "zero.txt").write_bytes(b"")
    paths = [str(docs / "a.txt"), str(docs / "red.png"), str(docs / "zero.txt"), str(docs), str(root / "missing")]
    core = local_core(root, tiny_model)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(build_server(core, poll_seconds=0))) as client,
    ):
        seeded = portal.call(client.call_tool, "index_content", {"sources": [str(docs / "a.txt")], "index": "docs"})
        assert not seeded.is_error, seeded.content
        yield portal, client, core, paths


def state(portal: BlockingPortal, client: Any, core: App) -> Any:
    listing = portal.call(client.call_tool, "list_indexes", {}).structured_content["indexes"]
    stored = {}
    for entry in listing:
        page = core.store.list_vectors(entry["name"], max_results=1000, return_data=True, return_metadata=True)
        stored[entry["name"]] = sorted((v.key, v.data, json.dumps(v.metadata, sort_keys=True)) for v in page.vectors)
    return listing, stored


def settle_jobs(portal: BlockingPortal, client: Any, structured: dict[str, Any] | None) -> None:
    """A successful wait=false call starts a background job; let it finish before comparing states again."""
    for job_id in (structured or {}).get("jobs") or []:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = portal.call(client.call_tool, "job_status", {"job_id": job_id}).structured_content["jobs"]
            if jobs[0]["status"] in ("completed", "partial", "failed"):  # every job ends in one of these
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"job {job_id} never finished")


@pytest.mark.parametrize("tool", TOOLS)
def test_generated_arguments(tool: str, session: Any) -> None:
    portal, client, core, paths = session
    schema = {t.name: t.input_schema for t in portal.call(client.list_tools).tools}[tool]
    params = list(schema.get("properties", {}))
    required = list(schema.get("required", [])) + USUALLY_GIVEN.get(tool, [])
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    counts = {"calls": 0, "errors": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )
    @given(args=arguments(params, required, paths))
    def one(args: dict[str, Any]) -> None:
        errors.records.clear()
        before = state(portal, client, core)
        result = portal.call(client.call_tool, tool, args)  # must not raise
        counts["calls"] += 1
        text = " ".join(getattr(block, "text", "") for block in result.content)
        if result.is_error:
            counts["errors"] += 1
            assert text.strip() and text.strip() != f"Error executing tool {tool}", f"crash on {args!r}"
            assert state(portal, client, core) == before, f"failed call changed the index state: {args!r}"
        else:
            settle_jobs(portal, client, result.structured_content)
        assert not errors.records, f"{args!r} logged: {errors.records[0].getMessage()}"

    try:
        one()
    finally:
        logging.getLogger().removeHandler(errors)
    assert counts["calls"] >= EXAMPLES // 2
    if params:
        assert counts["errors"] > 0  # the generator does reach the error paths

    # Still consistent and working: index and find a text, and every index passes the store's own check.
    done = portal.call(client.call_tool, "index_content", {"texts": ["final yellow lemon"], "index": "final"})
    assert not done.is_error, done.content
    hit = portal.call(client.call_tool, "semantic_search", {"query": "yellow lemon", "index": "final", "top_k": 1})
    assert not hit.is_error and hit.structured_content["hits"][0]["snippet"] == "final yellow lemon"
    for info in core.store.list_indexes():
        assert core.store.integrity_check(info.name) == []
