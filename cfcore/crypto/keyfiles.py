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


def create_secret(path: Path, nbytes: int = 32) -> bool:
    """Create a random secret in ``path`` (hex, 0600) unless it exists; only ``cf init`` (and
    explicit key commands) call this. Returns True when this call created it."""
    return create_private(path, secrets.token_hex(nbytes).encode() + b"\n")


def load_secret(path: Path, nbytes: int = 32) -> bytes:
    """The random secret kept in ``path`` (hex). A missing, unreadable or malformed file is a
    ``ConfigError``: a secret is never silently recreated (data sealed under the old one would
    become unreadable, or a new one would hide what the old one protected)."""
    try:
        check_private(path)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"secret {path} is missing",
                          hint="restore the key directory from its backup; only 'cf init' creates secrets") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"secret {path} cannot be read: {exc}", hint="restore it from the key backup") from None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != nbytes:
        raise ConfigError(f"secret {path} is not {nbytes} bytes of hex (damaged?)",
                          hint="restore it from the key backup")
    return value
