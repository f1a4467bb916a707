"""The local store's filter evaluator: the S3 Vectors filter language over per-key numpy columns.

`MetadataColumns` holds the filterable metadata of rows 0..n-1 and answers `mask(filter)` with a bool array
of n, with the semantics of `filters.matches` (the pure-Python reference; a property test keeps the two
equal). Scalar keys also get one dense slot per row (`_Column.dense`), so the usual filters compare a
single array; list-valued keys answer from their entry arrays.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import zipfile
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from nova_mcp_server.stores.filters import _COMPARE, CompiledFilter, Leaf, Node, Primitive, _is_number

_CACHE_FORMAT = 1
_MISSING = object()


_EMPTY: Mapping[str, Any] = {}
_FIELDS = ("present", "s_rows", "s_codes", "n_rows", "n_vals", "b_rows", "b_vals")
_DTYPES = (np.int64, np.int64, np.int64, np.int64, np.float64, np.int64, bool)


def _exact(value: Any) -> Any:
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, int):
        return int.__int__(value)
    return value


class _Column:
    """All values of one key: rows where it is present, plus one entry per scalar or list element, split by
    type (strings as integer codes), each entry tagged with its row. Entries live in numpy arrays plus Python
    lists of the entries added since the last `freeze`, which appends them to the arrays' buffers (grown by
    doubling, so a store that freezes after every 500-row batch copies each entry O(1) times, not O(n)).
    Readers keep views of the arrays: appending writes only past their ends."""

    __slots__ = (
        "present",
        "s_rows",
        "s_codes",
        "n_rows",
        "n_vals",
        "b_rows",
        "b_vals",
        "strings",
        "arrays",
        "_bufs",
        "_dense",
    )

    def __init__(self) -> None:
        self.present: list[int] = []
        self.s_rows: list[int] = []
        self.s_codes: list[int] = []
        self.n_rows: list[int] = []
        self.n_vals: list[float] = []
        self.b_rows: list[int] = []
        self.b_vals: list[bool] = []
        self.strings: dict[str, int] = {}
        self.set_arrays(tuple(np.empty(0, dtype=d) for d in _DTYPES))

    def set_arrays(self, arrays: tuple[np.ndarray, ...]) -> None:
        self.arrays = arrays
        self._bufs = list(arrays)
        self._dense: dict[str, tuple[tuple[int, int], np.ndarray | None]] = {}

    def dense(self, kind: str, n: int) -> np.ndarray | None:
        """One slot per row of 0..n-1 for the entries of `kind` -- "s": string codes (-1: none), "n": numbers
        (NaN: none), "p": whether the key is present -- so a filter compares one array instead of gathering
        and scattering entries (at 1M rows, `modality = TEXT` in ~1 ms instead of ~9). None when some row
        holds two entries of that kind (a list of two strings): then the entry arrays answer. Cached until
        the column or the row count grows; concurrent readers may both build it (the same array)."""
        arrays = self.freeze()
        rows, values, fill, dtype = {
            "s": (arrays[1], arrays[2], -1, np.int32),
            "n": (arrays[3], arrays[4], np.nan, np.float64),
            "p": (arrays[0], None, False, np.bool_),
        }[kind]
        key = (n, len(rows))
        hit = self._dense.get(kind)
        if hit is not None and hit[0] == key:
            return hit[1]
        out: np.ndarray | None = None
        if not len(rows) or bool((rows[1:] > rows[:-1]).all()) or int(np.bincount(rows).max()) <= 1:
            out = np.full(n, fill, dtype=dtype)
            out[rows] = True if values is None else values
        self._dense[kind] = (key, out)
        return out

    def add(self, row: int, value: Any) -> None:
        self.present.append(row)
        self._add_values(row, value)

    def _add_values(self, row: int, value: Any) -> None:
        for e in value if type(value) is list or type(value) is tuple else (value,):
            kind = type(e)
            if kind is not str and kind is not bool and kind is not int and kind is not float:
                e = _exact(e)  # a subclass (e.g. a StrEnum): the plain value its JSON text holds
                kind = type(e)
            if kind is str:
                self.s_rows.append(row)
                code = self.strings.get(e)
                if code is None:
                    code = self.strings[e] = len(self.strings)
                self.s_codes.append(code)
            elif kind is bool:
                self.b_rows.append(row)
                self.b_vals.append(e)
            else:
                self.n_rows.append(row)
                self.n_vals.append(e)

    def add_many(self, rows: list[int], values: list[Any], *, elements: bool = False) -> None:
        """`add` for many (row, value) pairs at once: when all values share one plain type (the usual case: a
        key holds strings, or numbers, or lists of strings) they go in with a few list operations instead of
        a Python call per value. `elements`: the values are list elements (their rows are already present)."""
        if not elements:
            self.present.extend(rows)
        kinds = set(map(type, values))
        if kinds == {str}:
            codes = self.strings
            self.s_rows.extend(rows)
            self.s_codes.extend([codes.setdefault(v, len(codes)) for v in values])
        elif kinds and kinds <= {int, float}:
            self.n_rows.extend(rows)
            self.n_vals.extend(values)
        elif kinds == {bool}:
            self.b_rows.extend(rows)
            self.b_vals.extend(values)
        elif kinds == {list} and not elements:
            lengths = list(map(len, values))
            flat = list(itertools.chain.from_iterable(values))
            if flat:
                self.add_many(np.repeat(np.asarray(rows, np.int64), lengths).tolist(), flat, elements=True)
        elif kinds:  # mixed types, tuples or subclasses: one at a time
            for row, value in zip(rows, values, strict=True):
                self._add_values(row, value if elements else value)

    def freeze(self) -> tuple[np.ndarray, ...]:
        if self.present:
            arrays = list(self.arrays)
            for i, (name, dtype) in enumerate(zip(_FIELDS, _DTYPES, strict=True)):
                tail = getattr(self, name)
                if not tail:
                    continue
                size, buf = len(arrays[i]), self._bufs[i]
                need = size + len(tail)
                if len(buf) < need:
                    grown = np.empty(max(need, 2 * len(buf), 256), dtype=dtype)
                    grown[:size] = arrays[i]
                    buf = self._bufs[i] = grown
                buf[size:need] = tail
                arrays[i] = buf[:need]
                tail.clear()
            self.arrays = tuple(arrays)
        return self.arrays


class MetadataColumns:
    """Filterable metadata of rows 0..n-1 as per-key numpy columns; `mask(filter)` -> bool array of n.

    Rows are append-only (the local store never rewrites a row's metadata in place), so the cache grows
    with `extend` and is rebuilt only when the store compacts.
    """

    def __init__(self, non_filterable_keys: Collection[str] = ()) -> None:
        self.n = 0
        self._skip = frozenset(non_filterable_keys)
        self._columns: dict[str, _Column] = {}

    def extend(self, metadatas: Iterable[Mapping[str, Any] | None]) -> None:
        """Append rows n, n+1, ...: key by key, each key's values collected in one pass over the batch and
        added at once (`_Column.add_many`), not one Python call per value."""
        metas = [m if m else _EMPTY for m in metadatas]
        first = self.n
        for key in set().union(*metas) - self._skip if metas else ():
            try:  # the usual case: every row has the key
                values = [m[key] for m in metas]
                rows = list(range(first, first + len(metas)))
            except KeyError:
                rows = [first + i for i, m in enumerate(metas) if key in m]
                values = [metas[r - first][key] for r in rows]
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = _Column()
            column.add_many(rows, values)
        self.n = first + len(metas)

    def freeze(self) -> None:
        """Fold every column's pending entries into its arrays, after which `mask` only reads: threads may
        then evaluate filters at the same time (the local store's readers do, between `extend`s)."""
        for column in self._columns.values():
            column.freeze()

    def renumbered(self, order: np.ndarray) -> MetadataColumns:
        """The cache after a rewrite where row `order[i]` becomes row `i` and rows not in `order` go (the
        local store's compaction), without re-reading any metadata."""
        self.freeze()
        new_of = np.full(self.n, -1, dtype=np.int64)
        new_of[order] = np.arange(len(order))
        out = MetadataColumns(self._skip)
        out.n = len(order)
        for key, column in self._columns.items():
            present, s_rows, s_codes, n_rows, n_vals, b_rows, b_vals = column.arrays
            arrays = []
            for rows, values in ((present, None), (s_rows, s_codes), (n_rows, n_vals), (b_rows, b_vals)):
                moved = new_of[rows]
                keep = moved >= 0
                arrays.append(moved[keep])
                if values is not None:
                    arrays.append(values[keep])
            fresh = out._columns[key] = _Column()
            fresh.strings = dict(column.strings)
            fresh.set_arrays(tuple(arrays))
        return out

    def save(self, path: Path, tag: Mapping[str, Any]) -> None:
        """Write the cache to `path` (atomically: a temporary file renamed into place). `tag` identifies what
        the rows are (the store's generation); `load` returns the cache only for the same tag."""
        columns = list(self._columns.items())
        header = {
            "format": _CACHE_FORMAT,
            "tag": dict(tag),
            "n": self.n,
            "skip": sorted(self._skip),
            "keys": [key for key, _ in columns],
            "strings": [list(c.strings) for _, c in columns],
        }
        arrays = {f"{i}.{f}": a for i, (_, c) in enumerate(columns) for f, a in zip(_FIELDS, c.freeze(), strict=True)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                payload: dict[str, Any] = {"header": np.array(json.dumps(header)), **arrays}
                np.savez(f, **payload)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(
        cls, path: Path, tag: Mapping[str, Any], non_filterable_keys: Collection[str] = ()
    ) -> MetadataColumns | None:
        """The cache `save` wrote for the same tag and non-filterable keys, or None (missing, other, damaged)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if (
                    header.get("format") != _CACHE_FORMAT
                    or header.get("tag") != dict(tag)
                    or header.get("skip") != sorted(non_filterable_keys)
                ):
                    return None
                out = cls(non_filterable_keys)
                out.n = int(header["n"])
                for i, (key, strings) in enumerate(zip(header["keys"], header["strings"], strict=True)):
                    column = out._columns[key] = _Column()
                    column.strings = {s: code for code, s in enumerate(strings)}
                    column.set_arrays(
                        tuple(np.asarray(z[f"{i}.{f}"], dtype=d) for f, d in zip(_FIELDS, _DTYPES, strict=True))
                    )
                return out
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
            return None

    def mask(self, compiled: CompiledFilter) -> np.ndarray:
        if compiled.root is None:
            return np.ones(self.n, dtype=bool)
        return self._eval(compiled.root)

    def _eval(self, node: Node | Leaf) -> np.ndarray:
        if isinstance(node, Leaf):
            return self._leaf(node)
        masks = (self._eval(c) for c in node.children)
        out = next(masks).copy()
        for m in masks:
            if node.op == "$and":
                out &= m
            else:
                out |= m
        return out

    def _rows(self, *rows: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for r in rows:
            out[r] = True
        return out

    def _equal_any(self, column: _Column, operands: tuple[Primitive, ...]) -> np.ndarray:
        _, s_rows, s_codes, n_rows, n_vals, b_rows, b_vals = column.freeze()
        hits: list[np.ndarray] = []  # rows that match (entry arrays)
        masks: list[np.ndarray] = []  # or masks over all rows (dense slots)
        codes = [column.strings[v] for v in operands if isinstance(v, str) and v in column.strings]
        numbers = [float(v) for v in operands if _is_number(v)]
        flags = [v for v in operands if isinstance(v, bool)]
        if codes:
            dense = column.dense("s", self.n)
            if dense is None:
                hits.append(s_rows[s_codes == codes[0]] if len(codes) == 1 else s_rows[np.isin(s_codes, codes)])
            elif len(codes) == 1:
                masks.append(dense == codes[0])
            else:
                wanted = np.zeros(len(column.strings) + 1, dtype=bool)  # the last slot is code -1: no string
                wanted[codes] = True
                masks.append(wanted[dense])
        if numbers:
            dense = column.dense("n", self.n)
            if dense is None:
                hits.append(n_rows[np.isin(n_vals, numbers)])
            else:
                masks.append(np.isin(dense, numbers))
        if flags:
            hits.append(b_rows[np.isin(b_vals, flags)])
        out = self._rows(*hits) if hits or not masks else masks.pop()
        for m in masks:
            out |= m
        return out

    def _leaf(self, leaf: Leaf) -> np.ndarray:
        column = self._columns.get(leaf.key)
        if column is None:  # no row has the key
            matched_when_missing = leaf.op in ("$ne", "$nin") or (leaf.op == "$exists" and not leaf.value)
            return np.full(self.n, matched_when_missing, dtype=bool)
        if leaf.op == "$exists":
            present = column.dense("p", self.n)
            assert present is not None  # one presence entry per row
            return present.copy() if leaf.value else ~present
        if leaf.op in ("$eq", "$ne"):
            found = self._equal_any(column, (leaf.value,))
            return found if leaf.op == "$eq" else ~found
        if leaf.op in ("$in", "$nin"):
            found = self._equal_any(column, leaf.value)
            return found if leaf.op == "$in" else ~found
        if leaf.op == "$startsWith":
            codes = [code for text, code in column.strings.items() if text.startswith(leaf.value)]
            _, s_rows, s_codes = column.freeze()[:3]
            return self._rows(s_rows[np.isin(s_codes, codes)]) if codes else np.zeros(self.n, dtype=bool)
        numbers = column.dense("n", self.n)
        if numbers is not None:
            return cast(np.ndarray, _COMPARE[leaf.op](numbers, leaf.value))  # NaN (no number) compares false
        n_rows, n_vals = column.freeze()[3:5]
        return self._rows(n_rows[_COMPARE[leaf.op](n_vals, leaf.value)])
