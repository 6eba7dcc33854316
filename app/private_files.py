"""Writing key material to disk: owner-only permissions, never overwriting."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_file(path: Path, data: bytes) -> bool:
    """Create `path` with mode 0600; False (and nothing written) if it exists already.

    The data goes to a temporary file first, which is then linked to `path` (link
    fails if `path` exists): `path` appears with its whole content or not at all. So
    concurrent first starts are safe (one process writes, the others read that
    complete file), and an interrupted write leaves no empty key behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden and not *.pem: a key directory's loader never picks it up.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)
