"""The local store's keyword index: SQLite FTS5 rows written in the same transaction as the vectors.

A record's words are the values of `fields` in its metadata (by default the full text, else the snippet),
kept under its key, so a crash leaves vectors and keywords equally committed or equally absent. An index
created before the keyword table gets it built from its live rows on the first keyword query.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nova_mcp_server.stores.keyword import KeywordTable

TABLE = KeywordTable("keyword")
DEFAULT_FIELDS = ("text", "snippet")
OVERFETCH = 4  # keyword candidates read per wanted hit, so a metadata filter still leaves enough


def words_of(metadata: Mapping[str, Any] | None, fields: Sequence[str]) -> str:
    for field in fields:
        value = (metadata or {}).get(field)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def exists(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE.fts,)).fetchone()
    return row is not None


def write(
    db: sqlite3.Connection, records: Iterable[tuple[str, Mapping[str, Any] | None]], fields: Sequence[str]
) -> None:
    """Inside the caller's write transaction: each record's words replace its old ones."""
    TABLE.create(db)
    TABLE.put(db, [(key, words_of(meta, fields)) for key, meta in records])


def remove(db: sqlite3.Connection, keys: Iterable[str]) -> None:
    if exists(db):
        TABLE.delete(db, keys)


def backfill(db: sqlite3.Connection, fields: Sequence[str]) -> None:
    """Inside a write transaction: the keyword rows of every live record of an index older than the table."""
    TABLE.create(db)
    TABLE.clear(db)
    rows = db.execute("SELECT key, meta FROM vectors WHERE dead = 0")
    TABLE.put(db, ((key, words_of(json.loads(meta) if meta else {}, fields)) for key, meta in rows))


def candidates(db: sqlite3.Connection, text: str, top_k: int) -> list[tuple[str, float]]:
    return TABLE.search(db, text, top_k * OVERFETCH) if exists(db) else []
