"""Errors an agent can act on.

Every failure the server reports to a model is a `NovaError`: its text says what was wrong and what to
do instead. The MCP layer turns these into `ToolError`s; anything else is a bug and stays in the log.
"""

from __future__ import annotations


class NovaError(Exception):
    """Base for errors whose message is meant for the agent."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InvalidInput(NovaError):
    """The caller's arguments break a rule; retrying the same call will fail again."""


class NotFound(NovaError):
    """A named index, vector, job or file does not exist."""


class IndexNotFound(NotFound):
    def __init__(self, index: str) -> None:
        super().__init__(
            f"Index '{index}' does not exist.",
            "Call list_indexes to see the existing ones, or index_content to create it.",
        )
        self.index = index


class IndexDamaged(NovaError):
    """An index whose files cannot be read (overwritten, truncated, half-copied): the others still work."""

    def __init__(self, index: str, why: str) -> None:
        super().__init__(
            f"Index '{index}' is damaged: its files cannot be read ({why}).",
            "Delete it with delete_index and index its sources again; the other indexes are not affected.",
        )
        self.index = index


class DimensionMismatch(InvalidInput):
    """A vector's dimension or embedder differs from the one the index was built with."""


class LimitExceeded(InvalidInput):
    """A documented limit (batch size, top_k, metadata size, payload size) was exceeded."""


class AccessDenied(NovaError):
    """A path outside the allowed roots, a bucket outside the allow-list, or an AWS permission error."""


class BackendUnavailable(NovaError):
    """A transient backend failure that survived our retries (throttling, timeouts, 5xx)."""


class ModelUnavailable(NovaError):
    """An embedding model cannot be loaded or reached (no model access, offline without weights)."""


def json_kind(value: object) -> str:
    """What the agent sent, in JSON's words (never a Python type name: the agent wrote JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value JSON cannot hold"
