"""When this ``cf`` process began: the advisor pressed Enter a few milliseconds before (the slow
part, opening the deployment and logging in, comes later). Imported first by ``cli.main``."""

from __future__ import annotations

import time

_STARTED = time.monotonic()


def seconds_since_start() -> float:
    """Seconds since this ``cf`` process began (the advisor's action time for ``cf calls``)."""
    return time.monotonic() - _STARTED
