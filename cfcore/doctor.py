"""``cf doctor`` and ``GET /ready``: is this deployment able to do its job right now?

Each check returns one ``Check`` (name, ok, one line of detail). The checks, in order:

- ``config``: the file loads and validates (a failure stops the remaining checks),
- ``keys``: every secret file of ``[keys] dir`` exists with mode 0600 (directory 0700),
- ``catalog``: the database answers, and is at the newest migration (``cf db upgrade`` otherwise),
- ``store:<name>``: each media store takes a small object, returns it unchanged, and deletes it
  (``cheap=True``, as ``/ready`` runs: one existence probe instead),
- ``capture:<source>``: each configured PBX source is run by a live capture runner (fresh
  heartbeat) and reports itself connected,
- ``clock``: the newest audit entry is not in the future (a clock set back would reorder the
  trail) and, on PostgreSQL, the database server's clock agrees within 60 s,
- ``audit-anchor``: the newest anchor outside the database is at most ``[audit] anchor_every``
  entries behind the head.

Nothing here writes to the catalog or the audit trail: a doctor run is not an access to personal
data and must not change the state it reports on.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import stat
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from .errors import CallFortError

if TYPE_CHECKING:
    from .app import App

#: Allowed difference between this machine's clock and the database server's.
CLOCK_TOLERANCE = timedelta(seconds=60)


@attrs.frozen
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def _guard(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - every failure is one line of the report
        msg = str(exc) or type(exc).__name__
        return [Check(name, False, msg.splitlines()[0][:300])]
    return out if isinstance(out, list) else [out]


# ---------------------------------------------------------------------------------- the checks
def check_keys(config: Any) -> list[Check]:
    from .secrets import CORE_SECRETS

    keys_dir = config.resolve_path(config.get("keys.dir", str, "keys"))
    names = list(CORE_SECRETS)
    if config.get("keys.provider", str, "keyring") == "keyring":
        names.append("keyring.json")
    if not keys_dir.is_dir():
        return [Check("keys", False, f"key directory {keys_dir} is missing (restore it from its backup)")]
    problems = []
    dir_mode = stat.S_IMODE(keys_dir.stat().st_mode)
    if dir_mode & 0o077:
        problems.append(f"{keys_dir} has mode {dir_mode:04o} (chmod 700)")
    for name in names:
        path = keys_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing (restore it from the backup of keys/; only 'cf init' creates keys)")
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            problems.append(f"{name} has mode {mode:04o} (chmod 600 {path})")
    if problems:
        return [Check("keys", False, "; ".join(problems))]
    return [Check("keys", True, f"{len(names)} key files in {keys_dir}, mode 0600")]


def head_revision() -> str:
    """The newest migration this CallFort version brings (read from the revision files)."""
    from alembic.script import ScriptDirectory

    from .db.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return ",".join(sorted(heads))


def catalog_revision(engine: Any) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(rows)) or None


def check_catalog(config: Any) -> list[Check]:
    from .db.catalog import Catalog

    url = config.get("catalog.url", str, "sqlite:///catalog.db")
    catalog = Catalog.from_url(url, config.base_dir)
    try:
        t0 = time.perf_counter()
        current = catalog_revision(catalog.engine)
        ms = (time.perf_counter() - t0) * 1000
    finally:
        catalog.dispose()
    head = head_revision()
    where = f"{catalog.engine.dialect.name} answered in {ms:.0f} ms"
    if current is None:
        return [Check("catalog", False, f"{where}, but holds no CallFort schema (run 'cf db upgrade')")]
    if current != head:
        return [Check("catalog", False, f"{where}, schema at revision {current}, this version needs {head} "
                                        f"(run 'cf db upgrade')")]
    return [Check("catalog", True, f"{where}, schema at the newest revision {head}")]


def check_stores(app: App, *, cheap: bool = False) -> list[Check]:
    try:
        stores = app.stores.stores
    except Exception as exc:  # noqa: BLE001 - a store that cannot even be opened
        names = app.config.get("archive.stores", list, list(app.config.section("stores")))
        msg = (str(exc) or type(exc).__name__).splitlines()[0][:300]
        return [Check(f"store:{n}", False, f"cannot be opened: {msg}") for n in names]
    out = []
    for name, store in stores.items():
        out.extend(_guard(f"store:{name}", functools.partial(_probe_store, name, store, cheap)))
    return out


def _probe_store(name: str, store: Any, cheap: bool) -> Check:
    t0 = time.perf_counter()
    if cheap:
        store.exists("doctor/probe")
        return Check(f"store:{name}", True, f"reachable ({(time.perf_counter() - t0) * 1000:.0f} ms)")
    key = f"doctor/{secrets.token_hex(8)}"
    payload = secrets.token_bytes(64)
    store.put(key, payload)
    try:
        back = store.get(key)
    finally:
        with contextlib.suppress(Exception):  # an Object Lock store may keep it: 64 harmless bytes
            store.delete(key)
    if back != payload:
        return Check(f"store:{name}", False, "an object written came back different")
    return Check(f"store:{name}", True, f"written, read back and deleted ({(time.perf_counter() - t0) * 1000:.0f} ms)")


def check_capture(app: App) -> list[Check]:
    from sqlalchemy import select

    from .capture.controller import RUNNER_STALE_SECONDS
    from .capture.runner import discover_sources
    from .db.models_capture import CaptureRunnerRow

    names = [s.name for s in discover_sources(app)]
    if not names:
        return [Check("capture", True, "no PBX source configured")]
    fresh = app.clock.now() - timedelta(seconds=RUNNER_STALE_SECONDS)
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    with app.catalog.session() as s:
        for r in s.scalars(select(CaptureRunnerRow).where(CaptureRunnerRow.stopped_at.is_(None),
                                                          CaptureRunnerRow.heartbeat_at >= fresh)):
            for src in r.sources or []:
                if isinstance(src, dict) and src.get("name") in names:
                    seen[str(src["name"])] = (f"{r.host} pid {r.pid}", src)
    out = []
    for name in names:
        if name not in seen:
            out.append(Check(f"capture:{name}", False, "no running capture runner reports this source "
                                                       "(start 'cf serve' or 'cf capture run')"))
            continue
        runner, src = seen[name]
        if src.get("connected"):
            out.append(Check(f"capture:{name}", True, f"connected (runner {runner})"))
        else:
            err = src.get("last_error") or ("login refused" if src.get("auth_failures") else "not connected")
            out.append(Check(f"capture:{name}", False, f"not connected: {str(err)[:200]} (runner {runner})"))
    return out


def check_plugin_options(app: App) -> list[Check]:
    """Each written ``[plugins.<plugin>]`` built against the options class its plugin declares
    (misspelt key, wrong type, a secret that cannot be read): one check per configured plugin."""
    from .app import DEPRECATED_SECTIONS, deprecation

    out = []
    for plugin in sorted(app.pm.plugin_options_classes()):
        try:
            where = app.plugin_section(plugin)
            if not app.config.section(where):
                continue  # installed, not configured
            app.own_options(plugin)
        except CallFortError as exc:
            out.append(Check(f"plugin:{plugin}", False, str(exc)))
            continue
        note = "options accepted"
        if where == DEPRECATED_SECTIONS.get(plugin):
            note += "; " + deprecation(app.config.path, where, f"plugins.{plugin}")
        out.append(Check(f"plugin:{plugin}", True, note))
    return out


def check_notifiers(app: App) -> list[Check]:
    """Each ``[notify.<name>]`` built once against the options its plugin declares (misspelt
    option, wrong type, a secret that cannot be read): one check per notifier, none without any."""
    from .fis.deliver import check_notifiers as build_each

    return [Check(f"notify:{name}", problem == "ok", "options accepted" if problem == "ok" else problem)
            for name, problem in build_each(app).items()]


def check_clock(app: App) -> list[Check]:
    from sqlalchemy import func, select, text

    from .clock import FrozenClock
    from .db.models import AuditEntry

    now = app.clock.now()
    # a pinned clock (tests) differs from the database server's on purpose
    compare = not isinstance(app.clock, FrozenClock)
    with app.catalog.session() as s:
        newest = s.scalar(select(func.max(AuditEntry.at)))
        server = (s.execute(text("SELECT now()")).scalar()
                  if compare and s.bind is not None and s.bind.dialect.name == "postgresql" else None)
    if newest is not None:
        if newest.tzinfo is None:
            from datetime import UTC

            newest = newest.replace(tzinfo=UTC)
        if newest - now > CLOCK_TOLERANCE:
            return [Check("clock", False, f"this machine says {now:%Y-%m-%d %H:%M:%S} UTC, but the newest audit "
                                          f"entry is from {newest:%Y-%m-%d %H:%M:%S} UTC (clock set back? check NTP)")]
    if server is not None and abs(server - now) > CLOCK_TOLERANCE:
        return [Check("clock", False, f"this machine and the database server differ by "
                                      f"{abs((server - now).total_seconds()):.0f} s (check NTP on both)")]
    extra = ", agrees with the database server" if server is not None else ""
    return [Check("clock", True, f"{now:%Y-%m-%d %H:%M:%S} UTC, not before the newest audit entry{extra}")]


def check_anchor(app: App) -> list[Check]:
    from .db.models import AuditHead

    with app.catalog.session() as s:
        head = s.get(AuditHead, 1)
        head_seq = head.seq if head is not None else 0
    anchor, problem = app.audit.newest_anchor()
    if problem:
        return [Check("audit-anchor", False, problem)]
    every = app.audit.anchor_every
    anchored = int(anchor["seq"]) if anchor else 0
    if anchored > head_seq:
        return [Check("audit-anchor", False, f"the newest anchor names entry {anchored}, the trail ends at "
                                             f"{head_seq} (entries removed? run 'cf audit verify')")]
    if head_seq - anchored > every:
        return [Check("audit-anchor", False, f"{head_seq - anchored} entries since the newest anchor "
                                             f"(at most {every}; run 'cf audit checkpoint')")]
    where = f"entry {anchored}" if anchor else "none yet"
    return [Check("audit-anchor", True, f"newest anchor {where}, trail at {head_seq} (within {every})")]


# ---------------------------------------------------------------------------------- runs
def run_checks(config_path: str | os.PathLike[str] | None = None, *, app: App | None = None, cheap: bool = False,
               clock: Any = None) -> list[Check]:
    """Every check; with ``app`` the open deployment is used (``/ready``), else it is opened here
    without changing anything (no migration)."""
    from .config import load_config

    results: list[Check] = []
    if app is None:
        try:
            config = load_config(config_path)
        except Exception as exc:  # noqa: BLE001
            return [Check("config", False, str(exc))]
        results.append(Check("config", True, str(config.path)))
    else:
        config = app.config
        results.append(Check("config", True, str(config.path)))
    results += _guard("keys", lambda: check_keys(config))
    results += _guard("catalog", lambda: check_catalog(config))
    if not all(c.ok for c in results):
        return results  # the other checks need the keys and the schema
    own = app is None
    if app is None:
        from .app import App

        try:
            app = App(config, upgrade=False, **({"clock": clock} if clock is not None else {}))
        except Exception as exc:  # noqa: BLE001
            return [*results, Check("deployment", False, str(exc))]
    opened: App = app
    try:
        results += _guard("stores", lambda: check_stores(opened, cheap=cheap))
        if not cheap:
            results += _guard("capture", lambda: check_capture(opened))
        results += _guard("plugins", lambda: check_plugin_options(opened))
        results += _guard("notifiers", lambda: check_notifiers(opened))
        results += _guard("clock", lambda: check_clock(opened))
        results += _guard("audit-anchor", lambda: check_anchor(opened))
    finally:
        if own:
            opened.close()
    return results
