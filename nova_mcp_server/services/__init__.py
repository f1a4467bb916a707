"""Use cases over the embedder, the store and ingestion: small classes with one reason to change each.

`app.py` wires them from settings; the MCP surface and the CLI call only their public methods.
"""
