"""Carrier call records (CDR) of advisors' mobiles, reconciled with the recordings.

Every call in the carrier's records that an advisor's mobile made or took (mobile numbers from
``[plugins.mobile_ons.advisors.<id>].mobile``) and that lasted at least ``min_seconds`` must have a
recording of that advisor starting within ``tolerance`` of it. Each one that has none is audited as
``capture.alert`` with ``alert = ons_unrecorded`` (FIS rule ``mobile-unrecorded``). Importing the
same records again raises no second alert (each record has a key: a hash of advisor, start, duration
and the other party's pseudonym-free digest).

CSV with a header row: ``start`` (ISO 8601 with offset), ``duration`` (seconds), ``mobile`` (the
advisor's mobile, E.164), ``other`` (the other party), optional ``direction`` (``in`` / ``out``).
A malformed row is reported with its line number and skipped; the other rows are processed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hookspecs.types import RequestContext

from ..errors import InputError

if TYPE_CHECKING:
    from ..app import App

MAX_BYTES = 50 * 1024 * 1024
REQUIRED = ("start", "duration", "mobile", "other")


def advisor_mobiles(app: App) -> dict[str, str]:
    """E.164 mobile → advisor id, from the mobile_ons section (no secrets are read)."""
    section = app.config.section("plugins.mobile_ons.advisors")
    out: dict[str, str] = {}
    for adv, entry in section.items():
        if isinstance(entry, Mapping) and isinstance(entry.get("mobile"), str):
            out[entry["mobile"].strip()] = str(adv)
    return out


def _norm(number: str, cc: str) -> str:
    n = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    if n.startswith("00"):
        return "+" + n[2:]
    if n.startswith("0"):
        return "+" + cc + n[1:]
    return n if n.startswith("+") else "+" + n


def parse(data: bytes, cc: str) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"the call records are not UTF-8 (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"the call records lack the column(s) {', '.join(missing)}",
                         hint="header: start,duration,mobile,other[,direction]")
    reader.fieldnames = header
    rows, errors = [], []
    for i, raw in enumerate(reader, start=2):
        try:
            start = datetime.fromisoformat((raw.get("start") or "").strip())
            if start.tzinfo is None:
                raise ValueError("start has no UTC offset")
            duration = float((raw.get("duration") or "").strip())
            if not 0 <= duration < 86400:
                raise ValueError("duration out of range")
            mobile = _norm(raw.get("mobile") or "", cc)
            other = _norm(raw.get("other") or "", cc)
            if len(mobile) < 6 or not mobile[1:].isdigit():
                raise ValueError("mobile is not a phone number")
        except (ValueError, TypeError) as exc:
            errors.append(f"line {i}: {str(exc)[:80]}")
            continue
        rows.append({"start": start, "duration": duration, "mobile": mobile, "other": other,
                     "direction": (raw.get("direction") or "").strip().lower()[:3]})
    return rows, errors


def import_cdr(app: App, ctx: RequestContext, path: str | Path, *, min_seconds: float = 10.0,
               tolerance: float = 120.0) -> dict[str, Any]:
    from hookspecs.types import AccessTarget

    from ..access.guard import authorize
    from ..db.models import AuditEntry, Recording

    authorize(app, ctx, "recording.ingest", AccessTarget(kind="call_records"))
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise InputError(f"{p.name} is larger than {MAX_BYTES // (1024 * 1024)} MB", hint="split the file")
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None
    cc = app.config.get("deployment.country_code", str, "49")
    rows, errors = parse(data, cc)
    mobiles = advisor_mobiles(app)
    result: dict[str, Any] = {"records": len(rows), "advisory": 0, "recorded": 0, "unrecorded": 0,
                              "already_alerted": 0, "errors": errors}
    tol = timedelta(seconds=tolerance)
    with app.catalog.session() as s:
        for r in rows:
            advisor = mobiles.get(r["mobile"])
            if advisor is None or r["duration"] < min_seconds:
                continue
            result["advisory"] += 1
            start: datetime = r["start"]
            hit = s.scalars(select(Recording.id).where(
                Recording.advisor_id == advisor, Recording.started_at >= start - tol,
                Recording.started_at <= start + timedelta(seconds=r["duration"]) + tol).limit(1)).first()
            if hit:
                result["recorded"] += 1
                continue
            key = hashlib.sha256(f"{advisor}|{start.isoformat()}|{r['duration']}|{r['other']}".encode()).hexdigest()[:32]
            seen = s.scalars(select(AuditEntry.seq).where(AuditEntry.action == "capture.alert",
                                                          AuditEntry.detail.contains(key)).limit(1)).first()
            if seen:
                result["already_alerted"] += 1
                continue
            result["unrecorded"] += 1
            app.audit.append(s, ctx, "capture.alert", "call", f"cdr-{key}", "warning", {
                "source": "carrier-cdr", "alert": "ons_unrecorded", "advisor_id": advisor, "cdr_key": key,
                "started_at": start.isoformat(), "duration": r["duration"],
                "summary": "a carrier call record of the advisor's mobile has no recording"})
        app.audit.append(s, ctx, "mobile.import_cdr", "call_records", None, "ok",
                         {k: v for k, v in result.items() if k != "errors"} | {"bad_rows": len(errors),
                                                                               "file_sha256": hashlib.sha256(data).hexdigest()})
    return result
