"""CallFort's TEST-ONLY plugin: tests that run ``cf`` as a process pin its clock and crash it.

- ``CF_NOW=2026-11-28T09:00:00+00:00`` freezes the process's one clock at that time
  (``cf_test_pinned_time``).
- ``CF_TEST_CRASH_AT=<point>`` ends the process at once (``os._exit``, as if killed) at that named
  crash point of ingest or the purge (``cf_test_crash_point``); ``<point>#<n>`` at its n-th time.

It lives outside ``plugins/`` and only ``WITH_TESTS=1 scripts/setup`` installs it (a plain
``scripts/setup`` removes it). While it is loaded CallFort warns on every command, ``cf plugins``
lists it with a warning line and the FIS raises the alert ``platform.test-plugin``.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from hookspecs import hookimpl

NOW_ENV = "CF_NOW"
CRASH_ENV = "CF_TEST_CRASH_AT"


@hookimpl
def cf_test_pinned_time() -> datetime | None:
    pinned = os.environ.get(NOW_ENV)
    if not pinned:
        return None
    at = datetime.fromisoformat(pinned)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


_REACHED: dict[str, int] = {}


@hookimpl
def cf_test_crash_point(name: str, exit_code: int) -> None:
    """``CF_TEST_CRASH_AT=<point>`` ends the process the first time the point is reached,
    ``<point>#<n>`` the n-th time (e.g. in the middle of a purge batch)."""
    point, _, nth = os.environ.get(CRASH_ENV, "").partition("#")
    if point != name:
        return
    _REACHED[name] = _REACHED.get(name, 0) + 1
    if _REACHED[name] >= int(nth or 1):
        sys.stderr.write(f"cf: testkit: {CRASH_ENV}={name}: exiting as if killed\n")
        sys.stderr.flush()
        os._exit(exit_code)
