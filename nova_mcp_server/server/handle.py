"""The App as the MCP surface holds it: built once, in a worker thread, while the client is being answered.

Why: importing and wiring the services (numpy, the stores, the ingestion pipeline, the embedders' modules)
costs a few hundred milliseconds, and a client that spawns the server waits for all of start-up before its
`initialize` is answered. The tools' names, schemas and annotations need only the settings, so the server
registers them from the settings and builds the App behind this handle, in a worker thread: over HTTP as
soon as the server runs, over stdio once the handshake is done (`kick`), and the first call that needs a
service awaits it (usually long done). A configuration
the App refuses (the aws backend without a vector bucket, an SDK too old) is then the text every tool
answers, and the log's first line, instead of a process that exits before the client can say why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio.to_thread

from nova_mcp_server.errors import NovaError
from nova_mcp_server.settings import Settings

if TYPE_CHECKING:
    from nova_mcp_server.app import App

log = logging.getLogger(__name__)


def _build_app(settings: Settings) -> App:
    from nova_mcp_server.app import build_app

    return build_app(settings)


def build_failure(exc: Exception, settings: Settings) -> NovaError:
    """What an agent is told when building the App broke unexpectedly: the file problem, or where to look."""
    if isinstance(exc, OSError):
        what = exc.strerror or "cannot be used"
        where = f": {exc.filename}" if exc.filename else ""
        return NovaError(
            f"The server could not start its services: {what}{where}.",
            f"Check that NOVA_MCP_DATA_DIR ({settings.data_dir}) is a folder this user can write, and the other "
            "configured paths; then call again (or restart the server).",
        )
    return NovaError(
        "The server could not start its services because of an internal error (the details are in the server's log).",
        "Run the doctor tool to check the set-up; if it keeps failing, report it with the server log.",
    )


class AppHandle:
    def __init__(
        self, settings: Settings, *, app: App | None = None, build: Callable[[Settings], App] = _build_app
    ) -> None:
        self.settings = settings
        self._app = app
        self._build = build
        self._refused: NovaError | None = None
        self._lock = threading.Lock()
        self._when_ready: list[Callable[[App], None]] = []
        self._kick: Callable[[], object] | None = None
        self.build_after_handshake = False  # stdio: wait for the first message after `initialize` (`kick`)

    @classmethod
    def of(cls, app: App) -> AppHandle:
        """A handle on an App already built (tests, benchmarks, the people's commands)."""
        return cls(app.settings, app=app)

    @property
    def is_nova(self) -> bool:
        """Whether calls reach AWS (the tools' open-world hint), known from the settings alone."""
        if self._app is not None:
            return self._app.policy.is_nova
        return self.settings.resolved_backend == "aws"

    def when_ready(self, fn: Callable[[App], None]) -> None:
        """Run ``fn(app)`` once the App exists (at once if it does)."""
        with self._lock:
            if self._app is None:
                self._when_ready.append(fn)
                return
        fn(self._app)

    def build(self) -> App:
        """The App, built on the first call (blocking; any thread); a refused configuration raises every time."""
        with self._lock:
            if self._app is None:
                if self._refused is not None:
                    raise self._refused
                try:
                    app = self._build(self.settings)
                except NovaError as exc:
                    self._refused = exc
                    log.error("the server cannot work with this configuration: %s", exc.text)
                    raise
                except Exception as exc:  # not refused for good: the next call builds again (a folder fixed)
                    log.exception("the server could not build its services")
                    raise build_failure(exc, self.settings) from None
                for fn in self._when_ready:
                    fn(app)
                self._when_ready.clear()
                self._app = app
            return self._app

    def on_kick(self, start: Callable[[], object] | None) -> None:
        """The server's way to start the background build (set by its lifespan; None when it stops)."""
        self._kick = start
        if start is not None and not self.build_after_handshake:
            self.kick()

    def kick(self) -> None:
        """Start building in the background now (once; a no-op when the server is not running). Over stdio
        the transport calls this when the handshake is done, so the import work never competes with the
        `initialize` answer for the interpreter."""
        start, self._kick = self._kick, None
        if start is not None and self._app is None:
            start()

    async def get(self) -> App:
        """The App; awaits its build (in a worker thread) when it is not there yet."""
        if self._app is not None:
            return self._app
        return await anyio.to_thread.run_sync(self.build)
