"""A PEP 517 build backend in the standard library only, copied into each demo project.

`python -m build --no-isolation` drives it exactly as it drives setuptools, but it needs
nothing installed and no network: Python 3.12+ venvs have no setuptools, and
setuptools < 70.1 cannot build wheels without the `wheel` package. It reads
`[project] name` and `version` from pyproject.toml and packages the `src/` tree.
The sdist contains this file, so the wheel can be built from the sdist, as `build`
does by default.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

SDIST_FILES = ("pyproject.toml", "demo_backend.py")


def _project() -> tuple[str, str, str]:
    """(name, version, file-name form of the name) from pyproject.toml."""
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = project["name"], project["version"]
    return name, version, re.sub(r"[-_.]+", "_", name).lower()


def _metadata(name: str, version: str) -> bytes:
    return (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Summary: A package built by trustpub's end-to-end test\n"
    ).encode()


def _sources() -> list[Path]:
    return sorted(path for path in Path("src").rglob("*") if path.is_file())


def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return []


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    name, version, stem = _project()
    root = f"{stem}-{version}"
    filename = f"{root}.tar.gz"
    with tarfile.open(Path(sdist_directory) / filename, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"{root}/PKG-INFO")
        data = _metadata(name, version)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for path in [Path(p) for p in SDIST_FILES] + _sources():
            tar.add(path, arcname=f"{root}/{path.as_posix()}")
    return filename


def build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: Any = None
) -> str:
    name, version, stem = _project()
    filename = f"{stem}-{version}-py3-none-any.whl"
    dist_info = f"{stem}-{version}.dist-info"
    files: list[tuple[str, bytes]] = [
        (path.relative_to("src").as_posix(), path.read_bytes()) for path in _sources()
    ]
    files.append((f"{dist_info}/METADATA", _metadata(name, version)))
    files.append(
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: demo_backend\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        )
    )
    record = [f"{arcname},sha256={_digest(data)},{len(data)}" for arcname, data in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in files:
            wheel.writestr(arcname, data)
    return filename


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
