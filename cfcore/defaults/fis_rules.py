"""In-tree default plugin: the irregularity rules of the fraud information system (FIS).

Each rule is a pure function over audit entries (``hookspecs.types.AuditView``); it yields
``(severity, summary, evidence)`` and the core turns the triples into alerts (see
``cfcore.fis.scan``). Summaries name users by their user name (an id) and never carry customer data;
evidence is ``audit:<seq>`` and ``recording:<id>``.

Options the core itself reads from every rule: ``window_seconds`` (a rule that counts in a sliding
window gets ``2 × window_seconds`` of earlier entries to look back on), ``lookback_seconds`` and
``lookback_entries``. ``enabled`` and ``severity`` are handled by the core for every rule.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookspecs import hookimpl
from hookspecs.types import AuditView, FisRule, Severity

Finding = tuple[Severity, str, tuple[str, ...]]

#: Outcomes that mean "it happened" (the guard audits ``allowed``, services ``ok``).
_DONE = ("ok", "allowed", "approved", "executed")


def _ev(entries: Iterable[AuditView]) -> tuple[str, ...]:
    return tuple(f"audit:{e.seq}" for e in entries)


def _matches(action: str, patterns: Sequence[str]) -> bool:
    """Exact match, or prefix match for a pattern ending in ``.`` or ``*``."""
    for p in patterns:
        if p.endswith("*"):
            if action.startswith(p[:-1]):
                return True
        elif p.endswith("."):
            if action.startswith(p):
                return True
        elif action == p:
            return True
    return False


def _threshold_crossings(entries: Sequence[AuditView], key: Callable[[AuditView], str | None],
                         threshold: int, window: timedelta) -> Iterator[tuple[str, list[AuditView]]]:
    """Per key, the moments the number of entries in the sliding window reaches ``threshold``
    (from below). A burst that goes on gives one crossing, not one per extra entry; the result
    depends only on entries within the window, so overlapping scans agree."""
    threshold = max(1, int(threshold))
    win: dict[str, deque[AuditView]] = defaultdict(deque)
    prev_count: dict[str, int] = defaultdict(int)
    for e in entries:
        k = key(e)
        if k is None:
            continue
        q = win[k]
        q.append(e)
        while q and q[0].at <= e.at - window:
            q.popleft()
        count = len(q)
        if count >= threshold > prev_count[k]:
            yield k, list(q)
        prev_count[k] = count


# --------------------------------------------------------------------------- mass access


def mass_access(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    actions = list(options["actions"])
    outcomes = set(options["outcomes"])
    window = timedelta(seconds=float(options["window_seconds"]))
    relevant = [e for e in entries if _matches(e.action, actions) and e.outcome in outcomes
                and e.user not in options["exclude_users"]]
    for user, hits in _threshold_crossings(relevant, lambda e: e.user, int(options["threshold"]), window):
        recs = len({e.target_id for e in hits})
        yield (Severity.HIGH,
               f"user '{user}' played or exported {len(hits)} times ({recs} recordings) within "
               f"{int(window.total_seconds())} s (threshold {options['threshold']})",
               _ev(hits))


# --------------------------------------------------------------------------- off hours


def _hhmm(value: str) -> time:
    h, _, m = str(value).partition(":")
    return time(int(h), int(m or 0))


def off_hours(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    try:
        tz = ZoneInfo(str(options["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    start, end = _hhmm(options["start"]), _hhmm(options["end"])
    workdays = {int(d) for d in options["workdays"]}
    actions, excluded = list(options["actions"]), list(options["exclude_actions"])
    groups: dict[tuple[str, str], list[AuditView]] = defaultdict(list)
    for e in entries:
        if e.user in options["exclude_users"] or not _matches(e.action, actions) or _matches(e.action, excluded):
            continue
        local = e.at.astimezone(tz)
        in_hours = local.isoweekday() in workdays and (
            start <= local.time() < end if start <= end else (local.time() >= start or local.time() < end))
        if not in_hours:
            groups[(e.user, local.date().isoformat())].append(e)
    for (user, day), hits in groups.items():
        first, last = hits[0].at.astimezone(tz), hits[-1].at.astimezone(tz)
        yield (Severity.WARNING,
               f"user '{user}' accessed recordings or subject data outside working hours on {day} "
               f"({len(hits)} entries, {first:%H:%M}-{last:%H:%M} {tz.key})",
               _ev(hits))


# --------------------------------------------------------------------------- bursts


def denied_burst(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    outcomes = set(options["outcomes"])
    ignore = list(options["ignore_actions"])
    relevant = [e for e in entries if e.outcome in outcomes and not _matches(e.action, ignore)]
    window = timedelta(seconds=float(options["window_seconds"]))
    for user, hits in _threshold_crossings(relevant, lambda e: e.user, int(options["threshold"]), window):
        yield (Severity.HIGH,
               f"user '{user}' was denied access {len(hits)} times within {int(window.total_seconds())} s",
               _ev(hits))


def login_failures(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    actions, outcomes = list(options["actions"]), set(options["outcomes"])
    relevant = [e for e in entries if _matches(e.action, actions) and e.outcome in outcomes]
    window = timedelta(seconds=float(options["window_seconds"]))
    threshold = int(options["threshold"])
    seen: set[tuple[str, ...]] = set()
    for k, hits in _threshold_crossings(relevant, lambda e: f"account '{e.target_id or e.user}'", threshold, window):
        seen.add(_ev(hits))
        yield (Severity.HIGH, f"{len(hits)} failed logins for {k} within {int(window.total_seconds())} s", _ev(hits))
    for k, hits in _threshold_crossings(relevant, lambda e: f"address {e.ip}", threshold, window):
        if _ev(hits) not in seen:  # one account from one address: already reported above
            yield (Severity.HIGH, f"{len(hits)} failed logins from {k} within {int(window.total_seconds())} s",
                   _ev(hits))


# --------------------------------------------------------------------------- protected recordings


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() in ("true", "1", "yes"))


def _parse_dt(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def protected_change(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    """Refused attempts (access denied, a store lock refusing a delete) and changes that touched a
    held recording. Four-eyes requests themselves are the normal path and are not reported."""
    actions, refused = list(options["actions"]), set(options["refused_outcomes"])
    lock_prefix = str(options["lock_error_prefix"])
    for e in entries:
        if not _matches(e.action, actions):
            continue
        held = _truthy(e.detail.get("legal_hold"))
        until = _parse_dt(e.detail.get("retention_until"))
        unexpired = until is not None and until > e.at
        ev = _ev([e]) + ((f"recording:{e.target_id}",) if e.target_kind == "recording" and e.target_id else ())
        what = "held " if held else "unexpired " if unexpired else ""
        target = f"{what}{e.target_kind} {e.target_id or ''}".rstrip()
        if e.outcome in refused:
            yield (Severity.HIGH, f"user '{e.user}' attempted {e.action} on {target} (outcome {e.outcome})", ev)
        elif lock_prefix and e.outcome == "pending" and str(e.detail.get("error", "")).startswith(lock_prefix):
            yield (Severity.HIGH, f"{e.action} of {target} was refused by a store's retention lock", ev)
        elif e.outcome in _DONE and held and e.action != "hold.release":
            yield (Severity.CRITICAL, f"{e.action} by '{e.user}' changed {target} under legal hold", ev)


# --------------------------------------------------------------------------- four-eyes


def self_approval(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    actions, keys = list(options["actions"]), list(options["requester_keys"])
    patterns = [str(p).lower() for p in options["reason_patterns"]]
    for e in entries:
        if not _matches(e.action, actions):
            continue
        requester = next((e.detail[k] for k in keys if e.detail.get(k)), None)
        approver = e.detail.get("approver") or e.user
        reason = str(e.detail.get("reason", "")).lower()
        own = requester is not None and (requester == e.user or (e.outcome in _DONE and requester == approver))
        if own or any(p in reason for p in patterns):
            done = e.outcome in _DONE
            about = f"{e.detail.get('action', e.action)} {e.detail.get('target_id') or ''}".rstrip()
            yield (Severity.CRITICAL if done else Severity.HIGH,
                   f"user '{e.user}' {'approved' if done else 'attempted to approve'} their own request "
                   f"{e.target_id or ''} ({about})".replace("  ", " "),
                   _ev([e]))


# --------------------------------------------------------------------------- retention, keys, roles


def retention_shortened(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    shorten, changes = list(options["actions"]), list(options["change_actions"])
    for e in entries:
        if e.outcome not in _DONE:
            continue
        shorter = _matches(e.action, shorten)
        if not shorter and _matches(e.action, changes):
            before = next((_parse_dt(e.detail.get(k)) for k in options["before_keys"] if e.detail.get(k)), None)
            after = next((_parse_dt(e.detail.get(k)) for k in options["after_keys"] if e.detail.get(k)), None)
            shorter = before is not None and after is not None and after < before
        if shorter:
            ev = _ev([e]) + ((f"recording:{e.target_id}",) if e.target_kind == "recording" and e.target_id else ())
            yield (Severity.WARNING, f"retention of {e.target_kind} {e.target_id or ''} was shortened by "
                                     f"'{e.user}' ({e.action})", ev)


def key_role_change(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    actions, outcomes = list(options["actions"]), set(options["outcomes"])
    for e in entries:
        if _matches(e.action, actions) and e.outcome in outcomes:
            yield (Severity.WARNING, f"{e.action} on {e.target_kind} {e.target_id or ''} by '{e.user}'".replace("  ", " "),
                   _ev([e]))


# --------------------------------------------------------------------------- the trail itself


def audit_gaps(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    tolerance = timedelta(seconds=float(options["tolerance_seconds"]))
    silence = float(options["max_silence_seconds"])
    prev: AuditView | None = None
    for e in entries:
        if prev is not None:
            if e.seq != prev.seq + 1:
                missing = f"{prev.seq + 1}" if e.seq == prev.seq + 2 else f"{prev.seq + 1}-{e.seq - 1}"
                yield (Severity.CRITICAL, f"audit entries {missing} are missing from the trail",
                       (f"audit:{prev.seq}", f"audit:{e.seq}"))
            if e.at < prev.at - tolerance:
                yield (Severity.HIGH,
                       f"time goes backwards in the audit trail: entry {e.seq} is "
                       f"{(prev.at - e.at).total_seconds():.0f} s before entry {prev.seq}",
                       (f"audit:{prev.seq}", f"audit:{e.seq}"))
            if silence > 0 and (e.at - prev.at).total_seconds() > silence:
                yield (Severity.WARNING,
                       f"no audit entries for {(e.at - prev.at).total_seconds() / 3600:.1f} h "
                       f"between entries {prev.seq} and {e.seq}",
                       (f"audit:{prev.seq}", f"audit:{e.seq}"))
        prev = e


def broken_copy(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    """A store held a missing or damaged copy of a media object (found by a read or a store check)."""
    actions = list(options["actions"])
    for e in entries:
        if _matches(e.action, actions):
            key = e.detail.get("key", "")
            problem = e.detail.get("problem", "broken")
            yield (Severity.HIGH, f"copy of a media object in store '{e.target_id}' is {problem}",
                   _ev([e]) + ((f"object:{key}",) if key else ()))


def capture_loss(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    """A recording was archived with less consented customer audio than the capture source
    reported (segments past the end of the files, a consent without customer audio)."""
    actions = list(options["actions"])
    for e in entries:
        if _matches(e.action, actions) and e.outcome == "warning":
            warnings = e.detail.get("warnings") or []
            first = str(warnings[0]) if isinstance(warnings, list) and warnings else "see the audit entry"
            yield (Severity.WARNING,
                   f"recording {e.target_id or ''} from source '{e.detail.get('source', '?')}' lost consented "
                   f"audio at archiving: {first}", _ev([e]) + ((f"recording:{e.target_id}",) if e.target_id else ()))


def untrusted_consent(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    """A capture source not trusted to witness consent reported a customer's opt-in (a buggy or
    hostile adapter could make up consent for any call); the core refused it."""
    actions = list(options["actions"])
    for e in entries:
        if _matches(e.action, actions) and e.outcome == "refused":
            yield (Severity.HIGH,
                   f"capture source '{e.detail.get('source', '?')}' reported a customer opt-in for call "
                   f"{e.target_id or '?'} but is not a consent witness; refused",
                   _ev([e]) + ((f"call:{e.target_id}",) if e.target_id else ()))


RULES = (
    FisRule(
        name="mass-access", check=mass_access,
        description="one user plays or exports many recordings in a short time",
        default_options={"actions": ["recording.play", "recording.export", "recording.download"],
                         "outcomes": ["ok", "allowed"], "threshold": 25, "window_seconds": 3600,
                         "exclude_users": []}),
    FisRule(
        name="off-hours", check=off_hours,
        description="recordings or subject data accessed outside working hours",
        default_options={"timezone": "Europe/Berlin", "start": "07:00", "end": "20:00",
                         "workdays": [1, 2, 3, 4, 5],
                         "actions": ["recording.", "dsar.", "subject.", "audit.read", "audit.export"],
                         "exclude_actions": ["recording.archive", "recording.purge"],
                         "exclude_users": ["system"]}),
    FisRule(
        name="denied-burst", check=denied_burst,
        description="a burst of denied accesses by one user",
        default_options={"outcomes": ["denied"], "threshold": 5, "window_seconds": 600,
                         "ignore_actions": ["auth."]}),
    FisRule(
        name="login-failures", check=login_failures,
        description="a burst of failed logins for one account or from one address",
        default_options={"actions": ["auth.login", "auth.lockout"], "outcomes": ["failed", "refused", "locked"],
                         "threshold": 5,
                         "window_seconds": 900}),
    FisRule(
        name="protected-change", check=protected_change,
        description="attempt to delete or alter a held or unexpired recording",
        default_options={"actions": ["recording.delete", "recording.erase", "recording.purge", "recording.alter",
                                     "recording.update", "retention.shorten", "hold.release", "media.delete"],
                         "refused_outcomes": ["denied", "refused", "conflict", "rejected", "blocked"],
                         "lock_error_prefix": "locked"}),
    FisRule(
        name="self-approval", check=self_approval,
        description="attempt to approve one's own four-eyes request",
        default_options={"actions": ["approval.approve"],
                         "requester_keys": ["requested_by", "requester"],
                         "reason_patterns": ["own request", "own roles", "self-approval"]}),
    FisRule(
        name="retention-shortened", check=retention_shortened,
        description="the retention period of a recording was shortened",
        default_options={"actions": ["retention.shorten"],
                         "change_actions": ["retention.apply", "retention.set", "retention.change"],
                         "before_keys": ["old_until", "old_retention_until"],
                         "after_keys": ["new_until", "until", "new_retention_until"]}),
    FisRule(
        name="key-role-change", check=key_role_change,
        description="keys rotated or destroyed, roles granted or revoked",
        default_options={"actions": ["keys.", "key.", "kek.", "roles.", "role.", "user.bootstrap"],
                         "outcomes": ["ok", "allowed", "approved", "executed"]}),
    FisRule(
        name="broken-copy", check=broken_copy,
        description="a store held a missing or damaged copy of a media object",
        default_options={"actions": ["store.copy_broken"]}),
    FisRule(
        name="capture-loss", check=capture_loss,
        description="consented customer audio did not fit the recording's files (clamped or dropped)",
        default_options={"actions": ["recording.capture_warning"]}),
    FisRule(
        name="untrusted-consent", check=untrusted_consent,
        description="a capture source not trusted to witness consent reported a customer's opt-in",
        default_options={"actions": ["call.consent"]}),
    FisRule(
        name="audit-gaps", check=audit_gaps,
        description="missing entries or time going backwards in the audit trail",
        default_options={"tolerance_seconds": 2, "max_silence_seconds": 0, "lookback_entries": 1}),
)


@hookimpl
def cf_fis_rules() -> list[FisRule]:
    return list(RULES)
