"""Shared helpers of the retention and DSAR tests: deployments with two stores, WAV files, ingest."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cfcore.db.models import DataKey, MediaObject, Recording, TombstoneRow
from cfcore.wav import write_wav

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CF_NOW = NOW.isoformat()

TWO_STORES = """
[stores.mirror]
type = "local"
root = "media-mirror"
"""


def use_two_stores(deployment: Path, extra: str = "") -> Path:
    """Both stores must confirm every put: "gone from every store" is then checked on two."""
    text = deployment.read_text()
    text = text.replace('stores = ["primary"]\nrequired_copies = 1', 'stores = ["primary", "mirror"]\nrequired_copies = 2')
    assert 'required_copies = 2' in text
    deployment.write_text(text + TWO_STORES + extra)
    return deployment


def tone(seconds: float, freq: float, rate: int = 8000, level: int = 8000) -> bytes:
    n = int(seconds * rate)
    return b"".join(struct.pack("<h", int(level * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))


def make_wav(path: Path, seconds: float = 2.0, two_sided: bool = True) -> Path:
    chans = [tone(seconds, 440)] + ([tone(seconds, 660)] if two_sided else [])
    write_wav(path, chans, 8000)
    return path


def ingest(app: Any, tmp_path: Path, started: str, *, two_sided: bool = True, customer: str | None = None,
           number: str | None = None, advisor: str = "A100", name: str | None = None) -> str:
    """Archive a call that started at ``started`` (ISO); two-sided calls get consent at 0.5 s."""
    from cfcore.ingest import ingest_wav

    wav = make_wav(tmp_path / f"{name or started.replace(':', '')}-{two_sided}.wav", two_sided=two_sided)
    return ingest_wav(app, wav, advisor_id=advisor, customer_ids=[customer] if customer else [],
                      customer_numbers=[number] if number else [], consent_at=0.5 if two_sided else None,
                      started=started)


def media_keys(app: Any, rec_id: str) -> list[str]:
    with app.catalog.session() as s:
        return sorted({m.key for m in s.scalars(select(MediaObject).where(MediaObject.recording_id == rec_id))})


def store_roots(deployment: Path) -> list[Path]:
    return [deployment.parent / "media", deployment.parent / "media-mirror"]


def files_of(deployment: Path, rec_id: str) -> list[Path]:
    """Every object file of a recording in both local stores (any layout)."""
    return [p for root in store_roots(deployment) if root.exists() for p in root.rglob(f"*{rec_id}*") if p.is_file()]


def state(app: Any, rec_id: str) -> dict[str, Any]:
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        key = s.get(DataKey, rec_id)
        tomb = s.get(TombstoneRow, rec_id)
        return {
            "state": rec.state if rec else None,
            "key_wrapped": key.wrapped is not None if key else None,
            "key_destroyed_at": key.destroyed_at if key else None,
            "tombstone": ({"reason": tomb.reason, "rule": tomb.rule, "pseudonyms": list(tomb.subject_pseudonyms),
                           "hashes": list(tomb.ciphertext_sha256), "deleted_at": tomb.deleted_at} if tomb else None),
            "media_rows": len(rec.media) if rec else 0,
            "subjects": len(rec.subjects) if rec else 0,
        }


def make_user(app: Any, username: str, *roles: str, advisor_id: str | None = None) -> Any:
    """A user with roles (the access tests' catalog shortcut); returns the user's RequestContext."""
    from access_helpers import ctx_for
    from access_helpers import make_user as _make_user

    _make_user(app, username, roles, advisor_id=advisor_id)
    return ctx_for(app, username, host="pc-test", ip="127.0.0.1", function=f"test:{username}")


def login_env(username: str, **extra: str) -> dict[str, str]:
    """Run ``cf`` as ``username`` at the tests' frozen time."""
    from access_helpers import login_env as _login_env

    return {**_login_env(username), "CF_NOW": CF_NOW, **extra}


def four_eyes(app: Any, requester: Any, approver: Any, action: str, target: str, params: dict[str, Any],
              reason: str = "test request") -> dict[str, Any]:
    """Request, approve by a second person, execute: the whole four-eyes flow."""
    from cfcore.access import approvals

    approval_id = approvals.request(app, requester, action, target, reason, params)
    approvals.approve(app, approver, approval_id)
    return approvals.execute(app, requester, approval_id)
