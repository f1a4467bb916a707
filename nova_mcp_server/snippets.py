"""A one-line snippet of a hit, centred on the sentence that best matches the query.

Why: a chunk's first characters are rarely the part that matched (measured on man pages: the start of the
chunk showed the matching sentence in 32 of 92 found answers). An agent deciding whether to read a hit needs
the matching sentence, on one line, with a little context, and a character range it can ask `fetch` about.

`best_snippet` is pure: text and query in, a `Snippet` out. Sentences are scored lexically (query terms present, weighted by
how rare they are among the segment's sentences, prefixes for plurals and verb forms, a bonus for adjacent
query terms). A caller that has the query's vector may pass semantic scores per sentence too
(`sentence_spans` gives the sentences to embed); they are blended with the lexical ones. `semantic_snippet`
does that with an `Embedder` and the query's vector, in one bounded embed call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nova_mcp_server.embedders.base import Embedder

DEFAULT_MAX_CHARS = 240
ELLIPSIS = "…"
_WORD = re.compile(r"\w+", re.UNICODE)
# a sentence ends at . ! ? (then space), at a blank line, or before a list item on a new line
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "if",
        "then",
        "than",
        "so",
        "not",
        "no",
        "do",
        "does",
        "did",
        "can",
        "will",
        "what",
        "which",
        "who",
        "how",
        "when",
        "where",
        "why",
        "i",
        "you",
        "we",
        "they",
        "he",
        "she",
        "my",
        "your",
        "our",
        "their",
        "me",
        "us",
        "them",
        "there",
        "here",
        "all",
        "any",
        "some",
    ]
)
_PREFIX = 5  # "indexes" matches "indexing": same first five letters


@dataclass(frozen=True)
class Snippet:
    text: str  # one line, at most max_chars (ellipses included)
    start: int  # character range of the shown text within the segment text
    end: int
    sentence_start: int  # the best sentence's range (what the snippet is centred on)
    sentence_end: int
    score: float  # the best sentence's score (0: nothing matched; the snippet is then the segment's start)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed; blank text has none."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in _BOUNDARY.finditer(text):
        _add_span(text, pos, match.start(), spans)
        pos = match.end()
    _add_span(text, pos, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def query_terms(query: str) -> list[str]:
    """Lower-case words of the query minus stop words (all words when every one is a stop word)."""
    words = [w.lower() for w in _WORD.findall(query)]
    kept = [w for w in words if w not in _STOP]
    return list(dict.fromkeys(kept or words))


def _matches(term: str, word: str) -> bool:
    if term == word or word in (term + "s", term + "es") or term in (word + "s", word + "es"):
        return True  # plurals of short words
    return len(term) >= _PREFIX and len(word) >= _PREFIX and term[:_PREFIX] == word[:_PREFIX]


def lexical_scores(text: str, spans: Sequence[tuple[int, int]], terms: Sequence[str]) -> list[float]:
    """Per sentence: sum of idf(term) over the query terms it contains, plus a bonus per adjacent pair."""
    sentence_words = [[w.lower() for w in _WORD.findall(text[s:e])] for s, e in spans]
    n = len(spans)
    present = [[any(_matches(t, w) for w in words) for t in terms] for words in sentence_words]
    df = [sum(row[j] for row in present) for j in range(len(terms))]
    idf = [math.log(1 + (n + 1) / (1 + d)) for d in df]
    scores = []
    for words, row in zip(sentence_words, present, strict=True):
        score = sum(w for w, hit in zip(idf, row, strict=True) if hit)
        for a, b in zip(words, words[1:], strict=False):  # phrase bonus: query terms next to each other
            for j in range(len(terms) - 1):
                if _matches(terms[j], a) and _matches(terms[j + 1], b):
                    score += 0.5 * (idf[j] + idf[j + 1])
        scores.append(score)
    return scores


def best_snippet(
    text: str,
    query: str,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    semantic_scores: Sequence[float] | None = None,
) -> Snippet:
    """The snippet of ``text`` for ``query``: the best sentence, on one line, widened or cut to ``max_chars``.

    ``semantic_scores``: optional cosine similarity of the query to each of `sentence_spans(text)` (same
    order); blended with the lexical scores so an exact term still wins ties and a paraphrase can win alone.
    """
    if max_chars < 20:
        raise ValueError("max_chars must be at least 20")
    spans = sentence_spans(text)
    if not spans:
        return Snippet(text="", start=0, end=0, sentence_start=0, sentence_end=0, score=0.0)
    scores = lexical_scores(text, spans, query_terms(query))
    if semantic_scores is not None:
        if len(semantic_scores) != len(spans):
            raise ValueError(f"semantic_scores has {len(semantic_scores)} values for {len(spans)} sentences")
        top = max(scores) or 1.0
        scores = [s / top + 2.0 * max(0.0, float(c)) for s, c in zip(scores, semantic_scores, strict=True)]
    best = max(range(len(spans)), key=lambda i: (scores[i], -i))
    if scores[best] <= 0:
        best = 0
    s_start, s_end = spans[best]
    start, end = _window(text, s_start, s_end, query_terms(query), max_chars)
    return Snippet(
        text=_one_line(text, start, end, max_chars),
        start=start,
        end=end,
        sentence_start=s_start,
        sentence_end=s_end,
        score=round(float(scores[best]), 4),
    )


def _window(text: str, s_start: int, s_end: int, terms: Sequence[str], max_chars: int) -> tuple[int, int]:
    """A character range of about ``max_chars`` around the sentence (centred on its matches when longer)."""
    budget = max_chars - 2  # room for the two ellipses
    if s_end - s_start <= budget:  # widen evenly into the neighbours, within the text
        spare = budget - (s_end - s_start)
        start = max(0, s_start - spare // 2)
        end = min(len(text), start + budget)
        start = max(0, end - budget)
        return _snap(text, start, end, keep=(s_start, s_end))
    hits = [
        m.start() for m in _WORD.finditer(text, s_start, s_end) if any(_matches(t, m.group().lower()) for t in terms)
    ]
    centre = (hits[0] + hits[-1]) // 2 if hits else s_start + budget // 2
    start = min(max(s_start, centre - budget // 2), s_end - budget)
    pin = min(max(centre, start), start + budget)
    return _snap(text, start, start + budget, keep=(pin, pin))


def _snap(text: str, start: int, end: int, keep: tuple[int, int]) -> tuple[int, int]:
    """Move cut points inwards to word boundaries, never into the range ``keep``."""
    if 0 < start < keep[0] and text[start - 1].isalnum():
        nxt = re.search(r"\W", text[start : keep[0]])
        start = start + nxt.end() if nxt else keep[0]
    if keep[1] < end < len(text) and text[end].isalnum():
        prev = max((m.start() for m in re.finditer(r"\W", text[keep[1] : end])), default=None)
        end = keep[1] + prev if prev is not None else keep[1]
    return start, end


def _one_line(text: str, start: int, end: int, max_chars: int) -> str:
    body = " ".join(text[start:end].split())
    line = (ELLIPSIS if start > 0 else "") + body + (ELLIPSIS if end < len(text.rstrip()) else "")
    return line if len(line) <= max_chars else line[: max_chars - 1] + ELLIPSIS


MAX_SEMANTIC_SENTENCES = 24  # per hit: bounds the embedding calls a snippet may cost


async def semantic_snippet(
    embedder: Embedder,
    text: str,
    query: str,
    query_vector: Sequence[float],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    dimension: int | None = None,
) -> Snippet:
    """`best_snippet` with sentence scores from ``embedder`` (the query's own vector, no re-embedding of it).

    Costs one `embed` call with at most `MAX_SEMANTIC_SENTENCES` short texts; sentences past that score 0
    semantically (they can still win lexically). ``dimension``: what the index was built with, for Nova.
    """
    from nova_mcp_server.schema import EmbeddingPurpose, SingleEmbeddingParams, SingleEmbeddingRequest, TextInput

    spans = sentence_spans(text)
    if len(spans) < 2:
        return best_snippet(text, query, max_chars=max_chars)
    chosen = spans[:MAX_SEMANTIC_SENTENCES]
    extra: dict[str, object] = {} if dimension is None else {"embedding_dimension": dimension}
    requests = [
        SingleEmbeddingRequest(
            single_embedding_params=SingleEmbeddingParams(
                embedding_purpose=EmbeddingPurpose.GENERIC_INDEX,
                text=TextInput(value=" ".join(text[s:e].split())),
                **extra,
            )
        )
        for s, e in chosen
    ]
    results = await embedder.embed(requests)
    q = [float(x) for x in query_vector]
    qn = math.sqrt(sum(x * x for x in q)) or 1.0
    scores = []
    for items in results:
        v = items[0].embedding
        vn = math.sqrt(sum(x * x for x in v)) or 1.0
        scores.append(sum(a * b for a, b in zip(q, v, strict=False)) / (qn * vn))
    scores += [0.0] * (len(spans) - len(chosen))
    return best_snippet(text, query, max_chars=max_chars, semantic_scores=scores)
