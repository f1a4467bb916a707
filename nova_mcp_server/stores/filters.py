"""The S3 Vectors metadata filter language: one validator, two evaluators.

`validate_filter` checks a filter once, for every store, before any backend sees it, so the local store
and S3 Vectors accept and reject the same filters with the same agent-readable messages. `matches` is the
pure-Python reference evaluator; `filter_columns.MetadataColumns` evaluates the same semantics over a
columnar cache as a numpy boolean mask (the local store's query path). A property test keeps the two equal.

Semantics (S3 Vectors docs, plus the decisions the docs leave open, marked *decided*):

- A bare value means `$eq`: `{"genre": "drama"}`. Several fields in one object, or several operators on
  one field (`{"year": {"$gte": 2020, "$lte": 2024}}`), are ANDed. *Decided*: each operator is judged on
  its own, so on a list value different elements may satisfy different operators (as in MongoDB).
- `$eq`: true when the stored value equals the operand; on a list-valued key, when **any element** does.
- Types never mix: a boolean never equals a number (`true` is not `1`), a string never equals a number.
  Numbers compare as IEEE doubles, so `1` equals `1.0`.
- `$gt $gte $lt $lte` take a number (not a boolean) and match stored numbers; *decided*: on a list they
  match when any numeric element satisfies the comparison; a missing key or a non-numeric value never
  matches.
- `$in` (non-empty list of strings, numbers, booleans): any element of the stored value equals any operand.
- `$ne` and `$nin` are the exact negations of `$eq` and `$in`. *Decided* (MongoDB-style): a vector
  **without the key matches** `$ne`/`$nin`, and on a list-valued key they match only when **no element**
  equals the operand(s). To require the key as well, add `{"$exists": true}`.
- `$exists` (boolean): whether the key is present (a present empty list counts as present).
- `$startsWith` (non-empty string; ours, not in the S3 Vectors language, so a backend without it evaluates it
  here or translates it): a stored string, or any string element of a list, begins with the operand.
  Numbers and booleans never match.
- `$and` / `$or`: non-empty lists of filter objects. An empty top-level filter `{}` matches everything.
- Non-filterable keys (declared when the index was created) are stored and returned but cannot be
  filtered on; naming one in a filter is an error, as on S3 Vectors.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from nova_mcp_server.errors import InvalidInput

COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
FIELD_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$exists", "$startsWith", *COMPARISONS)
LOGICAL_OPERATORS = ("$and", "$or")
MAX_DEPTH = 32

Primitive = str | int | float | bool


@dataclass(frozen=True)
class Leaf:
    """One operator on one metadata key; `value` is a primitive, a tuple of primitives, or a bool."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class Node:
    op: str  # "$and" | "$or"
    children: tuple[Node | Leaf, ...]


@dataclass(frozen=True)
class CompiledFilter:
    """A validated filter. `root` None matches everything; `source` is what a backend should receive."""

    root: Node | Leaf | None
    keys: frozenset[str]
    source: dict[str, Any] | None = None


MATCH_ALL = CompiledFilter(None, frozenset(), None)


# ---- validation -----------------------------------------------------------------------------------------


def _fail(path: str, problem: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(f"Invalid filter at {path}: {problem}", hint)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list | tuple):
        return "an array" if value else "an empty array"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a value JSON cannot hold"  # never a Python type name: the agent sent JSON


def _primitive(value: Any, path: str) -> Primitive:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        try:
            if math.isfinite(float(value)):
                return value
        except OverflowError:
            pass
        raise _fail(path, f"{value!r} is not a finite number.")
    raise _fail(path, f"expected a string, number or boolean; got {_describe(value)}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compile_operator(key: str, op: str, operand: Any, path: str) -> Leaf:
    if op in ("$eq", "$ne"):
        if isinstance(operand, list | tuple):
            raise _fail(path, f"{op} takes a single string, number or boolean; got an array.", 'Use "$in"/"$nin".')
        return Leaf(key, op, _primitive(operand, path))
    if op in COMPARISONS:
        if not _is_number(operand):
            raise _fail(path, f"{op} takes a number; got {_describe(operand)}.")
        return Leaf(key, op, float(_primitive(operand, path)))
    if op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple) or not operand:
            raise _fail(
                path, f"{op} takes a non-empty array of strings, numbers or booleans; got {_describe(operand)}."
            )
        return Leaf(key, op, tuple(_primitive(v, f"{path}[{i}]") for i, v in enumerate(operand)))
    if op == "$startsWith":
        if not isinstance(operand, str) or not operand:
            raise _fail(path, f"$startsWith takes a non-empty string; got {_describe(operand)}.")
        return Leaf(key, op, operand)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise _fail(path, f"$exists takes true or false; got {_describe(operand)}.")
        return Leaf(key, op, operand)
    if op in LOGICAL_OPERATORS:
        raise _fail(path, f"{op} belongs at the level of field names, not inside a field's operators.")
    raise _fail(path, f"unknown operator {op!r}.", f"Operators are {', '.join(FIELD_OPERATORS + LOGICAL_OPERATORS)}.")


