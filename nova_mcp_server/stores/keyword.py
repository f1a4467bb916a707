"""A keyword index (SQLite FTS5, bm25) beside the vectors, and reciprocal rank fusion of ranked lists.

Why: exact words (an option name, an error code, a rare term) are what a small embedding model misses and
what keyword search finds; fusing the two rankings beats either alone (see benchmarks/retrieval.py).

Crash safety is the caller's transaction: every function takes a caller-given ``sqlite3.Connection`` and
never commits, begins or rolls back, so the local store writes the keyword rows in the same transaction as
the vectors they describe and both commit (or neither does). Rows are addressed by the record key, through a
small key table, so the store's own row numbers (which compaction renumbers) do not matter here.

S3 Vectors has no keyword index; this is for the local store only.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

RRF_K = 60  # the constant from Cormack et al. (2009); rankings past a few dozen places barely count
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TERM = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 64
_IN_CHUNK = 500  # keys per `IN (...)` look-up (SQLite allows at least 999 parameters)


@dataclass(frozen=True)
class KeywordTable:
    """Names of the two tables (``<prefix>_keys`` and ``<prefix>_fts``) in one database."""

    prefix: str = "keyword"

    def __post_init__(self) -> None:
        if not _NAME.match(self.prefix):
            raise ValueError(f"table prefix must be an SQL identifier, got {self.prefix!r}")

    @property
    def keys(self) -> str:
        return f"{self.prefix}_keys"

    @property
    def fts(self) -> str:
        return f"{self.prefix}_fts"

    def ddl(self) -> list[str]:
        """Statements that create the tables (idempotent). Porter stemming: 'indexes' finds 'indexing'."""
        return [
            f"CREATE TABLE IF NOT EXISTS {self.keys} (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.fts} USING fts5(text, "
            "tokenize = 'porter unicode61 remove_diacritics 2')",
        ]

    def create(self, conn: sqlite3.Connection) -> None:
        for statement in self.ddl():
            conn.execute(statement)

    def put(self, conn: sqlite3.Connection, rows: Iterable[tuple[str, str]]) -> None:
        """Insert or replace the text of each (key, text); an empty text removes the key's row. A key given
        twice keeps its last text. Batched (a few statements per call, not three per row): the local store
        writes these rows inside every put_vectors transaction."""
        latest = dict(rows)
        keys = list(latest)
        found: dict[str, int] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(conn.execute(f"SELECT key, id FROM {self.keys} WHERE key IN ({marks})", chunk).fetchall())
        if found:
            conn.executemany(f"DELETE FROM {self.fts} WHERE rowid = ?", [(i,) for i in found.values()])
            gone = [(found[k],) for k in found if not latest[k]]
            conn.executemany(f"DELETE FROM {self.keys} WHERE id = ?", gone)
        new = [k for k in keys if latest[k] and k not in found]
        if new:
            (top,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self.keys}").fetchone()
            ids = dict(zip(new, range(top + 1, top + 1 + len(new)), strict=True))
            conn.executemany(f"INSERT INTO {self.keys} (id, key) VALUES (?, ?)", [(i, k) for k, i in ids.items()])
            found.update(ids)
        conn.executemany(
            f"INSERT INTO {self.fts} (rowid, text) VALUES (?, ?)", [(found[k], t) for k, t in latest.items() if t]
        )

    def delete(self, conn: sqlite3.Connection, keys: Iterable[str]) -> None:
        """Remove the rows of ``keys``; unknown keys are ignored (deletes are idempotent, as in S3 Vectors)."""
        for key in keys:
            found = conn.execute(f"SELECT id FROM {self.keys} WHERE key = ?", (key,)).fetchone()
            if found is not None:
                conn.execute(f"DELETE FROM {self.fts} WHERE rowid = ?", (found[0],))
                conn.execute(f"DELETE FROM {self.keys} WHERE id = ?", (found[0],))

    def clear(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"DELETE FROM {self.fts}")
        conn.execute(f"DELETE FROM {self.keys}")

    def count(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute(f"SELECT count(*) FROM {self.keys}").fetchone()[0])

    def search(self, conn: sqlite3.Connection, query: str, top_k: int) -> list[tuple[str, float]]:
        """The ``top_k`` best (key, score) for free text ``query`` by bm25, best first; score = -bm25 (> 0).

        Any text is safe: it is reduced to its words, each quoted, joined by OR (a row matching more and
        rarer words ranks higher). A query with no words finds nothing. To filter, over-fetch and keep the
        keys that pass the metadata filter.
        """
        match = fts_query(query)
        if match is None or top_k <= 0:
            return []
        rows = conn.execute(
            f"SELECT k.key, bm25({self.fts}) AS rank FROM {self.fts} JOIN {self.keys} AS k "
            f"ON k.id = {self.fts}.rowid WHERE {self.fts} MATCH ? ORDER BY rank LIMIT ?",
            (match, top_k),
        ).fetchall()
        return [(key, -float(rank)) for key, rank in rows]


def fts_query(text: str) -> str | None:
    """Free text -> an FTS5 MATCH expression of quoted words joined by OR (None when there are no words)."""
    terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(text)))[:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in terms)  # \w+ holds no quote, so quoting is exact


def rrf_fuse(
    ranked_lists: Sequence[Sequence[str]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1; best first.

    A key repeated within one list counts at its best rank. Ties keep the order of first appearance.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    if weights is not None and len(weights) != len(ranked_lists):
        raise ValueError("weights must have one value per ranked list")
    scores: dict[str, float] = {}
    for i, ranked in enumerate(ranked_lists):
        weight = 1.0 if weights is None else float(weights[i])
        seen: set[str] = set()
        for rank, key in enumerate(ranked, 1):
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    order = {key: n for n, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))
