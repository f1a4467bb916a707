"""Snippets centred on the best matching sentence: one line, bounded, with a range back into the segment."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova_mcp_server.snippets import ELLIPSIS, best_snippet, query_terms, sentence_spans

MAN = (
    "NAME\n       tar - an archiving utility\n\n"
    "DESCRIPTION\n       GNU tar saves many files together into a single tape or disk archive, and can restore "
    "individual files from the archive.  The first option to tar is a mode indicator.\n\n"
    "       Compression is handled by external programs. Use -z to filter the archive through gzip, and "
    "-j to filter it through bzip2.\n\n"
    "       Sparse files are stored efficiently when --sparse is given."
)


def test_sentences_split_at_ends_blank_lines_and_list_items() -> None:
    text = "First one. Second one!  Third?\n\nA paragraph\nwrapped over lines.\n- item one\n- item two"
    parts = [text[s:e] for s, e in sentence_spans(text)]
    assert parts == [
        "First one.",
        "Second one!",
        "Third?",
        "A paragraph\nwrapped over lines.",
        "- item one",
        "- item two",
    ]
    assert sentence_spans("   \n ") == []


def test_the_snippet_is_the_matching_sentence_not_the_chunk_start() -> None:
    snippet = best_snippet(MAN, "how do I compress an archive with bzip2", max_chars=200)
    assert "bzip2" in snippet.text and "\n" not in snippet.text and len(snippet.text) <= 200
    assert MAN[snippet.sentence_start : snippet.sentence_end].startswith("Use -z to filter")
    assert snippet.start <= snippet.sentence_start and snippet.sentence_end <= snippet.end
    assert " ".join(MAN[snippet.start : snippet.end].split()) in snippet.text
    assert snippet.text.startswith(ELLIPSIS) and snippet.score > 0


def test_rare_terms_outweigh_common_ones_and_phrases_count() -> None:
    text = "The archive is big. The archive holds a sparse file. Archive files are archives."
    assert "sparse" in best_snippet(text, "sparse archive", max_chars=40).text
    text = "tape disk and archive. The disk archive format. An archive on the tape."
    assert best_snippet(text, "disk archive", max_chars=30).text.strip(ELLIPSIS).startswith("The disk archive")


def test_word_forms_match_by_prefix_and_stop_words_are_ignored() -> None:
    assert query_terms("What is the indexing of the files?") == ["indexing", "files"]
    assert query_terms("the a") == ["the", "a"]  # nothing but stop words: keep them
    text = "Unrelated first sentence here. Indexes are rebuilt nightly. Another line."
    assert "Indexes are rebuilt" in best_snippet(text, "indexing", max_chars=40).text


def test_a_long_sentence_is_cut_around_its_matches_at_word_boundaries() -> None:
    words = [f"w{i}" for i in range(300)]
    words[200] = "needle"
    text = " ".join(words) + "."
    snippet = best_snippet(text, "needle", max_chars=80)
    assert len(snippet.text) <= 80 and "needle" in snippet.text
    assert snippet.text.startswith(ELLIPSIS) and snippet.text.endswith(ELLIPSIS)
    inner = snippet.text.strip(ELLIPSIS)
    assert inner.split()[0] in words and inner.split()[-1] in words  # no half words
    assert text[snippet.start : snippet.end] == inner


def test_no_match_gives_the_start_and_short_text_is_whole() -> None:
    snippet = best_snippet(MAN, "kubernetes", max_chars=60)
    assert snippet.score == 0 and snippet.start == 0 and snippet.text.startswith("NAME tar")
    assert best_snippet("Just this.", "this").text == "Just this."
    assert best_snippet("", "x").text == ""


def test_semantic_scores_can_pick_a_paraphrase() -> None:
    text = "Cats sleep a lot. The feline rests all day. Dogs bark."
    spans = sentence_spans(text)
    lexical = best_snippet(text, "cat napping", max_chars=30)
    assert lexical.text.startswith("Cats sleep") and lexical.score > 0  # "cat" matches "Cats"
    semantic = best_snippet(text, "cat napping", max_chars=30, semantic_scores=[0.2, 0.9, 0.0])
    assert text[semantic.sentence_start : semantic.sentence_end] == "The feline rests all day."
    with pytest.raises(ValueError, match="3 sentences"):
        best_snippet(text, "x", semantic_scores=[0.1] * (len(spans) - 1))


@pytest.mark.anyio
async def test_semantic_snippet_scores_sentences_with_the_embedder(tmp_path: Path) -> None:
    """On the tiny CLIP model: 'crimson' is not in the text, but its vector is red's; the red sentence wins."""
    from fixtures.tiny_clip import build_tiny_clip

    from nova_mcp_server.embedders.local import LocalEmbedder
    from nova_mcp_server.snippets import semantic_snippet

    embedder = LocalEmbedder(model_path=build_tiny_clip(tmp_path / "clip"))
    text = "The sky is blue today. A red car stands near the house. Green grass grows."
    red = (await embedder.embed([_text_request("red")]))[0][0].embedding
    snippet = await semantic_snippet(embedder, text, "crimson", red, max_chars=40)
    assert text[snippet.sentence_start : snippet.sentence_end] == "A red car stands near the house."
    assert best_snippet(text, "crimson", max_chars=40).score == 0  # lexically nothing matched
    one = await semantic_snippet(embedder, "Only one sentence.", "x", red)
    assert one.text == "Only one sentence."


def _text_request(value: str):  # type: ignore[no-untyped-def]
    from nova_mcp_server.schema import EmbeddingPurpose, SingleEmbeddingParams, SingleEmbeddingRequest, TextInput

    return SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_RETRIEVAL, text=TextInput(value=value)
        )
    )
