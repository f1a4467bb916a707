"""The FTS5 keyword index inside a caller's SQLite transaction, and reciprocal rank fusion."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nova_mcp_server.stores.keyword import KeywordTable, fts_query, rrf_fuse

DOCS = {
    "tar#0": "tar saves many files together into a single tape or disk archive",
    "gzip#0": "gzip reduces the size of the named files using Lempel-Ziv coding",
    "ls#0": "ls lists directory contents, sorted alphabetically",
    "find#0": "find searches for files in a directory hierarchy",
}


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE vectors (row INTEGER PRIMARY KEY, key TEXT NOT NULL)")  # the store's own table
    KeywordTable().create(conn)
    KeywordTable().create(conn)  # idempotent
    conn.execute("BEGIN")
    KeywordTable().put(conn, DOCS.items())
    conn.execute("COMMIT")
    return conn


def keys(hits: list[tuple[str, float]]) -> list[str]:
    return [key for key, _ in hits]


def test_bm25_ranks_rare_and_more_matching_words_first(db: sqlite3.Connection) -> None:
    table = KeywordTable()
    assert sorted(keys(table.search(db, "directory", 5))) == ["find#0", "ls#0"]
    assert keys(table.search(db, "files in a directory hierarchy", 2))[0] == "find#0"
    assert keys(table.search(db, "Lempel Ziv", 5)) == ["gzip#0"]
    hits = table.search(db, "archive tape", 5)
    assert keys(hits)[0] == "tar#0" and all(score > 0 for _, score in hits)
    assert keys(table.search(db, "archives", 5)) == ["tar#0"]  # porter stemming
    assert table.search(db, "kubernetes", 5) == [] and table.search(db, "  ...  ", 5) == []


@pytest.mark.parametrize("query", ['"unbalanced', "NEAR(files", "files AND OR NOT", "-files*", "col:files", "'; DROP"])
def test_any_query_text_is_safe(db: sqlite3.Connection, query: str) -> None:
    KeywordTable().search(db, query, 5)  # never an FTS5 syntax error
    assert fts_query(query) is None or '"' in fts_query(query)  # type: ignore[operator]


def test_put_replaces_and_delete_removes(db: sqlite3.Connection) -> None:
    table = KeywordTable()
    db.execute("BEGIN")
    table.put(db, [("ls#0", "ls shows hidden dotfiles with -a")])
    table.delete(db, ["gzip#0", "never-there"])
    table.put(db, [("find#0", "")])  # empty text: no keyword row
    db.execute("COMMIT")
    assert keys(table.search(db, "alphabetically", 5)) == []
    assert keys(table.search(db, "dotfiles", 5)) == ["ls#0"]
    assert table.search(db, "Lempel", 5) == [] and table.search(db, "hierarchy", 5) == []
    assert table.count(db) == 2
    db.execute("BEGIN")
    table.clear(db)
    db.execute("COMMIT")
    assert table.count(db) == 0 and table.search(db, "tape", 5) == []


def test_keyword_rows_commit_and_roll_back_with_the_callers_transaction(db: sqlite3.Connection, tmp_path: Path) -> None:
    table = KeywordTable()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO vectors (key) VALUES ('man#0')")
    table.put(db, [("man#0", "man formats and displays the manual pages")])
    assert keys(table.search(db, "manual", 5)) == ["man#0"]  # visible inside the transaction
    db.execute("ROLLBACK")
    assert table.search(db, "manual", 5) == []
    assert db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 0

    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO vectors (key) VALUES ('man#0')")
    table.put(db, [("man#0", "man formats and displays the manual pages")])
    other = sqlite3.connect(tmp_path / "index.sqlite")  # a reader sees nothing until the commit
    assert KeywordTable().search(other, "manual", 5) == []
    db.execute("COMMIT")
    assert keys(KeywordTable().search(other, "manual", 5)) == ["man#0"]
    other.close()


def test_prefixes_keep_indexes_apart_and_must_be_identifiers(db: sqlite3.Connection) -> None:
    other = KeywordTable("photos")
    other.create(db)
    other.put(db, [("p#0", "a tape recorder")])
    assert keys(other.search(db, "tape", 5)) == ["p#0"] and keys(KeywordTable().search(db, "tape", 5)) == ["tar#0"]
    with pytest.raises(ValueError, match="SQL identifier"):
        KeywordTable("x; DROP TABLE vectors")


def test_rrf_scores_by_reciprocal_rank() -> None:
    fused = rrf_fuse([["a", "b", "c"], ["c", "a", "d"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62) and scores["d"] == pytest.approx(1 / 63)
    assert [key for key, _ in fused] == ["a", "c", "b", "d"]
    # weights: a list with weight 0 does not count
    assert rrf_fuse([["x", "y"], ["y"]])[0][0] == "y" and rrf_fuse([["x", "y"], ["y"]], weights=[1.0, 0.0])[0][0] == "x"
    assert rrf_fuse([["a", "a", "b"]], k=0) == [("a", 1.0), ("b", 1 / 3)]  # repeats count once, at the best rank
    assert rrf_fuse([]) == [] and rrf_fuse([[], []]) == []
    assert [k for k, _ in rrf_fuse([["p", "q"], ["q", "p"]])] == ["p", "q"]  # a tie keeps first appearance
    with pytest.raises(ValueError, match="one value per ranked list"):
        rrf_fuse([["a"]], weights=[1.0, 2.0])


def test_a_batched_put_replaces_removes_and_keeps_a_repeated_keys_last_text(db: sqlite3.Connection) -> None:
    table = KeywordTable()
    conn = db
    conn.execute("BEGIN")
    table.put(
        conn,
        [
            ("tar#0", "tar now writes tape archives"),  # replaced
            ("ls#0", ""),  # removed
            ("new#0", "first words"),
            ("new#0", "zebra crossing"),  # the same key twice in one batch: the last text wins
            ("empty#0", ""),  # a new key without words: no row
        ],
    )
    conn.execute("COMMIT")
    assert keys(table.search(conn, "zebra", 5)) == ["new#0"]
    assert table.search(conn, "first", 5) == []
    assert table.search(conn, "alphabetically", 5) == []
    assert keys(table.search(conn, "tape", 5)) == ["tar#0"]
    assert keys(table.search(conn, "single", 5)) == []  # the old text of tar#0 is gone
    assert table.count(conn) == len(DOCS) - 1 + 1  # ls#0 gone, new#0 added, empty#0 never stored
    assert keys(table.search(conn, "directory", 5)) == ["find#0"]
