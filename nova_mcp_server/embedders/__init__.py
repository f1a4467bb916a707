"""Embedders: Nova on Bedrock (`nova`) and the embedded local default (`local`)."""
