"""Test-only hooks: a pinned clock and crash points for tests that run ``cf`` as a process.

Only the test kit (distribution ``callfort-testkit``, in ``testkit/``, installed by
``WITH_TESTS=1 scripts/setup`` and never by a production install) implements them. CallFort treats
any plugin implementing one of these hooks as test-only: every command logs a warning,
``cf plugins`` lists it with a warning line, and the FIS raises an alert while it is loaded.
"""

from __future__ import annotations

from datetime import datetime

from ._markers import hookspec


@hookspec(firstresult=True)
def cf_test_pinned_time() -> datetime | None:
    """Return the time at which the process's one clock is frozen (timezone-aware), or ``None``
    for the real clock. The test kit returns ``CF_NOW`` from the environment.

    Added in 1.0 (test-only). Example::

        @hookimpl
        def cf_test_pinned_time():
            return datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    """


@hookspec
def cf_test_crash_point(name: str, exit_code: int) -> None:
    """Called at each named crash point of ingest and the purge (see docs/archive.md and
    docs/retention.md); an implementation may end the process there at once (``os._exit``), as if
    it were killed. The return value is ignored.

    Added in 1.0 (test-only). Example::

        @hookimpl
        def cf_test_crash_point(name, exit_code):
            if name == "before-commit":
                os._exit(exit_code)
    """
