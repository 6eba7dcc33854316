"""Key files written on first start: a process never sees another's half-written key.

`write_private_file` promises that concurrent first starts are safe (one writes, the
others keep theirs). A process that loses the O_EXCL race must then read a complete key,
not the empty file the winner has created and not yet filled.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from app.private_files import write_private_file
from app.settings import Settings
from app.wiring import build_key_ring


def test_a_concurrent_first_start_reads_a_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(audience="trustpub-dev", policies_dir=tmp_path, dev=True, dev_dir=tmp_path)
    created = threading.Event()
    second_done = threading.Event()
    real_fdopen = os.fdopen

    def slow_first_writer(fd: int, *args: Any, **kwargs: Any) -> Any:
        # The first process is descheduled between creating its file and writing it.
        if threading.current_thread().name == "first":
            created.set()
            second_done.wait(5)
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr("app.private_files.os.fdopen", slow_first_writer)
    results: dict[str, Any] = {}

    def first() -> None:
        try:
            results["first"] = build_key_ring(settings).signer.kid
        except Exception as exc:
            results["first"] = exc

    thread = threading.Thread(target=first, name="first")
    thread.start()
    created.wait(5)
    try:
        second: Any = build_key_ring(settings).signer.kid
    except Exception as exc:
        second = exc
    finally:
        second_done.set()
        thread.join(10)

    assert isinstance(second, str), f"the second start failed: {second!r}"
    assert results["first"] == second
    # No temporary file is left where `*.pem` would load it.
    assert [p.name for p in (tmp_path / "signing-keys").iterdir()] == ["dev-signing-key.pem"]


def test_an_interrupted_write_leaves_no_empty_key_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk (or a kill) between creating the file and writing it must not leave
    # an empty key file that stops every later start.
    real_fdopen = os.fdopen

    def failing_writer(fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, *args, **kwargs)
        handle.close()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.private_files.os.fdopen", failing_writer)
    target = tmp_path / "keys" / "key.pem"
    with pytest.raises(OSError, match="No space"):
        write_private_file(target, b"-----BEGIN PRIVATE KEY-----\n")
    monkeypatch.undo()

    assert not target.exists()
    assert write_private_file(target, b"key") is True
    assert target.read_bytes() == b"key"
    assert os.stat(target).st_mode & 0o777 == 0o600
