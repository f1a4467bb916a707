"""The stored metadata text: the orjson fast path writes exactly what the standard compact encoder writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nova_mcp_server.stores.base import check_metadata_json

REFERENCE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

scalar = st.one_of(
    st.text(max_size=20, alphabet=st.characters(blacklist_categories=("Cs",))),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits too (orjson refuses those)
    st.floats(allow_nan=False, allow_infinity=False),  # exponents too (1e+16 vs 1e16)
    st.sampled_from([0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9.999999999999998e15, 0.1, 5e-324]),
)
value = st.one_of(scalar, st.lists(st.text(max_size=8), max_size=4), st.lists(scalar, max_size=4))
metadata = st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k[0] != "$"), value, max_size=6)


@settings(max_examples=400, deadline=None)
@given(meta=metadata)
def test_stored_text_is_the_standard_compact_json(meta: dict[str, Any]) -> None:
    try:
        clean, text = check_metadata_json(meta)
    except Exception:  # too large for the limits: not this test's subject
        return
    assert text == REFERENCE.encode(clean)
    assert json.loads(text) == clean


@pytest.mark.parametrize("text", ["line\u2028separator", 'tab\tquote"slash\\'])
def test_strings_the_fast_path_may_refuse_still_encode(text: str) -> None:
    clean, stored = check_metadata_json({"t": text, "n": 1.5})
    assert stored == REFERENCE.encode(clean)
