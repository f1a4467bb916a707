"""Open a file under an allowed root without following links, and only if it is a regular file.

The root check (`realpath` under a root) looks at the path once, when sources are resolved; the open comes
later, once, in the worker that indexes the file (`loading.open_source`). Between the two, any
component could be swapped for a symlink to a secret, or the file for a FIFO that blocks a reader forever.
So the open itself never follows a link: on POSIX it walks from the root with ``openat`` (``dir_fd``) and
``O_NOFOLLOW`` on every component; where that is missing (Windows) it checks each component with ``lstat``
(symlinks and junctions refused), opens, and compares the opened file's identity with the checked one.
The file is opened non-blocking (a FIFO opens at once instead of waiting for a writer) and ``fstat`` must say
"regular file" before a byte is read. Every OS call of this kind goes through `open_regular`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nova_mcp_server.errors import AccessDenied, InvalidInput, NotFound

# Test seam: called with (real path, purpose) just before the open, i.e. after the root check. Races are
# made deterministic by swapping the file here. purpose is "read" (the indexing worker's one open, which hashes
# and segments) or "preview" (a picture for fetch).
BEFORE_OPEN: Callable[[Path, str], None] | None = None

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_REPARSE_POINT = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)
OPENAT = bool(_O_NOFOLLOW and _O_DIRECTORY and os.open in os.supports_dir_fd)


@dataclass(frozen=True)
class FileIdentity:
    """Which file, at which version: a rewrite changes size or mtime, a replacement changes the inode."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words for the agent."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def refuse_special(mode: int, shown: str) -> None:
    """InvalidInput unless ``mode`` is a regular file: FIFOs block readers, devices and sockets are not content."""
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{shown} is {kind_of(mode)}; only regular files are indexed.", "Name a regular file.")


def root_of(path: Path, roots: Sequence[Path]) -> Path | None:
    """The deepest allowed root holding ``path`` (both real paths), or None."""
    holding = [r for r in roots if path == r or path.is_relative_to(r)]
    return max(holding, key=lambda r: len(r.parts)) if holding else None


def open_regular(path: Path, root: Path, shown: str, *, purpose: str = "read", portable: bool = False) -> int:
    """A read-only fd on the regular file ``path`` (real, under ``root``), opened without following any link.

    ``portable`` forces the lstat-and-compare fallback (what Windows runs) so it is tested everywhere.
    Raises NotFound (vanished), AccessDenied (a link appeared) or InvalidInput (not a regular file).
    """
    parts = path.relative_to(root).parts
    if not parts:  # the root is this very file: open it beneath its folder
        root, parts = path.parent, (path.name,)
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise OSError(errno.ELOOP, "a link is in the way", str(path))
        refuse_special(mode, shown)  # a FIFO or device is refused unopened when it can be
        if BEFORE_OPEN is not None:
            BEFORE_OPEN(path, purpose)
        fd = _open_beneath(root, parts) if OPENAT and not portable else _open_checked(root, parts)
    except OSError as exc:
        raise _explain(exc, shown, _link_in(root, parts)) from None
    try:
        refuse_special(os.fstat(fd).st_mode, shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    flags_dir = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def _open_checked(root: Path, parts: tuple[str, ...]) -> int:
    """No ``dir_fd``: lstat every component (no link, no junction), open, and check the fd is what was checked."""
    current = root
    st = os.lstat(current)
    for part in parts:
        current = current / part
        st = os.lstat(current)
        if stat.S_ISLNK(st.st_mode) or getattr(st, "st_file_attributes", 0) & _REPARSE_POINT:
            raise OSError(errno.ELOOP, "a link is in the way", str(current))
    refuse_special(st.st_mode, str(current))  # never open a FIFO or device, even non-blocking
    fd = os.open(current, os.O_RDONLY | _O_BINARY | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise OSError(errno.ELOOP, "the file was replaced while being opened", str(current))
    return fd


def _link_in(root: Path, parts: tuple[str, ...]) -> bool:
    """Whether a component below ``root`` is a link now (what a failed no-follow open ran into)."""
    current = root
    for part in parts:
        current = current / part
        try:
            st = os.lstat(current)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode) or getattr(st, "st_file_attributes", 0) & _REPARSE_POINT:
            return True
    return False


def _explain(exc: OSError, shown: str, link: bool) -> Exception:
    code = exc.errno
    if link or code in (errno.ELOOP, errno.EMLINK):
        return AccessDenied(
            f"{shown} is, or passes through, a symbolic link that appeared after the root check; links are not "
            "followed when a file is opened.",
            "Name the file's real path under an allowed root.",
        )
    if code in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"{shown} does not exist (any more).", "Check the path, or list the folder again.")
    if code == errno.ENXIO:
        return InvalidInput(f"{shown} is a socket or a device; only regular files are indexed.")
    if code in (errno.EACCES, errno.EPERM):
        return AccessDenied(f"{shown}: permission denied by the operating system.")
    return InvalidInput(f"{shown}: cannot open ({exc.strerror or exc}).")
