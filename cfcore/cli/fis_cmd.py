"""``cf fis``: integrity scrubs and irregularity scan, alerts, deliveries, rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .output import emit

if TYPE_CHECKING:
    from ..app import App


def _guard(app: App, function: str, what: str) -> Any:
    from ..fis.alerts import authorize_read
    from .context import cli_context

    ctx = cli_context(app, function)
    authorize_read(app, ctx, what)
    return ctx


def _alert_line(a: dict[str, Any]) -> str:
    pending = [d["notifier"] for d in a.get("deliveries", []) if not d["delivered_at"]]
    tail = f"  [pending: {', '.join(pending)}]" if pending else ""
    return f"{a['id']}  {a['raised_at'][:19]}  {a['severity']:<8} {a['rule']:<22} {a['summary']}{tail}"


def register(cli: click.Group) -> None:
    @cli.group("fis")
    def fis() -> None:
        """Fraud information system: integrity scrubs, irregularity alerts."""

    @fis.command("scan")
    @click.option("--no-scrub", is_flag=True, help="Only the rules over new audit entries.")
    @click.option("--quick", is_flag=True, help="Scrub objects by presence and size only (no decryption).")
    @click.option("--no-deliver", is_flag=True, help="Store alerts but do not send them now.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def scan_cmd(state: Any, no_scrub: bool, quick: bool, no_deliver: bool, as_json: bool) -> None:
        """Run the scrubs and the rules over the audit entries since the last scan."""
        from ..fis.scan import scan

        app = state.app
        ctx = _guard(app, "fis.scan", "scan")
        rep = scan(app, ctx, scrub=not no_scrub, content=not quick, deliver=not no_deliver)
        lines = []
        if rep.scrub:
            parts = []
            for name, info in rep.scrub.checks.items():
                if "error" in info:
                    parts.append(f"{name} FAILED")
                elif "skipped" in info:
                    parts.append(f"{name} skipped")
                else:
                    parts.append(f"{name} {'ok' if not info.get('problems') else str(info['problems']) + ' problem(s)'}"
                                 f" ({info.get('checked', 0)} checked)")
            lines.append("scrubs: " + ", ".join(parts))
        if rep.entries:
            lines.append(f"rules: {len(rep.rules)} over audit entries {rep.from_seq + 1}..{rep.to_seq} "
                         f"({rep.entries} new)")
        else:
            lines.append(f"rules: {len(rep.rules)}, no new audit entries since {rep.from_seq}")
        for name, err in rep.rule_errors.items():
            lines.append(f"  rule {name} FAILED: {err}")
        lines.append(f"new alerts: {len(rep.new_alerts)}")
        lines += ["  " + _alert_line(a) for a in rep.new_alerts]
        if rep.deliveries:
            ok = sum(1 for d in rep.deliveries if d.ok)
            lines.append(f"deliveries: {ok} delivered, {len(rep.deliveries) - ok} failed (retried later)")
            lines += [f"  {d.alert_id} -> {d.notifier}: {d.error}" for d in rep.deliveries if not d.ok]
        emit(rep.as_dict(), as_json, "\n".join(lines))

    @fis.command("alerts")
    @click.option("--rule", help="Only alerts of this rule.")
    @click.option("--severity", type=click.Choice(["info", "warning", "high", "critical"]),
                  help="Only alerts of this severity or higher.")
    @click.option("--undelivered", is_flag=True, help="Only alerts with a delivery still pending.")
    @click.option("--limit", type=int, default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def alerts_cmd(state: Any, rule: str | None, severity: str | None, undelivered: bool, limit: int,
                   as_json: bool) -> None:
        """List FIS alerts, newest first."""
        from hookspecs.types import Severity

        from ..fis.alerts import alert_dict, list_alerts

        app = state.app
        _guard(app, "fis.alerts", "alerts")
        rows = list_alerts(app, rule=rule, min_severity=Severity(severity) if severity else None,
                           undelivered=undelivered, limit=limit)
        data = [alert_dict(r) for r in rows]
        emit(data, as_json, "\n".join(_alert_line(a) for a in data) or "no alerts")

    @fis.command("show")
    @click.argument("alert_id")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def show_cmd(state: Any, alert_id: str, as_json: bool) -> None:
        """One alert with its evidence and deliveries."""
        from ..fis.alerts import alert_dict, get_alert

        app = state.app
        _guard(app, "fis.show", f"alert {alert_id}")
        with app.catalog.session() as s:
            data = alert_dict(get_alert(s, alert_id))
        lines = [_alert_line(data), "evidence:"] + [f"  {e}" for e in data["evidence"]] + ["deliveries:"]
        lines += [f"  {d['notifier']}: " + (f"delivered {d['delivered_at']}" if d["delivered_at"] else
                                            f"pending, {d['attempts']} attempt(s), next {d['next_try']}"
                                            + (f", last error: {d['last_error']}" if d["last_error"] else ""))
                  for d in data["deliveries"]]
        emit(data, as_json, "\n".join(lines))

    @fis.command("deliver")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def deliver_cmd(state: Any, as_json: bool) -> None:
        """Send the alert deliveries that are due now (failed ones are retried with back-off)."""
        from ..fis.deliver import deliver_pending, pending_count

        app = state.app
        _guard(app, "fis.deliver", "deliver")
        res = deliver_pending(app)
        left = pending_count(app)
        lines = [f"{d.alert_id} -> {d.notifier}: " + ("delivered" if d.ok else f"failed ({d.error}), next try {d.next_try}")
                 for d in res]
        lines.append(f"{left} deliveries pending")
        emit({"deliveries": [d.as_dict() for d in res], "pending": left}, as_json, "\n".join(lines))

    @fis.command("rules")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def rules_cmd(state: Any, as_json: bool) -> None:
        """The irregularity rules with their effective options ([fis.rules.<name>])."""
        from ..fis.deliver import check_notifiers
        from ..fis.rules import active_rules

        app = state.app
        _guard(app, "fis.rules", "rules")
        rules = [r.as_dict() for r in active_rules(app)]
        notifiers = check_notifiers(app)
        lines = [f"{r['name']:<22} {'on ' if r['enabled'] else 'off'} {r['description']}" for r in rules]
        lines.append("notifiers: " + (", ".join(f"{n} ({s})" for n, s in notifiers.items()) or "none configured"))
        emit({"rules": rules, "notifiers": notifiers}, as_json, "\n".join(lines))
