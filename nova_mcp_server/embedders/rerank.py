"""Rerank search candidates with Bedrock's Rerank API (`bedrock-agent-runtime` `Rerank`).

A cross-attention reranker reads the query and each candidate's text together, so it orders text-bearing
hits better than cosine alone; it is opt-in per call (`rerank=true`) because each call is billed.
Models: `amazon.rerank-v1:0` (default) or `cohere.rerank-v3-5:0`, in a region that offers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from nova_mcp_server.errors import InvalidInput, NovaError

SERVICE = "bedrock-agent-runtime"
MAX_DOCUMENTS = 100  # candidates per call; search asks for at most 100
MAX_QUERY_CHARS = 8192  # longer queries are cut to this for the reranker (the vector search used all)


class BedrockReranker:
    def __init__(self, client: Any, model_id: str, region: str | None) -> None:
        self._client = client  # a bedrock-agent-runtime client (or a zero-argument factory of one)
        self.model_id = model_id
        self.region = region

    @property
    def model_arn(self) -> str:
        if self.model_id.startswith("arn:"):
            return self.model_id
        if not self.region:
            raise InvalidInput("Rerank needs a region.", "Set NOVA_MCP_REGION (or NOVA_MCP_RERANK_REGION).")
        return f"arn:aws:bedrock:{self.region}::foundation-model/{self.model_id}"

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """The relevance score of each text to `query`, in the order given."""
        if not texts:
            return []
        if len(texts) > MAX_DOCUMENTS:
            raise InvalidInput(f"Rerank takes at most {MAX_DOCUMENTS} candidates; got {len(texts)}.")
        request = {
            "queries": [{"type": "TEXT", "textQuery": {"text": query[:MAX_QUERY_CHARS]}}],
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}}
                for text in texts
            ],
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "numberOfResults": len(texts),
                    "modelConfiguration": {"modelArn": self.model_arn},
                },
            },
        }
        response = await anyio.to_thread.run_sync(lambda: self._call(request))
        out = [0.0] * len(texts)
        for result in response.get("results", []):
            out[int(result["index"])] = float(result["relevanceScore"])
        return out

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        from nova_mcp_server.aws_errors import translate

        client = self._client() if callable(self._client) and not hasattr(self._client, "rerank") else self._client
        try:
            return client.rerank(**request)
        except (BotoCoreError, ClientError) as exc:
            error = translate(exc, service=SERVICE, operation="Rerank", resource=self.model_id, region=self.region)
            if isinstance(exc, ClientError) and "AccessDenied" in str(exc):
                raise type(error)(
                    error.message, f"Grant bedrock:Rerank and bedrock:InvokeModel on {self.model_arn}."
                ) from exc
            raise error from exc
        except NovaError:
            raise
