"""Secret files: created with mode 0600, refused when readable by others."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..errors import ConfigError


def check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:04o})", hint=f"chmod 600 {path}")


def _write_tmp(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 (temporary file, fsync, rename, fsync of the directory)."""
    tmp = _write_tmp(path, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def create_private(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` (0600) unless it exists; atomic and race-free between
    processes (hard link, which never replaces). Returns True when this call created it."""
    tmp = _write_tmp(path, data)
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        os.unlink(tmp)
    if created:
        _fsync_dir(path.parent)
    return created


def load_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """A random secret kept in ``path`` (hex); created on first use.

    Two processes starting at once agree on one secret: creation never replaces a file.
    """
    if not path.exists():
        create_private(path, secrets.token_hex(nbytes).encode() + b"\n")
    check_private(path)
    return bytes.fromhex(path.read_text().strip())
