"""Files that hold personal data (reports, copies): 0600, never over an existing file, atomic."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import ConflictError


def write_private(out: str | os.PathLike[str], data: bytes) -> Path:
    """Write a file holding personal data: mode 0600, never over an existing file, atomic."""
    path = Path(out)
    if path.exists():
        raise ConflictError(f"{path} exists already", hint="choose another --out file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        raise ConflictError(f"{path} exists already", hint="choose another --out file") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
