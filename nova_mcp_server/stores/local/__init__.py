"""The embedded default store (see `store.py`); `LocalVectorStore` is its one public name."""

from nova_mcp_server.stores.local.store import LocalVectorStore

__all__ = ["LocalVectorStore"]
