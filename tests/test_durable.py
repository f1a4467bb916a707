"""The portable durable-write helper: each OS's path, run here by removing or faking what Linux has."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stores_support import spec

from nova_mcp_server import durable
from nova_mcp_server.stores.base import VectorRecord
from nova_mcp_server.stores.local import LocalVectorStore


def test_store_works_without_fdatasync_and_pwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "fdatasync", raising=False)
    monkeypatch.delattr(os, "pwrite", raising=False)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store = LocalVectorStore(tmp_path, ann_min_rows=500)
    store.create_index(spec("idx", 8))
    data = np.random.default_rng(0).standard_normal((1200, 8)).astype(np.float32)
    for s in range(0, 1200, 400):
        store.put_vectors("idx", [VectorRecord.model_construct(key=f"k{i}", data=data[i]) for i in range(s, s + 400)])
    store.delete_vectors("idx", ["k5"])
    store.compact("idx")
    assert synced, "fsync stood in for fdatasync"
    reopened = LocalVectorStore(tmp_path)
    assert reopened.query_vectors("idx", data[7], top_k=1)[0].key == "k7"
    assert reopened.get_vectors("idx", ["k1199"], return_data=True)[0].data == pytest.approx(data[1199].tolist())
    assert reopened.integrity_check("idx") == []


def test_write_at_falls_back_to_seek_and_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pwrite", raising=False)
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR)
    try:
        durable.write_at(fd, b"ab", 3)
        durable.write_at(fd, memoryview(b"XYZ"), 10)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"012ab56789XYZ"


def test_macos_uses_full_fsync_and_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[Any] = []
    fake = types.SimpleNamespace(F_FULLFSYNC=51, fcntl=lambda fd, flag: calls.append(("full", flag)))
    monkeypatch.setitem(sys.modules, "fcntl", fake)
    monkeypatch.setattr(durable, "IS_MACOS", True)
    monkeypatch.delattr(os, "fdatasync", raising=False)  # macOS has none
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", fd)))
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        durable.sync_file(fd)
        assert calls == [("full", 51)]

        def refuse(fd: int, flag: int) -> None:
            raise OSError(45, "Operation not supported")  # e.g. a network mount

        fake.fcntl = refuse
        calls.clear()
        durable.sync_file(fd)
        assert calls == [("fsync", fd)]
    finally:
        os.close(fd)
    db = sqlite3.connect(":memory:")
    durable.sqlite_durability(db)
    assert db.execute("PRAGMA fullfsync").fetchone() == (1,)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_windows_skips_directory_sync(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(durable, "IS_WINDOWS", True)
    opened: list[Any] = []
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a))
    durable.sync_dir(tmp_path)
    assert opened == []


def test_pid_alive_without_os_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert durable.pid_alive(os.getpid())
    assert not durable.pid_alive(child.pid)
    assert not durable.pid_alive(0) and not durable.pid_alive(-3)
    monkeypatch.setattr(durable, "IS_WINDOWS", True)
    killed: list[Any] = []
    monkeypatch.setattr(os, "kill", lambda *a: killed.append(a))
    assert durable.pid_alive(os.getpid())
    if Path("/proc").is_dir():
        assert not durable.pid_alive(child.pid)
    assert killed == [], "liveness never signals on Windows (os.kill there terminates the process)"
