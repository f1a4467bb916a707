"""Durable writes and process liveness on Linux, macOS and Windows: the one place that knows what each OS has.

Every durable write in the package goes through here, because the obvious calls are not portable:

- `os.fdatasync` does not exist on macOS or Windows, and on macOS `fsync` only hands the data to the drive,
  whose cache may still lose it on power failure: `fcntl(F_FULLFSYNC)` is what really flushes there
  (SQLite's `PRAGMA fullfsync` is the same switch for its own files, see `sqlite_durability`).
- `os.pwrite` does not exist on Windows: a seek + write on a descriptor that only one writer uses is the
  same thing there.
- Directory entries (a rename, a new file) are made durable by fsyncing the directory on POSIX; Windows
  cannot open a directory as a file, and NTFS journals the metadata itself, so it is skipped there.
- `os.kill(pid, 0)` probes a process on POSIX, but on Windows `os.kill` with any signal terminates the
  target (or sends Ctrl+C for 0/1): liveness there asks the OS for a handle to the process instead.

The functions look the calls up at call time (`getattr(os, ...)`), so a test can delete them from `os` to
run the macOS and Windows paths on Linux (`.ci/run` does, through a `sitecustomize`).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

IS_WINDOWS = sys.platform == "win32"
IS_MACOS = sys.platform == "darwin"


def _full_fsync(fd: int) -> bool:
    """macOS: flush the drive's cache too. False where F_FULLFSYNC is unavailable or refused (some file
    systems, e.g. network mounts, reject it) so the caller falls back to fsync."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    flag = getattr(fcntl, "F_FULLFSYNC", None)
    if flag is None:
        return False
    try:
        fcntl.fcntl(fd, flag)
    except OSError:
        return False
    return True


def sync_file(fd: int, *, data_only: bool = True) -> None:
    """Make what was written through `fd` durable. `data_only` allows `fdatasync` (skips metadata such as
    mtime that a reader never needs) where the OS has it."""
    if IS_MACOS and _full_fsync(fd):
        return
    datasync = getattr(os, "fdatasync", None) if data_only else None
    if datasync is not None:
        datasync(fd)
    else:
        os.fsync(fd)


def sync_dir(directory: Path | str) -> None:
    """Make a directory's entries (new, renamed, removed files) durable; a no-op where that is not a thing."""
    if IS_WINDOWS:
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # platforms that cannot open a directory: nothing to do
        return
    try:
        if not (IS_MACOS and _full_fsync(fd)):
            os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename itself already happened
    finally:
        os.close(fd)


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (pwrite where it exists, seek + write elsewhere). The descriptor must
    not be shared with another writer: the seek fallback moves its position."""
    view = memoryview(data).cast("B")
    pwrite = getattr(os, "pwrite", None)
    written = 0
    if pwrite is not None:
        while written < len(view):
            written += pwrite(fd, view[written:], offset + written)
        return
    os.lseek(fd, offset, os.SEEK_SET)
    while written < len(view):
        written += os.write(fd, view[written:])


def write_file(path: Path, data: bytes) -> None:
    """Write a whole new file durably (contents synced; the caller syncs the directory after renaming)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        write_at(fd, data, 0)
        sync_file(fd, data_only=False)
    finally:
        os.close(fd)


def sqlite_durability(db: sqlite3.Connection, synchronous: str = "FULL") -> None:
    """The PRAGMAs that make a SQLite commit durable here: `synchronous`, plus `fullfsync` on macOS (SQLite
    otherwise uses a plain fsync there, which the drive cache can lose)."""
    db.execute(f"PRAGMA synchronous={synchronous}")
    if IS_MACOS:
        db.execute("PRAGMA fullfsync=ON")
        db.execute("PRAGMA checkpoint_fullfsync=ON")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user). Never signals it."""
    if pid <= 0:
        return False
    if IS_WINDOWS or not hasattr(os, "kill"):
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _windows_pid_alive(pid: int) -> bool:
    """OpenProcess + GetExitCodeProcess: alive while the exit code is STILL_ACTIVE (259)."""
    import ctypes

    windll = getattr(ctypes, "windll", None)
    if windll is None:  # not Windows (the simulated run): fall back to /proc or assume alive
        return Path(f"/proc/{pid}").exists() if Path("/proc").is_dir() else True
    process_query_limited_information, still_active, access_denied = 0x1000, 259, 5
    kernel32 = windll.kernel32
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return kernel32.GetLastError() == access_denied  # exists but not ours to query
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
