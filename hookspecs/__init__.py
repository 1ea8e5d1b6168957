"""CallFort's plugin contract.

A plugin imports only this package: ``from hookspecs import hookimpl`` and the value types in
``hookspecs.types``. Nothing here imports ``cfcore``.
"""

from . import types as _types
from ._markers import PROJECT_NAME, hookimpl
from .types import *  # noqa: F403 - the value types are the public contract

#: Bumped when a hook or value type changes; plugins may check it.
HOOKSPEC_VERSION = "1.0"

#: The spec modules, one per concern, in the order the manager registers them.
SPEC_MODULES = (
    "hookspecs.capture",
    "hookspecs.storage",
    "hookspecs.keys",
    "hookspecs.access",
    "hookspecs.retention",
    "hookspecs.notify",
    "hookspecs.integrity",
    "hookspecs.sync",
    "hookspecs.transcription",
    "hookspecs.integration",
    "hookspecs.testing",
)

__all__ = ["HOOKSPEC_VERSION", "PROJECT_NAME", "SPEC_MODULES", "hookimpl"] + [
    name for name, value in vars(_types).items() if not name.startswith("_") and isinstance(value, type) and value.__module__ == _types.__name__
]
