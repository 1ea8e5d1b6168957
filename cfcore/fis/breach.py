"""Personal-data breach cases under GDPR Art. 33.

The DPO opens a case from one or more FIS alerts. The 72-hour clock runs from ``aware_at`` (when
the controller became aware; default: when the case is opened); ``deadline`` and ``overdue`` come
from the injectable clock. The particulars of Art. 33(3) are fields of the case (``FIELDS``); a
notification draft in German or English (Markdown or HTML) is exported from them, with the alerts
and their evidence ids as an annex. Every step is audited (``breach.open``, ``breach.update``,
``breach.show``, ``breach.export``) after ``authorize(.., "breach.manage", ..)``.

Defaults for the contact fields come from ``[fis.breach]``: ``controller``, ``dpo_name``,
``dpo_contact``, ``authority``.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hookspecs.types import AccessTarget, RequestContext

from ..access.guard import authorize
from ..db.models_fis import BreachCase, BreachCaseAlert, FisAlert
from ..errors import ConflictError, InputError, NotFound

if TYPE_CHECKING:
    from ..app import App

DEADLINE = timedelta(hours=72)
STATUSES = ("open", "notified", "closed")
LANGS = ("de", "en")


@attrs.frozen
class Field:
    key: str
    kind: str  # text | int | datetime
    article: str
    de: str
    en: str
    required: bool = True


#: The particulars of Art. 33(3) GDPR, plus what the notification needs around them.
FIELDS: tuple[Field, ...] = (
    Field("nature", "text", "33(3)(a)", "Art der Verletzung", "Nature of the breach"),
    Field("subject_categories", "text", "33(3)(a)", "Kategorien betroffener Personen",
          "Categories of data subjects concerned"),
    Field("subjects_approx", "int", "33(3)(a)", "Ungefähre Zahl betroffener Personen",
          "Approximate number of data subjects concerned"),
    Field("record_categories", "text", "33(3)(a)", "Kategorien betroffener personenbezogener Datensätze",
          "Categories of personal data records concerned"),
    Field("records_approx", "int", "33(3)(a)", "Ungefähre Zahl betroffener Datensätze",
          "Approximate number of personal data records concerned"),
    Field("dpo_name", "text", "33(3)(b)", "Name des Datenschutzbeauftragten oder der Anlaufstelle",
          "Name of the data protection officer or contact point"),
    Field("dpo_contact", "text", "33(3)(b)", "Kontaktdaten", "Contact details"),
    Field("consequences", "text", "33(3)(c)", "Wahrscheinliche Folgen der Verletzung",
          "Likely consequences of the breach"),
    Field("measures_taken", "text", "33(3)(d)", "Ergriffene Maßnahmen (auch zur Abmilderung nachteiliger Auswirkungen)",
          "Measures taken (including to mitigate possible adverse effects)"),
    Field("measures_proposed", "text", "33(3)(d)", "Vorgeschlagene Maßnahmen", "Measures proposed"),
    Field("controller", "text", "33(1)", "Verantwortlicher", "Controller", required=False),
    Field("authority", "text", "33(1)", "Zuständige Aufsichtsbehörde", "Competent supervisory authority",
          required=False),
    Field("occurred_at", "datetime", "33(3)(a)", "Zeitpunkt oder Zeitraum der Verletzung",
          "When the breach occurred", required=False),
    Field("delay_reason", "text", "33(1)", "Gründe für eine Meldung nach mehr als 72 Stunden",
          "Reasons for notifying after more than 72 hours", required=False),
    Field("risk", "text", "33(1), 34", "Risikobewertung für die Rechte und Freiheiten natürlicher Personen",
          "Assessment of the risk to the rights and freedoms of natural persons", required=False),
    Field("decision_reason", "text", "33(5)", "Begründung, wenn nicht gemeldet wird",
          "Reasons when the breach is not notified", required=False),
)
FIELD_KEYS = tuple(f.key for f in FIELDS)
_BY_KEY = {f.key: f for f in FIELDS}
_CONFIG_DEFAULTS = ("controller", "dpo_name", "dpo_contact", "authority")


def _target(case_id: str | None) -> AccessTarget:
    return AccessTarget(kind="breach_case", id=case_id)


def parse_when(value: str | datetime, what: str) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{what} must be an ISO-8601 date and time, e.g. 2026-11-28T09:30+01:00") from None
    if dt.tzinfo is None:
        raise InputError(f"{what} needs a time zone, e.g. 2026-11-28T09:30+01:00 or ...Z")
    return dt


def _coerce(key: str, value: Any) -> Any:
    f = _BY_KEY.get(key)
    if f is None:
        raise InputError(f"unknown breach case field '{key}'", hint="choose one of: " + ", ".join(FIELD_KEYS))
    if value is None or value == "":
        return None
    if f.kind == "int":
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise InputError(f"{key} must be a whole number (an approximate count)") from None
        if n < 0:
            raise InputError(f"{key} must not be negative")
        return n
    if f.kind == "datetime":
        return parse_when(value, key).isoformat()
    text = str(value).strip()
    if len(text) > 10000:
        raise InputError(f"{key} is longer than 10000 characters")
    return text


def _load(s: Any, case_id: str) -> BreachCase:
    row = s.scalars(select(BreachCase).where(BreachCase.id == case_id)
                    .options(selectinload(BreachCase.alerts))).one_or_none()
    if row is None:
        raise NotFound(f"no breach case {case_id}", hint="list them with 'cf breach list'")
    return row


def _alerts(s: Any, ids: list[str]) -> list[FisAlert]:
    rows = {a.id: a for a in s.scalars(select(FisAlert).where(FisAlert.id.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"no FIS alert {missing[0]}", hint="list them with 'cf fis alerts'")
    return [rows[i] for i in ids]


def open_case(app: App, ctx: RequestContext, alert_ids: list[str] | tuple[str, ...],
              aware_at: datetime | str | None = None) -> str:
    """Open a case from alerts; returns its id."""
    ids = list(dict.fromkeys(alert_ids))
    if not ids:
        raise InputError("a breach case starts from at least one alert", hint="cf breach open --alert ID")
    authorize(app, ctx, "breach.manage", _target(None))
    now = app.clock.now()
    aware = parse_when(aware_at, "--aware-at") if aware_at is not None else now
    if aware > now + timedelta(minutes=5):
        raise InputError("--aware-at lies in the future")
    defaults = {k: app.config.section("fis.breach").get(k) for k in _CONFIG_DEFAULTS}
    fields = {k: _coerce(k, v) for k, v in defaults.items() if v}
    with app.catalog.session() as s:
        _alerts(s, ids)
        case = BreachCase(id=secrets.token_hex(6), opened_at=now, opened_by=ctx.actor.username, aware_at=aware,
                          status="open", updated_at=now, fields=fields)
        s.add(case)
        s.flush()
        for aid in ids:
            s.add(BreachCaseAlert(case_id=case.id, alert_id=aid))
        app.audit.append(s, ctx, "breach.open", "breach_case", case.id, "ok",
                         {"alerts": ids, "aware_at": aware.isoformat(), "deadline": (aware + DEADLINE).isoformat()})
        return case.id


def update_case(app: App, ctx: RequestContext, case_id: str, changes: Mapping[str, Any], *,
                status: str | None = None, notified_at: datetime | str | None = None,
                aware_at: datetime | str | None = None, add_alerts: tuple[str, ...] = ()) -> dict[str, Any]:
    """Set fields (``None``/"" clears one), add alerts, move the status.

    ``notified``: the authority has been notified (``notified_at``, default now); after the
    deadline only with ``delay_reason`` (Art. 33(1)). ``closed`` without notification needs
    ``decision_reason`` (Art. 33(5): document why the breach is unlikely to result in a risk).
    """
    authorize(app, ctx, "breach.manage", _target(case_id))
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status '{status}'", hint="choose one of: " + ", ".join(STATUSES))
    clean = {k: _coerce(k, v) for k, v in changes.items()}
    now = app.clock.now()
    with app.catalog.session() as s:
        case = _load(s, case_id)
        fields = dict(case.fields or {})
        for k, v in clean.items():
            if v is None:
                fields.pop(k, None)
            else:
                fields[k] = v
        if aware_at is not None:
            case.aware_at = parse_when(aware_at, "--aware-at")
        if add_alerts:
            have = {a.alert_id for a in case.alerts}
            for a in _alerts(s, list(dict.fromkeys(add_alerts))):
                if a.id not in have:
                    s.add(BreachCaseAlert(case_id=case.id, alert_id=a.id))
        when = parse_when(notified_at, "--notified-at") if notified_at is not None else None
        if status == "notified" or (when is not None and status is None):
            when = when or now
            if when > case.aware_at + DEADLINE and not fields.get("delay_reason"):
                raise ConflictError("the notification is later than 72 hours after awareness",
                                    hint="give the reasons for the delay with --delay-reason (Art. 33(1) GDPR)")
            case.status, case.notified_at = "notified", when
        elif status == "closed":
            if case.notified_at is None and not fields.get("decision_reason"):
                raise ConflictError("closing a case that was not notified needs the reasons",
                                    hint="document them with --decision-reason (Art. 33(5) GDPR)")
            case.status = "closed"
        elif status == "open":
            case.status = "open"
        case.fields = fields
        case.updated_at = now
        app.audit.append(s, ctx, "breach.update", "breach_case", case.id, "ok",
                         {"fields": sorted(clean), "status": case.status,
                          **({"added_alerts": list(add_alerts)} if add_alerts else {})})
    return show_case(app, ctx, case_id, audit=False)


def _case_dict(case: BreachCase, alerts: list[FisAlert], now: datetime) -> dict[str, Any]:
    deadline = case.aware_at + DEADLINE
    done_at = case.notified_at
    overdue = (done_at or now) > deadline and case.status != "closed"
    remaining = (deadline - now).total_seconds() if case.status == "open" else None
    fields = dict(case.fields or {})
    missing = [f.key for f in FIELDS if f.required and fields.get(f.key) in (None, "")]
    return {
        "id": case.id, "status": case.status, "opened_at": case.opened_at.isoformat(), "opened_by": case.opened_by,
        "aware_at": case.aware_at.isoformat(), "deadline": deadline.isoformat(),
        "remaining_seconds": remaining, "overdue": overdue,
        "notified_at": case.notified_at.isoformat() if case.notified_at else None,
        "updated_at": case.updated_at.isoformat(), "fields": fields, "missing": missing,
        "alerts": [{"id": a.id, "rule": a.rule, "severity": a.severity, "summary": a.summary,
                    "raised_at": a.raised_at.isoformat(), "evidence": list(a.evidence)} for a in alerts],
    }


def show_case(app: App, ctx: RequestContext, case_id: str, *, audit: bool = True) -> dict[str, Any]:
    if audit:
        authorize(app, ctx, "breach.manage", _target(case_id))
    with app.catalog.session() as s:
        case = _load(s, case_id)
        alerts = _alerts(s, [a.alert_id for a in case.alerts])
        if audit:
            app.audit.append(s, ctx, "breach.show", "breach_case", case.id, "ok", {})
        return _case_dict(case, alerts, app.clock.now())


def list_cases(app: App, ctx: RequestContext, *, status: str | None = None) -> list[dict[str, Any]]:
    authorize(app, ctx, "breach.manage", _target(None))
    now = app.clock.now()
    with app.catalog.session() as s:
        q = select(BreachCase).options(selectinload(BreachCase.alerts)).order_by(BreachCase.opened_at.desc())
        if status:
            q = q.where(BreachCase.status == status)
        out = []
        for case in s.scalars(q):
            d = _case_dict(case, [], now)
            d["alerts"] = [a.alert_id for a in case.alerts]
            out.append(d)
        app.audit.append(s, ctx, "breach.list", "breach_case", None, "ok", {"count": len(out)})
    return out


def format_remaining(case: Mapping[str, Any], lang: str = "en") -> str:
    """'in 47 h 12 min' / 'OVERDUE by 3 h 5 min' (or the German words)."""
    de = lang == "de"
    if case["status"] != "open":
        if case["notified_at"]:
            late = " (" + ("verspätet" if de else "late") + ")" if case["overdue"] else ""
            return ("gemeldet am " if de else "notified at ") + case["notified_at"] + late
        return "abgeschlossen ohne Meldung" if de else "closed without notification"
    secs = case["remaining_seconds"]
    h, m = divmod(int(abs(secs)) // 60, 60)
    span = f"{h} h {m} min"
    if secs < 0:
        return ("ÜBERSCHRITTEN um " if de else "OVERDUE by ") + span
    return ("noch " if de else "in ") + span


# --------------------------------------------------------------------------- the draft


_T = {
    "title": ("Meldung einer Verletzung des Schutzes personenbezogener Daten an die Aufsichtsbehörde "
              "(Art. 33 DSGVO) - ENTWURF",
              "Notification of a personal data breach to the supervisory authority (Art. 33 GDPR) - DRAFT"),
    "case": ("Fall", "Case"), "as_of": ("Stand", "As of"),
    "to": ("An", "To"), "controller": ("Verantwortlicher", "Controller"),
    "timeline": ("Zeitlicher Ablauf", "Timeline"),
    "aware": ("Kenntnis erlangt", "Became aware"), "deadline": ("Meldefrist (72 Stunden)", "Deadline (72 hours)"),
    "occurred": ("Zeitpunkt der Verletzung", "Breach occurred"), "notified": ("Gemeldet", "Notified"),
    "delay": ("Gründe für die Verzögerung (Art. 33 Abs. 1)", "Reasons for the delay (Art. 33(1))"),
    "a": ("a) Art der Verletzung", "(a) Nature of the breach"),
    "b": ("b) Datenschutzbeauftragter / Anlaufstelle", "(b) Data protection officer / contact point"),
    "c": ("c) Wahrscheinliche Folgen", "(c) Likely consequences"),
    "d": ("d) Ergriffene oder vorgeschlagene Maßnahmen", "(d) Measures taken or proposed"),
    "risk": ("Risikobewertung", "Risk assessment"),
    "annex": ("Anlage: Alarme des Betrugsinformationssystems (nur Kennungen)",
              "Annex: fraud information system alerts (ids only)"),
    "alert": ("Alarm", "Alert"), "rule": ("Regel", "Rule"), "severity": ("Schwere", "Severity"),
    "raised": ("Erkannt", "Raised"), "evidence": ("Belege", "Evidence"), "summary": ("Zusammenfassung", "Summary"),
    "todo": ("[noch zu ergänzen]", "[to be completed]"), "none": ("(keine)", "(none)"),
    "missing": ("Noch fehlende Angaben nach Art. 33 Abs. 3", "Particulars of Art. 33(3) still missing"),
    "phases": ("Können die Informationen nicht zur gleichen Zeit bereitgestellt werden, können sie ohne "
               "unangemessene weitere Verzögerung schrittweise zur Verfügung gestellt werden (Art. 33 Abs. 4 DSGVO).",
               "Where the information cannot be provided at the same time, it may be provided in phases without "
               "undue further delay (Art. 33(4) GDPR)."),
}


def _t(key: str, lang: str) -> str:
    return _T[key][0 if lang == "de" else 1]


def _blocks(case: Mapping[str, Any], lang: str, now: datetime) -> list[tuple[str, Any]]:
    """The draft as ("h1"|"h2"|"p"|"kv"|"table", content) blocks, rendered to Markdown or HTML."""
    f = case["fields"]
    todo = _t("todo", lang)

    def val(key: str) -> str:
        v = f.get(key)
        return todo if v in (None, "") else str(v)

    def label(key: str) -> str:
        fd = _BY_KEY[key]
        return fd.de if lang == "de" else fd.en

    blocks: list[tuple[str, Any]] = [
        ("h1", _t("title", lang)),
        ("kv", [(_t("case", lang), case["id"]), (_t("as_of", lang), now.isoformat(timespec="minutes")),
                (_t("to", lang), val("authority")), (_t("controller", lang), val("controller"))]),
        ("h2", _t("timeline", lang)),
        ("kv", [(_t("aware", lang), case["aware_at"]),
                (_t("deadline", lang), f"{case['deadline']} ({format_remaining(case, lang)})"),
                (_t("occurred", lang), val("occurred_at")),
                (_t("notified", lang), case["notified_at"] or "-")]
         + ([(_t("delay", lang), val("delay_reason"))] if case["overdue"] or f.get("delay_reason") else [])),
        ("h2", _t("a", lang)),
        ("p", val("nature")),
        ("kv", [(label(k), val(k)) for k in ("subject_categories", "subjects_approx", "record_categories",
                                             "records_approx")]),
        ("h2", _t("b", lang)),
        ("kv", [(label("dpo_name"), val("dpo_name")), (label("dpo_contact"), val("dpo_contact"))]),
        ("h2", _t("c", lang)),
        ("p", val("consequences")),
        ("h2", _t("d", lang)),
        ("kv", [(label("measures_taken"), val("measures_taken")),
                (label("measures_proposed"), val("measures_proposed"))]),
    ]
    if f.get("risk"):
        blocks += [("h2", _t("risk", lang)), ("p", str(f["risk"]))]
    if case["missing"]:
        blocks += [("h2", _t("missing", lang)), ("p", ", ".join(label(k) for k in case["missing"])),
                   ("p", _t("phases", lang))]
    rows = [[a["id"], a["rule"], a["severity"], a["raised_at"], a["summary"], ", ".join(a["evidence"])]
            for a in case["alerts"]]
    blocks += [("h2", _t("annex", lang)),
               ("table", ([_t(k, lang) for k in ("alert", "rule", "severity", "raised", "summary", "evidence")], rows))]
    return blocks


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[tuple[str, Any]]) -> str:
    out: list[str] = []
    for kind, content in blocks:
        if kind == "h1":
            out += [f"# {content}", ""]
        elif kind == "h2":
            out += [f"## {content}", ""]
        elif kind == "p":
            out += [str(content), ""]
        elif kind == "kv":
            out += [f"- **{k}:** {v}" for k, v in content] + [""]
        elif kind == "table":
            head, rows = content
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("")
    return "\n".join(out)


def render_html(blocks: list[tuple[str, Any]], lang: str) -> str:
    e = html.escape
    title = next((c for k, c in blocks if k == "h1"), "")
    out = [f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8"><title>{e(title)}</title>'
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #999;"
           "padding:.3em;vertical-align:top}table{border-collapse:collapse}</style></head>\n<body>"]
    for kind, content in blocks:
        if kind == "h1":
            out.append(f"<h1>{e(content)}</h1>")
        elif kind == "h2":
            out.append(f"<h2>{e(content)}</h2>")
        elif kind == "p":
            out.append("<p>" + e(str(content)).replace("\n", "<br>") + "</p>")
        elif kind == "kv":
            out.append("<dl>" + "".join(f"<dt><b>{e(k)}</b></dt><dd>{e(str(v))}</dd>" for k, v in content) + "</dl>")
        elif kind == "table":
            head, rows = content
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                       + "</table>")
    out.append("</body>\n</html>\n")
    return "\n".join(out)


def render_case(app: App, ctx: RequestContext, case_id: str, lang: str, fmt: str = "md") -> str:
    """The notification draft as Markdown (``md``) or HTML; audited ``breach.export``."""
    if lang not in LANGS:
        raise InputError(f"unknown language '{lang}'", hint="choose one of: " + ", ".join(LANGS))
    if fmt not in ("md", "html"):
        raise InputError(f"unknown format '{fmt}'", hint="choose one of: md, html")
    authorize(app, ctx, "breach.manage", _target(case_id))
    now = app.clock.now()
    with app.catalog.session() as s:
        case_row = _load(s, case_id)
        case = _case_dict(case_row, _alerts(s, [a.alert_id for a in case_row.alerts]), now)
    blocks = _blocks(case, lang, now)
    text = render_markdown(blocks) if fmt == "md" else render_html(blocks, lang)
    app.audit.record(ctx, "breach.export", "breach_case", case_id, "ok", {"lang": lang, "format": fmt})
    return text


def export_case(app: App, ctx: RequestContext, case_id: str, lang: str, out: Path, fmt: str | None = None) -> Path:
    """Write the notification draft to ``out`` (mode 0600, never over an existing file); ``fmt``
    md|html, default from the suffix."""
    fmt = fmt or ("html" if out.suffix.lower() in (".html", ".htm") else "md")
    if out.exists():
        raise ConflictError(f"{out} exists already", hint="choose another --out file")
    text = render_case(app, ctx, case_id, lang, fmt)
    from ..crypto.keyfiles import write_private

    write_private(out, text.encode("utf-8"))
    return out