def _compile_field(key: str, spec: Any, path: str, non_filterable: Collection[str]) -> Node | Leaf:
    if key in non_filterable:
        raise InvalidInput(
            f"Invalid filter at {path}: metadata key {key!r} is non-filterable in this index.",
            "Non-filterable keys are returned with results but cannot be used in filters.",
        )
    if isinstance(spec, dict):
        if not spec:
            raise _fail(path, 'an empty operator object; give at least one operator such as {"$eq": ...}.')
        leaves: list[Node | Leaf] = []
        for op, operand in spec.items():
            if not isinstance(op, str) or not op.startswith("$"):
                raise _fail(
                    f"{path}.{op}",
                    "metadata values are never objects, so a field takes a value or an object of operators.",
                    f'Did you mean {{{key!r}: {{"$eq": ...}}}}?',
                )
            leaves.append(_compile_operator(key, op, operand, f"{path}.{op}"))
        return leaves[0] if len(leaves) == 1 else Node("$and", tuple(leaves))
    if isinstance(spec, list | tuple):
        raise _fail(
            path,
            "a bare array is not a filter value.",
            f'To match any of several values use {{"{key}": {{"$in": [...]}}}}.',
        )
    return Leaf(key, "$eq", _primitive(spec, path))


def _compile_object(obj: Any, path: str, non_filterable: Collection[str], depth: int) -> Node | Leaf:
    if depth > MAX_DEPTH:
        raise _fail(
            path,
            f"filters nest at most {MAX_DEPTH} levels of $and/$or deep.",
            "Flatten it: one $and or $or takes any number of conditions.",
        )
    if not isinstance(obj, dict):
        raise _fail(path, f"expected a filter object; got {_describe(obj)}.")
    if not obj:
        raise _fail(path, "an empty filter object.")
    parts: list[Node | Leaf] = []
    for key, spec in obj.items():
        here = f"{path}.{key}" if path else str(key)
        if not isinstance(key, str) or not key:
            raise _fail(path or "filter", "metadata keys are non-empty strings.")
        if key in LOGICAL_OPERATORS:
            if not isinstance(spec, list | tuple) or not spec:
                raise _fail(here, f"{key} takes a non-empty array of filter objects; got {_describe(spec)}.")
            children = tuple(
                _compile_object(child, f"{here}[{i}]", non_filterable, depth + 1) for i, child in enumerate(spec)
            )
            parts.append(children[0] if len(children) == 1 else Node(key, children))
        elif key.startswith("$"):
            if key in FIELD_OPERATORS:
                raise _fail(here, f'{key} needs a field: write {{"<key>": {{{key!r}: ...}}}}.')
            raise _fail(here, f"unknown operator {key!r}.", "At this level use field names, $and or $or.")
        else:
            parts.append(_compile_field(key, spec, here, non_filterable))
    return parts[0] if len(parts) == 1 else Node("$and", tuple(parts))


def _keys(node: Node | Leaf | None) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, Leaf):
        return {node.key}
    return set().union(*(_keys(c) for c in node.children))


def validate_filter(filter: Mapping[str, Any] | None, non_filterable_keys: Collection[str] = ()) -> CompiledFilter:
    """Check a filter against the S3 Vectors language; raise `InvalidInput` naming the offending part."""
    if filter is None:
        return MATCH_ALL
    if not isinstance(filter, dict):
        raise InvalidInput(
            f"A filter must be a JSON object; got {_describe(filter)}.", 'Example: {"modality": "IMAGE"}.'
        )
    if not filter:
        return MATCH_ALL
    root = _compile_object(filter, "", frozenset(non_filterable_keys), 0)
    return CompiledFilter(root, frozenset(_keys(root)), dict(filter))


# ---- reference evaluator --------------------------------------------------------------------------------

_MISSING = object()


def _same(stored: Any, operand: Any) -> bool:
    if isinstance(stored, bool) or isinstance(operand, bool):
        return isinstance(stored, bool) and isinstance(operand, bool) and stored == operand
    if isinstance(stored, str) or isinstance(operand, str):
        return isinstance(stored, str) and isinstance(operand, str) and stored == operand
    return float(stored) == float(operand)


def _elements(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _leaf_matches(metadata: Mapping[str, Any], leaf: Leaf) -> bool:
    value = metadata.get(leaf.key, _MISSING)
    if leaf.op == "$exists":
        return (value is not _MISSING) == leaf.value
    elems = [] if value is _MISSING else _elements(value)
    if leaf.op == "$eq":
        return any(_same(e, leaf.value) for e in elems)
    if leaf.op == "$ne":
        return not any(_same(e, leaf.value) for e in elems)
    if leaf.op == "$in":
        return any(_same(e, v) for e in elems for v in leaf.value)
    if leaf.op == "$nin":
        return not any(_same(e, v) for e in elems for v in leaf.value)
    if leaf.op == "$startsWith":
        return any(isinstance(e, str) and e.startswith(leaf.value) for e in elems)
    compare = _COMPARE[leaf.op]
    return any(_is_number(e) and compare(float(e), leaf.value) for e in elems)


def _node_matches(metadata: Mapping[str, Any], node: Node | Leaf) -> bool:
    if isinstance(node, Leaf):
        return _leaf_matches(metadata, node)
    if node.op == "$and":
        return all(_node_matches(metadata, c) for c in node.children)
    return any(_node_matches(metadata, c) for c in node.children)


def matches(metadata: Mapping[str, Any] | None, compiled: CompiledFilter) -> bool:
    """Reference semantics: does one vector's metadata satisfy the filter?"""
    if compiled.root is None:
        return True
    return _node_matches(metadata or {}, compiled.root)
