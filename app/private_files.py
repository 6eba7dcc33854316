"""Writing key material to disk: owner-only permissions, never overwriting."""

from __future__ import annotations

import os
from pathlib import Path


def write_private_file(path: Path, data: bytes) -> bool:
    """Create `path` with mode 0600; False (and nothing written) if it exists already.

    O_EXCL makes concurrent first starts safe: one process writes, the others keep theirs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True
