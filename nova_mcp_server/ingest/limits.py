"""How much one call may read: every bound has a setting, a sane default, and a clear answer when reached.

A hostile or simply huge input (a folder nested 1,000 deep, a 2,000-page blank PDF, a 50 MB log) must get an
answer, not hang the call or fill the memory; each limit names the setting that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nova_mcp_server.errors import LimitExceeded


@dataclass(frozen=True)
class Limits:
    max_files_per_call: int = 2000
    max_folder_depth: int = 32
    max_file_bytes: int = 2 << 30
    max_text_bytes: int = 32 << 20
    max_pdf_pages: int = 500
    max_media_seconds: float = 4 * 3600

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits named in `Settings` (fields of the same names)."""
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__ if hasattr(settings, name)})


def setting_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return "NOVA_MCP_" + field.upper()


def check_size(size: int, display: str, limits: Limits, *, text: bool = False) -> None:
    """LimitExceeded naming the setting when a file of ``size`` bytes is over its limit (text has its own)."""
    field = "max_text_bytes" if text else "max_file_bytes"
    limit = getattr(limits, field)
    if size > limit:
        raise LimitExceeded(
            f"{display} is {size:,} bytes; {'text files' if text else 'files'} of at most {limit:,} bytes are read.",
            f"Split it, or raise {setting_name(field)}.",
        )
