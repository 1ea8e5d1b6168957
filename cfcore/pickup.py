"""The pickup directory: finished recordings dropped as files, archived by every worker at once.

A producer (a PBX's export, a recorder appliance, a migration script) writes, per call,
``<name>.wav`` (the advisor's voice, WAV PCM or G.711), optionally ``<name>.customer.wav``, and
*last* ``<name>.json`` (written to a temporary name and renamed, so that it appears complete)::

    {"advisor_id": "A1", "started_at": "2026-11-28T08:00:00+00:00", "direction": "in",
     "customer_ids": ["K-17"], "customer_numbers": ["+4930…"], "call_id": "optional, default <name>"}

Two jobs of ``cf serve`` share the work (issue 20, ``cfcore.leases``):

* ``pickup.scan`` (scope ``cluster``: one worker at a time, with fail-over) lists the directory
  and queues one work item per ``<name>.json`` (queue ``pickup``, key ``<name>``).
* ``pickup.ingest`` (scope ``worker``: every worker) claims items one by one and archives them
  through ``ingest.ingest_call`` as source ``[capture] pickup_source`` with the call id ``<name>``. The
  archive is idempotent (a call already archived returns its id), the files are removed only
  after the archive committed, and the item is marked done only after that: a worker killed at
  any point leaves an item whose claim lapses and which another worker finishes, without a
  second recording. A file that cannot be archived (bad WAV, bad JSON) is moved to ``failed/``
  and audited (``pickup.failed``); a transient error (a store down) is retried with back-off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookspecs.types import ChannelFile, ChannelRole, Direction, FinishedCall

from . import leases
from .authority import system_context
from .errors import CallFortError, InputError

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

QUEUE = "pickup"
SCAN_JOB, INGEST_JOB = "pickup.scan", "pickup.ingest"


def pickup_dir(app: App) -> Path | None:
    d = app.config.get("capture.pickup_dir", str, "")
    return app.config.resolve_path(d) if d else None


def _source(app: App) -> str:
    return app.config.get("capture.pickup_source", str, "pickup")


def _stem_ok(stem: str) -> bool:
    return bool(stem) and not stem.startswith(".") and len(stem) <= 200 and stem.isprintable()


def scan(app: App) -> int:
    """Queue every complete call of the directory that is not queued yet; returns how many.

    One query for the states of all the directory's calls; only new calls' markers are read, and
    they are queued in one transaction (a scan of a large backlog costs the workers little)."""
    directory = pickup_dir(app)
    if directory is None or not directory.is_dir():
        return 0
    stems = sorted(p.stem for p in directory.glob("*.json") if _stem_ok(p.stem))
    if not stems:
        return 0
    known = leases.states(app, QUEUE, stems)
    new: dict[str, dict[str, Any]] = {}
    again: dict[str, dict[str, Any]] = {}
    for stem in stems:
        state = known.get(stem)
        if state is not None and state != "done":
            continue  # queued, being archived, or failed (its files were moved away)
        payload = _payload(directory / f"{stem}.json")
        if payload is None:
            continue
        # an item already done whose files are back (delivered again, or their removal failed) is
        # queued again; the archive step itself never makes a second recording of the same call
        (again if state == "done" else new)[stem] = payload
    queued = leases.enqueue_many(app, QUEUE, new)
    for stem, payload in again.items():
        queued += leases.enqueue(app, QUEUE, stem, payload, rearm_done=True)
    return queued


def _payload(meta_path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        return {"meta": meta}
    except FileNotFoundError:
        return None  # taken away meanwhile (archived by a worker)
    except (ValueError, UnicodeDecodeError) as exc:
        return {"invalid": f"{meta_path.name}: {exc}"[:300]}


def _call(app: App, directory: Path, stem: str, meta: dict[str, Any]) -> FinishedCall:
    adv = directory / f"{stem}.wav"
    files = [ChannelFile(role=ChannelRole.ADVISOR, path=adv)]
    cus = directory / f"{stem}.customer.wav"
    if cus.exists():
        files.append(ChannelFile(role=ChannelRole.CUSTOMER, path=cus))
    advisor = meta.get("advisor_id")
    if not isinstance(advisor, str) or not advisor:
        raise InputError(f"{stem}.json: advisor_id is required")
    started = meta.get("started_at")
    try:
        started_at = datetime.fromisoformat(started) if isinstance(started, str) else None
    except ValueError:
        started_at = None
    if started_at is None or started_at.tzinfo is None:
        raise InputError(f"{stem}.json: started_at must be an ISO time with a zone offset")
    try:
        direction = Direction(meta.get("direction", "in"))
    except ValueError:
        raise InputError(f"{stem}.json: direction must be in, out or internal") from None
    call_id = str(meta.get("call_id") or stem)
    return FinishedCall(call_id=call_id, source=_source(app), advisor_id=advisor, started_at=started_at.astimezone(UTC),
                        direction=direction, files=files, segments=(), pbx_call_id=call_id,
                        customer_ids=[str(x) for x in meta.get("customer_ids", [])],
                        customer_numbers=[str(x) for x in meta.get("customer_numbers", [])])


def _remove(directory: Path, stem: str) -> None:
    for name in (f"{stem}.customer.wav", f"{stem}.wav", f"{stem}.json"):  # the marker last
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def _quarantine(directory: Path, stem: str) -> None:
    failed = directory / "failed"
    failed.mkdir(exist_ok=True)
    for name in (f"{stem}.customer.wav", f"{stem}.wav", f"{stem}.json"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).replace(failed / name)


class _KeepClaimed:
    """Renews an item's claim every heartbeat while it is worked on (a large file, a slow store)."""

    def __init__(self, app: App, item: leases.WorkItem) -> None:
        self.app, self.item = app, item
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cf-claim-{item.id}", daemon=True)

    def _run(self) -> None:
        beat = leases.heartbeat_seconds(self.app)
        while not self._stop.wait(beat):
            with contextlib.suppress(Exception):
                leases.extend(self.app, [self.item])

    def __enter__(self) -> _KeepClaimed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def process(app: App, item: leases.WorkItem) -> str | None:
    """Archive one claimed item; returns the recording id (None when it failed)."""
    from .ingest import ingest_call

    directory = pickup_dir(app)
    if directory is None:
        leases.fail(app, item, "[capture] pickup_dir is no longer configured", retry_in=60)
        return None
    stem = item.key
    try:
        if "invalid" in item.payload:
            raise InputError(str(item.payload["invalid"]))
        call = _call(app, directory, stem, dict(item.payload.get("meta") or {}))
        with _KeepClaimed(app, item):
            rec_id = ingest_call(app, call)
        app.crash_point("pickup-after-ingest", 97)
        _remove(directory, stem)
    except (InputError, FileNotFoundError) as exc:
        # the files themselves are wrong (or gone without an archive): never retried
        error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("pickup %s refused: %s", stem, error)
        _quarantine(directory, stem)
        leases.fail(app, item, error)
        app.audit.record(system_context(INGEST_JOB), "pickup.failed", "pickup", stem, "error",
                         {"error": error, "attempts": item.attempts})
        return None
    except (CallFortError, OSError) as exc:  # a store or the catalog is down: try again later
        delay = min(600.0, 5.0 * 2 ** (item.attempts - 1))
        log.warning("pickup %s: %s; retrying in %.0f s", stem, type(exc).__name__, delay)
        leases.fail(app, item, f"{type(exc).__name__}: {exc}", retry_in=delay)
        return None
    if not leases.complete(app, item, rec_id):
        log.warning("pickup %s: archived as %s, but the claim had lapsed meanwhile", stem, rec_id)
    return rec_id


def drain(app: App, *, limit: int | None = None) -> int:
    """Claim and archive items until the queue has none due (or ``limit`` are done)."""
    done = 0
    max_attempts = app.config.get("capture.pickup_max_attempts", int, 5)
    while limit is None or done < limit:
        items = leases.claim(app, QUEUE, limit=1, max_attempts=max_attempts)
        if not items:
            break
        for item in items:
            process(app, item)
            done += 1
    return done


def scan_job(app: App) -> int:
    return scan(app)


def ingest_job(app: App) -> int:
    if pickup_dir(app) is None:
        return 0
    return drain(app)
