"""Collect everything an Art. 15 report says about one person.

The person is found by pseudonym only (HMAC of the normalised customer id / phone number, see
``cfcore.subjects``) in ``recording_subjects`` (stored recordings) and ``tombstone_subjects``
(deleted ones): a handful of indexed lookups, whatever the size of the catalogue.

The result is a plain, JSON-able dict in the requested language (``texts.py``): the JSON format
is this dict, the HTML and PDF renderers lay it out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hookspecs.types import AccessTarget, Direction, RecordingInfo

from ..access.roles import ROLES
from ..db.models import AuditEntry, Recording, RecordingSubject, TombstoneRow, TombstoneSubject
from ..db.models_access import User
from ..db.models_integration import TranscriptRow
from ..errors import InputError
from ..retention import decide_retention, retention_settings, rules_for
from ..subjects import normalise_customer_id, normalise_number, pseudonyms_for
from .texts import (
    DEFAULT_AUTHORITY,
    LANGS,
    RIGHTS,
    action_text,
    human_date,
    human_time,
    method_text,
    number,
    rule_label,
    rule_texts,
    source_label,
    t,
)

if TYPE_CHECKING:
    from ..app import App

FORMAT_VERSION = 1
#: Audit outcomes that mean the access happened.
DONE_OUTCOMES = ("ok", "allowed", "executed")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise InputError(f"language {lang!r} is not available", hint="choose one of: " + ", ".join(LANGS))
    return lang


def subject_pseudonyms(app: App, customer_ids: Iterable[str] = (), numbers: Iterable[str] = ()) -> list[str]:
    customer_ids, numbers = list(customer_ids), list(numbers)
    if not customer_ids and not numbers:
        raise InputError("say whom the report is about", hint="--customer ID or --number +49…")
    return [p for _, p in pseudonyms_for(app, customer_ids, numbers)]


def subject_target(pseudonyms: Sequence[str]) -> AccessTarget:
    return AccessTarget(kind="subject", id=pseudonyms[0], attributes={"pseudonyms": tuple(pseudonyms)})


def _localised(value: Any, lang: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(lang) or next(iter(value.values()), ""))
    return str(value)


def _role_text(lang: str, user: str, roles: Iterable[str]) -> list[str]:
    if user == "system" or user.startswith("system:"):
        return [t(lang, "system")]
    names = [ROLES[r][0 if lang == "en" else 1] for r in sorted(roles) if r in ROLES]
    return names or [t(lang, "unknown_role")]


def _purposes(lang: str, rules: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for r in rules:
        purpose, basis = rule_texts(lang, r.name, r.purpose, r.legal_basis)
        out.append({"rule": r.name, "purpose": purpose, "legal_basis": basis, "keep_until": _iso(r.keep_until),
                    "statutory": bool(r.statutory)})
    return out


def _recipients(app: App, lang: str, any_mifid: bool) -> list[str]:
    cfg = app.config
    out = [t(lang, "rec_internal")]
    if any_mifid:
        out.append(t(lang, "rec_authority"))
    crm_status = app.pm.status("crm_soap")
    if cfg.section("crm") or (crm_status is not None and crm_status.status == "ok"):
        out.append(t(lang, "rec_crm", name=str(cfg.section("dsar").get("crm_name", "CRM"))))
    if any(isinstance(o, Mapping) and o.get("type") == "s3" for o in cfg.section("stores").values()):
        out.append(t(lang, "rec_processor"))
    extra = cfg.section("dsar").get("recipients", [])
    if isinstance(extra, list):
        out += [_localised(x, lang) for x in extra]
    return out


def report_time_zone(app: App) -> str:
    """``[deployment] time_zone`` (the web UI uses the same unless ``[webui] time_zone`` says otherwise)."""
    return str(app.config.get("deployment.time_zone", str, "Europe/Berlin"))


def _link(detail: str) -> str | None:
    """The streaming link (nonce) an audited read went through, if any."""
    try:
        value = json.loads(detail or "{}")
    except ValueError:
        return None
    link = value.get("link") if isinstance(value, dict) else None
    return str(link) if link else None


def build_report(app: App, pseudonyms: Sequence[str], *, lang: str = "de", customer_ids: Iterable[str] = (),
                 numbers: Iterable[str] = ()) -> dict[str, Any]:
    """The report data for the person with these pseudonyms (access is checked by the caller).

    ``customer_ids`` / ``numbers`` are only printed in the report's header (it goes to the
    person); nothing is looked up by them.
    """
    check_lang(lang)
    tz = report_time_zone(app)
    settings = retention_settings(app)
    cc = app.config.get("deployment.country_code", str, "49")
    with app.catalog.session() as s:
        live_ids = set(s.scalars(select(RecordingSubject.recording_id)
                                 .where(RecordingSubject.pseudonym.in_(pseudonyms))))
        dead_ids = set(s.scalars(select(TombstoneSubject.recording_id)
                                 .where(TombstoneSubject.pseudonym.in_(pseudonyms))))
        live_ids -= dead_ids
        recs = list(s.scalars(select(Recording).where(Recording.id.in_(live_ids))
                              .options(selectinload(Recording.consents), selectinload(Recording.subjects))
                              .order_by(Recording.started_at))) if live_ids else []
        tombs = list(s.scalars(select(TombstoneRow).where(TombstoneRow.recording_id.in_(dead_ids))
                               .order_by(TombstoneRow.started_at))) if dead_ids else []
        all_ids = [r.id for r in recs] + [x.recording_id for x in tombs]
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.target_kind == "recording",
                                                          AuditEntry.target_id.in_(all_ids),
                                                          AuditEntry.outcome.in_(DONE_OUTCOMES))
                                 .order_by(AuditEntry.seq))) if all_ids else []
        previous = list(s.scalars(select(AuditEntry.at).where(AuditEntry.action == "dsar.report",
                                                              AuditEntry.target_id.in_(pseudonyms),
                                                              AuditEntry.outcome == "ok")
                                  .order_by(AuditEntry.seq)))
        usernames = {e.user for e in entries}
        roles = {u.username: u.role_names for u in s.scalars(select(User).where(User.username.in_(usernames)))} \
            if usernames else {}
        decisions = {r.id: decide_retention(app, r, s, settings) for r in recs}
        transcribed = {row.recording_id: (row.language, row.created_at) for row in s.scalars(
            select(TranscriptRow).where(TranscriptRow.recording_id.in_([r.id for r in recs]),
                                        TranscriptRow.state == "done"))} if recs else {}

    accesses: dict[str, list[dict[str, Any]]] = {}
    #: (recording, user, action, link) -> the access already listed: HTTP range reads of one
    #: playback through one link are one access, with the number of reads.
    by_link: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for e in entries:
        if e.target_id is None or not e.action.startswith(("recording.", "retention.", "hold.", "dsar.")):
            continue
        action = e.action
        if action == "recording.export" and '"via":"dsar.export"' in e.detail:
            action = "dsar.export"  # a copy for the person themself
        link = _link(e.detail) if action in ("recording.play", "recording.stream", "recording.export") else None
        key = (e.target_id, e.user, action, link) if link else None
        if key is not None and key in by_link:
            by_link[key]["reads"] += 1
            by_link[key]["last_at"] = _iso(e.at)
            continue
        item = {"at": _iso(e.at), "action": action, "action_text": action_text(lang, action),
                "roles": _role_text(lang, e.user, roles.get(e.user, ())), "reads": 1, "last_at": _iso(e.at)}
        if key is not None:
            by_link[key] = item
        accesses.setdefault(e.target_id, []).append(item)

    any_mifid = False
    stored = []
    for r in recs:
        d = decisions[r.id]
        any_mifid = any_mifid or any(x.statutory for x in d.rules)
        purposes = _purposes(lang, d.rules)
        if d.override is not None and d.override.kind == "extend":
            p, b = rule_texts(lang, "extended")
            purposes.append({"rule": "extended", "purpose": p, "legal_basis": b,
                             "keep_until": _iso(d.override.until), "statutory": True})
        until = r.retention_until
        stored.append({
            "id": r.id, "status": "being deleted" if r.state == "purging" else "stored",
            "status_text": t(lang, "status_deleting" if r.state == "purging" else "status_stored"),
            "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at), "duration_seconds": round(r.duration, 1),
            "duration_text": number(lang, round(r.duration, 1)),
            "direction": r.direction, "direction_text": t(lang, f"dir_{r.direction}"),
            "site": r.site, "source": r.source, "source_text": t(lang, "source_text", source=source_label(lang, r.source), site=r.site),
            "two_sided": bool(r.two_sided), "content_text": t(lang, "two_sided" if r.two_sided else "advisor_only"),
            "retention": {"class": r.retention_class, "until": _iso(until), "rule": r.retention_rule,
                          "legal_hold": bool(r.legal_hold),
                          "text": (t(lang, "retention_until", date=human_date(lang, _iso(until), tz),
                                     rule=rule_label(lang, r.retention_rule))
                                   if until else t(lang, "retention_none"))
                                  + ("; " + t(lang, "legal_hold") if r.legal_hold else "")},
            "purposes": purposes,
            "consents": [{"given_at": _iso(c.given_at), "method": c.method,
                          "text": t(lang, "consent_line", at=human_time(lang, _iso(c.given_at), tz),
                                    method=method_text(lang, c.method))}
                         for c in sorted(r.consents, key=lambda c: c.given_at)],
            "accesses": accesses.get(r.id, []),
            "transcript": ({"language": transcribed[r.id][0], "created_at": _iso(transcribed[r.id][1]),
                            "text": t(lang, "transcript_yes", language=transcribed[r.id][0],
                                      at=human_time(lang, _iso(transcribed[r.id][1]), tz))}
                           if r.id in transcribed else None),
        })

    deleted = []
    for x in tombs:
        info = RecordingInfo(id=x.recording_id, site=x.site, source=x.source, advisor_id="-",
                             direction=Direction(x.direction), started_at=x.started_at, ended_at=x.ended_at,
                             two_sided=bool(x.two_sided), retention_class=x.retention_class, state="purged")
        rules = rules_for(app, info, settings)
        any_mifid = any_mifid or any(r.statutory for r in rules)
        deleted.append({
            "id": x.recording_id, "status": "deleted", "status_text": t(lang, "status_deleted"),
            "started_at": _iso(x.started_at), "ended_at": _iso(x.ended_at),
            "duration_seconds": round((x.ended_at - x.started_at).total_seconds(), 1),
            "duration_text": number(lang, round((x.ended_at - x.started_at).total_seconds(), 1)),
            "direction": x.direction, "direction_text": t(lang, f"dir_{x.direction}"),
            "site": x.site, "source": x.source, "source_text": t(lang, "source_text", source=source_label(lang, x.source), site=x.site),
            "two_sided": bool(x.two_sided), "content_text": t(lang, "two_sided" if x.two_sided else "advisor_only"),
            "retention": {"class": x.retention_class, "rule": x.rule, "rule_text": rule_label(lang, x.rule)},
            "purposes": _purposes(lang, rules),
            "deleted_at": _iso(x.deleted_at), "reason": x.reason,
            "reason_text": t(lang, f"reason_{x.reason}") if f"reason_{x.reason}" in _REASONS else x.reason,
            "accesses": accesses.get(x.recording_id, []),
        })

    dsar_cfg = app.config.section("dsar")
    authority = _localised(dsar_cfg.get("authority", DEFAULT_AUTHORITY), lang)
    subject = {"customer_ids": [normalise_customer_id(c) for c in customer_ids],
               "numbers": [normalise_number(n, cc) for n in numbers]}
    return {
        "format_version": FORMAT_VERSION,
        "lang": lang,
        "title": t(lang, "title"),
        "generated_at": _iso(app.clock.now()),
        "time_zone": tz,
        "time_zone_text": t(lang, "time_zone_note", tz=tz),
        "controller": {"name": _localised(dsar_cfg.get("controller_name", dsar_cfg.get("controller", "")), lang),
                       "address": _localised(dsar_cfg.get("controller_address", ""), lang),
                       "dpo_contact": _localised(dsar_cfg.get("dpo_contact", ""), lang),
                       "not_configured": t(lang, "not_configured")},
        "subject": subject,
        "summary": {"stored": len(stored), "deleted": len(deleted),
                    "text": t(lang, "summary_text", live=len(stored), deleted=len(deleted))
                    if stored or deleted else t(lang, "none_found")},
        "data_categories": t(lang, "categories_text"),
        "recordings": stored,
        "deleted": deleted,
        "deleted_note": t(lang, "deleted_note"),
        "recipients": _recipients(app, lang, any_mifid),
        "third_country": t(lang, "third_country"),
        "automated": t(lang, "automated"),
        "rights": [line.format(authority=authority) for line in RIGHTS[lang]],
        "copy": t(lang, "copy"),
        "previous_reports": [_iso(at) for at in previous],
    }


_REASONS = {"reason_retention-expired", "reason_art17-erasure"}


def report_ids(report: Mapping[str, Any]) -> list[str]:
    return [r["id"] for r in report["recordings"]] + [r["id"] for r in report["deleted"]]


__all__ = ["build_report", "check_lang", "report_ids", "subject_pseudonyms", "subject_target"]
