"""nova-multimodal-mcp: multimodal retrieval for AI agents over MCP."""

__version__ = "0.1.0"
