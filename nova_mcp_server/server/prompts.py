"""Prompts that show an agent how to use the tools for two common tasks."""

from __future__ import annotations

from mcp.server import MCPServer


def register_prompts(mcp: MCPServer) -> None:
    @mcp.prompt(title="Answer from the index with citations")
    def answer_with_citations(question: str, index: str = "") -> str:
        """Answer a question from indexed content, citing sources, pages and time ranges."""
        where = f" in index '{index}'" if index else ""
        return (
            f"Answer this question using only content found with semantic_search{where}: {question}\n"
            "Search with one or two phrasings (top_k 8). Read the hits' snippets; open a nova:// item URI when you "
            "need its metadata. Cite each fact as [source, page N] for documents, [source, mm:ss-mm:ss] for audio "
            "and video, or [source] for text. If nothing relevant is found, say so rather than guessing."
        )

    @mcp.prompt(title="Find a topic in a video")
    def find_in_video(topic: str, source: str = "") -> str:
        """Find where a topic appears in indexed video or audio, as time ranges."""
        scope = f' and filter {{"source": {{"$eq": "{source}"}}}}' if source else ""
        return (
            f"Find where '{topic}' appears in the indexed videos and recordings. Call semantic_search with "
            f"query='{topic}', modality=['video', 'audio'], top_k 10{scope}. List the hits as start-end times "
            "(mm:ss) per source, merge adjacent segments, and say how confident each match looks from its score."
        )
