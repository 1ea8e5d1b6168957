"""Shared helpers of the archive tests: audio, users for CLI logins, four-eyes approvals."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cfcore.db.models import MediaObject
from cfcore.wav import write_wav
from hookspecs.types import RequestContext

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def tone(seconds: float, freq: float, rate: int = 8000, level: int = 8000) -> bytes:
    n = int(round(seconds * rate))
    return struct.pack(f"<{n}h", *(int(level * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def noise(seconds: float, rate: int = 8000, seed: int = 1) -> bytes:
    """Full-range PCM16 including -32768 and 32767 (bit-exactness must hold at the edges)."""
    import random

    r = random.Random(seed)
    n = int(round(seconds * rate))
    vals = [r.randint(-32768, 32767) for _ in range(n)]
    if n >= 2:
        vals[0], vals[1] = -32768, 32767
    return struct.pack(f"<{n}h", *vals)


def make_wav(path: Path, seconds: float = 2.0, channels: int = 2, rate: int = 8000) -> tuple[Path, list[bytes]]:
    chans = [noise(seconds, rate, seed=1)] + ([noise(seconds, rate, seed=2)] if channels == 2 else [])
    write_wav(path, chans, rate)
    return path, chans


def raw_wav(fmt: int, channels: int, rate: int, bits: int, data: bytes, *, extra_chunks: bytes = b"") -> bytes:
    """A WAV file with any fmt fields (for malformed and G.711 inputs)."""
    block = channels * bits // 8
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels, rate, rate * block, block, bits)
    pad = b"\0" if len(data) % 2 else b""
    body = b"WAVE" + fmt_chunk + extra_chunks + struct.pack("<4sI", b"data", len(data)) + data + pad
    return struct.pack("<4sI", b"RIFF", len(body)) + body


def media_files(deployment: Path) -> list[Path]:
    root = deployment.parent / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def media_rows(app: Any, rec_id: str) -> dict[str, MediaObject]:
    with app.catalog.session() as s:
        return {m.channel: m for m in s.scalars(select(MediaObject).where(MediaObject.recording_id == rec_id))}


# ---------------------------------------------------------------------- users


def make_user(app: Any, username: str, roles: list[str], *, advisor_id: str | None = None) -> RequestContext:
    """Seed a user with roles straight into the catalog (test set-up; in production roles are
    granted four-eyes) and return a request context for API calls as that user."""
    from access_helpers import ctx_for
    from access_helpers import make_user as seed_user

    seed_user(app, username, roles, advisor_id=advisor_id, password=PASSWORD)
    return ctx_for(app, username, host="test-pc", ip="127.0.0.1", function="test")


def login_env(username: str) -> dict[str, str]:
    return {"CF_USER": username, "CF_PASSWORD": PASSWORD}


def approve(app: Any, requester: RequestContext, approver: RequestContext, action: str, target_id: str | None,
            params: dict[str, Any] | None = None) -> str:
    """File and approve a four-eyes request; returns its id."""
    from cfcore.access import approvals

    aid = approvals.request(app, requester, action, target_id, "test reason", params or {})
    approvals.approve(app, approver, aid)
    return aid
