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


def test_a_batch_check_finds_a_bad_row_behind_rows_whose_norms_overflow_or_underflow() -> None:
    """Huge and tiny (but finite, non-zero) rows pass; a NaN row or an all-zero row after them is refused."""
    import numpy as np

    from nova_mcp_server.errors import InvalidInput
    from nova_mcp_server.stores.base import VectorRecord, check_vectors

    def batch(*rows: np.ndarray) -> list[VectorRecord]:
        return [VectorRecord.model_construct(key=f"k{i}", data=r.astype(np.float32)) for i, r in enumerate(rows)]

    huge, tiny, good = np.full(4, 3e37), np.full(4, 1e-30), np.ones(4)
    assert check_vectors(batch(huge, tiny, good), 4, "cosine").shape == (3, 4)
    with pytest.raises(InvalidInput, match="NaN"):
        check_vectors(batch(huge, good, np.array([1, np.nan, 0, 0])), 4, "cosine")
    with pytest.raises(InvalidInput, match="all zeros"):
        check_vectors(batch(tiny, huge, np.zeros(4)), 4, "cosine")
    assert check_vectors(batch(np.zeros(4), good), 4, "euclidean").shape == (2, 4)
