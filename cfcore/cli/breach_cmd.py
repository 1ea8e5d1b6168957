"""``cf breach``: GDPR Art. 33 breach cases (open from alerts, 72-hour clock, draft export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .output import emit

#: CLI option -> case field (see cfcore.fis.breach.FIELDS).
_FIELD_OPTIONS = (
    ("--nature", "nature", "Nature of the breach (Art. 33(3)(a))."),
    ("--subject-categories", "subject_categories", "Categories of data subjects concerned."),
    ("--subjects-approx", "subjects_approx", "Approximate number of data subjects concerned."),
    ("--record-categories", "record_categories", "Categories of personal data records concerned."),
    ("--records-approx", "records_approx", "Approximate number of records concerned."),
    ("--dpo-name", "dpo_name", "Name of the DPO or contact point (Art. 33(3)(b))."),
    ("--dpo-contact", "dpo_contact", "Contact details of the DPO or contact point."),
    ("--consequences", "consequences", "Likely consequences (Art. 33(3)(c))."),
    ("--measures-taken", "measures_taken", "Measures taken (Art. 33(3)(d))."),
    ("--measures-proposed", "measures_proposed", "Measures proposed (Art. 33(3)(d))."),
    ("--controller", "controller", "The controller (name, address)."),
    ("--authority", "authority", "The competent supervisory authority."),
    ("--occurred-at", "occurred_at", "When the breach occurred (ISO-8601 with zone)."),
    ("--delay-reason", "delay_reason", "Reasons for notifying after 72 hours (Art. 33(1))."),
    ("--risk", "risk", "Risk assessment for the persons concerned."),
    ("--decision-reason", "decision_reason", "Why the breach is not notified (Art. 33(5))."),
)


def _human(case: dict[str, Any]) -> str:
    from ..fis.breach import FIELDS, format_remaining

    lines = [f"breach case {case['id']}  status {case['status']}",
             f"  aware since {case['aware_at']}, deadline {case['deadline']} - {format_remaining(case)}"
             + ("  [OVERDUE]" if case["overdue"] and case["status"] == "open" else "")]
    for f in FIELDS:
        v = case["fields"].get(f.key)
        if v not in (None, ""):
            lines.append(f"  {f.key:<20} {v}")
    if case["missing"]:
        lines.append("  missing (Art. 33(3)): " + ", ".join(case["missing"]))
    lines.append("  alerts:")
    for a in case["alerts"]:
        if isinstance(a, dict):
            lines.append(f"    {a['id']}  {a['severity']:<8} {a['rule']}: {a['summary']}")
        else:
            lines.append(f"    {a}")
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    @cli.group("breach", short_help="Personal-data breach cases (GDPR Art. 33): open, update, export the draft.")
    def breach() -> None:
        """Personal-data breach cases (GDPR Art. 33): 72 hours from awareness."""

    @breach.command("open")
    @click.option("--alert", "alerts", multiple=True, required=True, help="Alert id (repeatable).")
    @click.option("--aware-at", help="When the controller became aware (ISO-8601 with zone; default now).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def open_cmd(state: Any, alerts: tuple[str, ...], aware_at: str | None, as_json: bool) -> None:
        """Open a breach case from one or more FIS alerts."""
        from ..fis.breach import open_case, show_case
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "breach.open")
        case_id = open_case(app, ctx, list(alerts), aware_at)
        case = show_case(app, ctx, case_id, audit=False)
        emit(case, as_json, _human(case))

    def _update_options(f: Any) -> Any:
        for opt, key, help_ in reversed(_FIELD_OPTIONS):
            f = click.option(opt, key, default=None, help=help_ + " Empty text clears it.")(f)
        return f

    @breach.command("update", short_help="Record the particulars of Art. 33(3): nature, consequences, measures.")
    @click.argument("case_id")
    @_update_options
    @click.option("--status", type=click.Choice(["open", "notified", "closed"]))
    @click.option("--notified-at", help="When the authority was notified (ISO-8601; sets status notified).")
    @click.option("--aware-at", help="Correct the moment of awareness (moves the deadline).")
    @click.option("--add-alert", "add_alerts", multiple=True, help="Add an alert to the case (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def update_cmd(state: Any, case_id: str, status: str | None, notified_at: str | None, aware_at: str | None,
                   add_alerts: tuple[str, ...], as_json: bool, **fields: Any) -> None:
        """Record the particulars of Art. 33(3) and the state of the case."""
        from ..fis.breach import update_case
        from .context import cli_context

        app = state.app
        changes = {k: v for k, v in fields.items() if v is not None}
        case = update_case(app, cli_context(app, "breach.update"), case_id, changes, status=status,
                           notified_at=notified_at, aware_at=aware_at, add_alerts=add_alerts)
        emit(case, as_json, _human(case))

    @breach.command("show")
    @click.argument("case_id")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def show_cmd(state: Any, case_id: str, as_json: bool) -> None:
        """A case with its deadline, fields and alerts."""
        from ..fis.breach import show_case
        from .context import cli_context

        app = state.app
        case = show_case(app, cli_context(app, "breach.show"), case_id)
        emit(case, as_json, _human(case))

    @breach.command("list")
    @click.option("--status", type=click.Choice(["open", "notified", "closed"]))
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_cmd(state: Any, status: str | None, as_json: bool) -> None:
        """All cases, newest first, with their deadlines."""
        from ..fis.breach import format_remaining, list_cases
        from .context import cli_context

        app = state.app
        cases = list_cases(app, cli_context(app, "breach.list"), status=status)
        lines = [f"{c['id']}  {c['status']:<8} deadline {c['deadline'][:16]}  {format_remaining(c)}"
                 + ("  [OVERDUE]" if c["overdue"] and c["status"] == "open" else "") for c in cases]
        emit(cases, as_json, "\n".join(lines) or "no breach cases")

    @breach.command("export")
    @click.argument("case_id")
    @click.option("--lang", type=click.Choice(["de", "en"]), required=True)
    @click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
                  help="Output file: .md for Markdown, .html for HTML.")
    @click.option("--format", "fmt", type=click.Choice(["md", "html"]), help="Override the format from --out.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def export_cmd(state: Any, case_id: str, lang: str, out: str, fmt: str | None, as_json: bool) -> None:
        """Write the notification draft for the supervisory authority (German or English)."""
        from ..fis.breach import export_case
        from .context import cli_context

        app = state.app
        path = export_case(app, cli_context(app, "breach.export"), case_id, lang, Path(out), fmt)
        emit({"case": case_id, "out": str(path.resolve()), "lang": lang}, as_json, f"wrote {path}")
