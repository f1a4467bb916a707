"""Blocking work off the event loop: store calls, SQLite, segmentation.

One helper so every service runs blocking calls the same way (a worker thread, cancellation waits for the
call to return) instead of some of them stalling every MCP session on the loop thread.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
