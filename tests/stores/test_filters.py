"""The filter language: validation messages, reference semantics, and vectorised == reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.stores.filter_columns import MetadataColumns
from nova_mcp_server.stores.filters import matches, validate_filter

ROWS: list[dict[str, Any] | None] = [
    {"genre": "drama", "year": 2020, "tags": ["a", "b"], "flag": True},
    {"genre": "comedy", "year": 2019.5, "tags": ["b"], "flag": 1},
    {"genre": "documentary", "tags": [], "rating": 4},
    {"year": 2024, "tags": "a", "flag": False},
    {},
    None,
    {"genre": ["drama", "comedy"], "year": [1999, 2030], "n": 1.0},
]


def hits(filter: Any, non_filterable: tuple[str, ...] = ()) -> list[int]:
    compiled = validate_filter(filter, non_filterable)
    reference = [i for i, m in enumerate(ROWS) if matches(m, compiled)]
    columns = MetadataColumns(non_filterable)
    columns.extend(ROWS)
    assert np.flatnonzero(columns.mask(compiled)).tolist() == reference
    return reference


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"genre": "drama"}, [0, 6]),  # bare value = $eq; list element matches
        ({"genre": {"$eq": "comedy"}}, [1, 6]),
        ({"genre": {"$ne": "drama"}}, [1, 2, 3, 4, 5]),  # missing key matches $ne; list with drama does not
        ({"genre": {"$in": ["documentary", "comedy"]}}, [1, 2, 6]),
        ({"genre": {"$nin": ["drama", "comedy"]}}, [2, 3, 4, 5]),  # missing key matches $nin
        ({"year": {"$gt": 2019}}, [0, 1, 3, 6]),  # 2030 in the list satisfies
        ({"year": {"$gte": 2020, "$lt": 2024}}, [0, 6]),  # ANDed; on a list each operator may use another element
        ({"year": {"$lte": 2000}}, [6]),
        ({"year": 2019.5}, [1]),
        ({"n": 1}, [6]),  # 1 == 1.0
        ({"flag": True}, [0]),  # true is not 1
        ({"flag": 1}, [1]),  # 1 is not true
        ({"flag": {"$ne": True}}, [1, 2, 3, 4, 5, 6]),
        ({"flag": {"$in": [False, 1]}}, [1, 3]),
        ({"tags": "a"}, [0, 3]),
        ({"tags": {"$exists": True}}, [0, 1, 2, 3]),  # an empty list is present
        ({"tags": {"$exists": False}}, [4, 5, 6]),
        ({"rating": {"$exists": True}, "genre": "documentary"}, [2]),
        ({"$or": [{"genre": "drama"}, {"rating": {"$gte": 4}}]}, [0, 2, 6]),
        ({"$and": [{"tags": "b"}, {"$or": [{"flag": 1}, {"flag": True}]}]}, [0, 1]),
        ({"genre": {"$gt": 1}}, []),  # strings never compare with numbers
        ({"unknown": {"$ne": 1}}, [0, 1, 2, 3, 4, 5, 6]),
        ({"unknown": 1}, []),
        ({}, [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_semantics(filter: Any, expected: list[int]) -> None:
    assert hits(filter) == expected


@pytest.mark.parametrize(
    ("filter", "fragment"),
    [
        ([{"a": 1}], "must be a JSON object"),
        ({"a": {"$regex": "x"}}, "unknown operator '$regex'"),
        ({"$not": {"a": 1}}, "unknown operator '$not'"),
        ({"$eq": 1}, "$eq needs a field"),
        ({"a": {"$in": []}}, "$in takes a non-empty array"),
        ({"a": {"$in": "x"}}, "$in takes a non-empty array"),
        ({"a": {"$nin": [1, {"b": 2}]}}, "a.$nin[1]"),
        ({"a": {"$in": [[1]]}}, "got an array"),
        ({"a": {"$gt": "5"}}, "$gt takes a number; got string"),
        ({"a": {"$lte": True}}, "$lte takes a number; got boolean true"),
        ({"a": {"$gte": float("nan")}}, "not a finite number"),
        ({"a": {"$exists": 1}}, "$exists takes true or false"),
        ({"$and": []}, "$and takes a non-empty array"),
        ({"$or": {"a": 1}}, "$or takes a non-empty array"),
        ({"$and": [1]}, "expected a filter object"),
        ({"$and": [{}]}, "empty filter object"),
        ({"a": {"$eq": {"b": 1}}}, "expected a string, number or boolean"),
        ({"a": {"b": 1}}, "a field takes a value or an object of operators"),
        ({"a": {}}, "empty operator object"),
        ({"a": [1, 2]}, "$in"),
        ({"a": None}, "got null"),
        ({"a": {"$eq": [1]}}, 'Use "$in"/"$nin"'),
        ({"a": {"$and": [{"b": 1}]}}, "belongs at the level of field names"),
        ({"text": "x"}, "'text' is non-filterable"),
        ({"$or": [{"a": 1}, {"text": {"$exists": True}}]}, "$or[1].text"),
        ({"a": {"$startsWith": ""}}, "$startsWith takes a non-empty string; got string ''"),
        ({"a": {"$startsWith": 3}}, "$startsWith takes a non-empty string; got number 3"),
        ({"a": {"$startsWith": ["x"]}}, "$startsWith takes a non-empty string; got an array"),
        ({"a": {"$startsWith": None}}, "got null"),
    ],
)
def test_rejections_name_the_problem(filter: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_filter(filter, ["text"])
    assert fragment in info.value.text


@pytest.mark.parametrize(
    "filter",
    [
        {"a": None},
        {"a": {"$in": [None]}},
        {"a": {"$eq": {"b": 1}}},
        {"a": {"$in": [[1]]}},
        {"a": {"$gt": None}},
        {"a": {"$exists": []}},
        {"$and": [None]},
        {"$or": {}},
        {"a": {"$startsWith": {}}},
        {"a": [1]},
        ["a"],
        "a",
        {"a": {"$eq": object()}},
    ],
)
def test_messages_speak_json_not_python(filter: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_filter(filter)
    text = info.value.text
    for python in ("NoneType", "dict", "list", "tuple", "'object'", "str ", "int ", "float"):
        assert python not in text, text


def test_starts_with_matches_string_prefixes_only() -> None:
    assert hits({"genre": {"$startsWith": "dra"}}) == [0, 6]  # a list element may match
    assert hits({"genre": {"$startsWith": "doc"}}) == [2]
    assert hits({"tags": {"$startsWith": "a"}}) == [0, 3]
    assert hits({"year": {"$startsWith": "20"}}) == []  # numbers are not strings
    assert hits({"genre": {"$startsWith": "Dra"}}) == []  # case matters
    assert hits({"genre": {"$startsWith": "drama"}}) == [0, 6]


def test_a_wide_filter_validates_in_one_pass() -> None:
    wide = {"$or": [{"k": {"$eq": i}} for i in range(50_000)]}
    compiled = validate_filter(wide)
    assert compiled.keys == {"k"} and len(compiled.root.children) == 50_000  # type: ignore[union-attr]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    f: dict[str, Any] = {"a": 1}
    for _ in range(100):
        f = {"$and": [f]}
    with pytest.raises(InvalidInput, match="nest at most"):
        validate_filter(f)


def test_compiled_keys_and_source() -> None:
    compiled = validate_filter({"$or": [{"a": 1}, {"b": {"$in": [1, 2]}}], "c": True})
    assert compiled.keys == {"a", "b", "c"}
    assert compiled.source == {"$or": [{"a": 1}, {"b": {"$in": [1, 2]}}], "c": True}
    assert validate_filter(None).root is None and validate_filter({}).source is None


def test_columns_grow_incrementally() -> None:
    columns = MetadataColumns(["text"])
    columns.extend(ROWS[:3])
    first = columns.mask(validate_filter({"genre": "drama"}))
    columns.extend(ROWS[3:])
    assert first.tolist() == [True, False, False]
    assert np.flatnonzero(columns.mask(validate_filter({"genre": "drama"}))).tolist() == [0, 6]


# ---- property: the vectorised evaluator equals the reference on generated data ---------------------------

KEYS = ["a", "b", "c"]
primitive = st.one_of(
    st.sampled_from(["x", "y", "z", "xy", "yx"]),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.0, 2.0, 1e300]),
    st.booleans(),
)
value = st.one_of(primitive, st.lists(primitive, max_size=3))
metadata = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), value, max_size=3))
number = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.0, 2.0]))
operator = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), primitive),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), number),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(primitive, min_size=1, max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
    st.tuples(st.just("$startsWith"), st.sampled_from(["x", "y", "xy", "q"])),
)
field_filter = st.one_of(
    st.builds(lambda k, v: {k: v}, st.sampled_from(KEYS), primitive),
    st.builds(lambda k, ops: {k: dict(ops)}, st.sampled_from(KEYS), st.lists(operator, min_size=1, max_size=2)),
)
filters = st.recursive(
    field_filter,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(metadata, max_size=12), filter=filters)
def test_vectorised_equals_reference(rows: list[dict[str, Any] | None], filter: dict[str, Any]) -> None:
    compiled = validate_filter(filter)
    columns = MetadataColumns()
    columns.extend(rows)
    assert columns.mask(compiled).tolist() == [matches(m, compiled) for m in rows]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(metadata, max_size=12), more=st.lists(metadata, max_size=6), filter=filters)
def test_vectorised_equals_reference_as_the_columns_grow(
    rows: list[dict[str, Any] | None], more: list[dict[str, Any] | None], filter: dict[str, Any]
) -> None:
    """Masks taken before and after more rows arrive (the dense per-row slots are rebuilt as columns grow)."""
    compiled = validate_filter(filter)
    columns = MetadataColumns()
    columns.extend(rows)
    columns.freeze()
    assert columns.mask(compiled).tolist() == [matches(m, compiled) for m in rows]
    columns.extend(more)
    columns.freeze()
    assert columns.mask(compiled).tolist() == [matches(m, compiled) for m in rows + more]
