"""Helper thread pools of the local store that survive `os.fork`.

A forked child has none of its parent's threads, so a pool object inherited from the parent would queue
work that nothing ever runs (the child would wait forever). Each pool is made on first use and forgotten in
a forked child, which then makes its own.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


class ForkSafePool:
    def __init__(self, workers: int, prefix: str) -> None:
        self._workers = max(1, workers)
        self._prefix = prefix
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool = None
        self._lock = threading.Lock()  # a lock held by a parent thread at the fork stays held in the child

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._prefix)
            return self._pool
