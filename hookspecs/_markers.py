"""The pluggy markers. The spec marker stays private; plugins import ``hookimpl``."""

import pluggy

PROJECT_NAME = "cfcore"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
