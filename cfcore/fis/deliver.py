"""Getting alerts out: every alert to every configured notifier, retried until delivered.

A notifier is a ``[notify.<name>]`` section whose ``type`` names a ``cf_notifiers`` registration
(``smtp``, ``webhook``); the other keys are its options (secrets as ``{ env = ".." }`` /
``{ file = ".." }``); ``enabled = false`` switches it off. Each alert gets one ``fis_deliveries`` row
per notifier. ``deliver_pending`` sends what is due; a failed attempt is retried after
``[fis.delivery] base_seconds`` (30) doubling per attempt up to ``max_seconds`` (3600), forever:
an alert is never dropped. Every attempt is audited as ``fis.delivery`` (outcome ok or failed).

Two workers (a scan and ``cf serve``) never send the same delivery at once: a worker claims a
due row by moving its ``next_try`` forward in a conditional update before it sends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hookspecs.types import Notifier

from ..authority import system_context
from ..db.models_fis import FisAlert, FisDelivery
from ..errors import ConfigError
from .views import to_alert

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

_RESERVED = ("type", "enabled")
#: How long a claimed delivery stays claimed if its worker dies mid-send.
CLAIM_SECONDS = 300


@attrs.frozen(kw_only=True)
class DeliveryResult:
    alert_id: str
    notifier: str
    ok: bool
    attempts: int
    error: str | None = None
    next_try: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["next_try"] = self.next_try.isoformat() if self.next_try else None
        return d


def notifier_sections(app: App) -> dict[str, Mapping[str, Any]]:
    """The enabled ``[notify.<name>]`` sections, validated."""
    out = {}
    for name, opts in app.config.section("notify").items():
        if not isinstance(opts, Mapping) or not isinstance(opts.get("type"), str):
            raise ConfigError(f"{app.config.path}: notify.{name}.type is required (e.g. \"smtp\" or \"webhook\")")
        enabled = opts.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{app.config.path}: notify.{name}.enabled must be true or false")
        if enabled:
            out[name] = opts
    return out


def build_notifier(app: App, name: str) -> Notifier:
    sections = notifier_sections(app)
    if name not in sections:
        raise ConfigError(f"notifier '{name}' is not configured (or disabled)",
                          hint="choose one of: " + (", ".join(sorted(sections)) or "(none: add a [notify.<name>] section)"))
    opts = sections[name]
    types = app.pm.notifier_types()
    kind = opts["type"]
    if kind not in types:
        raise ConfigError(f"{app.config.path}: notify.{name}.type '{kind}' is not available",
                          hint="choose one of: " + (", ".join(sorted(types)) or "(no notifier plugin installed)"))
    options = {k: v for k, v in opts.items() if k not in _RESERVED}
    try:
        reg = types[kind]
        ctx = app.plugin_context(name, plugin=app.pm.registered_by("cf_notifiers", kind))
        return reg.create(app.plugin_options(reg, options, f"notify.{name}"), ctx)  # type: ignore[no-any-return]
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{app.config.path}: [notify.{name}]: {exc}") from None


def check_notifiers(app: App) -> dict[str, str]:
    """Build every configured notifier once: name -> "ok" or the configuration error."""
    out = {}
    for name in notifier_sections(app):
        try:
            build_notifier(app, name)
            out[name] = "ok"
        except ConfigError as exc:
            out[name] = str(exc)
    return out


def backoff(app: App, attempts: int) -> timedelta:
    base = app.config.get("fis.delivery.base_seconds", float, 30.0)
    cap = app.config.get("fis.delivery.max_seconds", float, 3600.0)
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def queue_deliveries(app: App, s: Session, alert: FisAlert, now: datetime) -> None:
    for name in notifier_sections(app):
        s.add(FisDelivery(alert_id=alert.id, notifier=name, attempts=0, next_try=now, created_at=now))


def _claim(app: App, delivery_id: int, now: datetime) -> bool:
    with app.catalog.session() as s:
        res = s.execute(update(FisDelivery)
                        .where(FisDelivery.id == delivery_id, FisDelivery.delivered_at.is_(None),
                               FisDelivery.next_try <= now)
                        .values(next_try=now + timedelta(seconds=CLAIM_SECONDS)))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def _safe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]


def deliver_pending(app: App, *, limit: int = 500, alert_ids: tuple[str, ...] = ()) -> list[DeliveryResult]:
    """Send every due delivery (or those of ``alert_ids``) once; returns what happened."""
    now = app.clock.now()
    with app.catalog.session() as s:
        q = (select(FisDelivery.id, FisDelivery.alert_id, FisDelivery.notifier)
             .where(FisDelivery.delivered_at.is_(None), FisDelivery.next_try <= now)
             .order_by(FisDelivery.next_try, FisDelivery.id).limit(limit))
        if alert_ids:
            q = q.where(FisDelivery.alert_id.in_(alert_ids))
        due = s.execute(q).all()
    notifiers: dict[str, Notifier | ConfigError] = {}
    results = []
    for delivery_id, alert_id, name in due:
        if not _claim(app, delivery_id, now):
            continue  # another worker has it
        if name not in notifiers:
            try:
                notifiers[name] = build_notifier(app, name)
            except ConfigError as exc:
                notifiers[name] = exc
        notifier = notifiers[name]
        with app.catalog.session() as s:
            alert = to_alert(s.get_one(FisAlert, alert_id))
        error = None
        if isinstance(notifier, ConfigError):
            error = f"ConfigError: {notifier}"[:300]
        else:
            try:
                notifier.send(alert)
            except Exception as exc:  # any failure of a notifier is retried later, never lost
                error = _safe_error(exc)
                log.warning("delivery of alert %s to %s failed: %s", alert_id, name, error)
        done = app.clock.now()
        with app.catalog.session() as s:
            row = s.get_one(FisDelivery, delivery_id)
            row.attempts += 1
            if error is None:
                row.delivered_at, row.last_error = done, None
            else:
                row.last_error = error
                row.next_try = done + backoff(app, row.attempts)
            app.audit.append(s, system_context("fis.deliver"), "fis.delivery", "fis_alert", alert_id, "ok" if error is None else "failed",
                             {"notifier": name, "attempt": row.attempts, **({"error": error} if error else {})})
            results.append(DeliveryResult(alert_id=alert_id, notifier=name, ok=error is None,
                                          attempts=row.attempts, error=error,
                                          next_try=None if error is None else row.next_try))
    return results


def pending_count(app: App) -> int:
    from sqlalchemy import func

    with app.catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(FisDelivery).where(FisDelivery.delivered_at.is_(None))) or 0)
