"""CallFort's plugin contract.

A plugin imports only this package: ``from hookspecs import hookimpl`` and the value types in
``hookspecs.types``. Nothing here imports ``cfcore``.
"""

from . import types as _types
from ._markers import PROJECT_NAME, hookimpl
from .options import OptionsError, Secret, parse_options
from .types import *  # noqa: F403 - the value types are the public contract

#: Bumped when a hook or value type changes; plugins may check it.
HOOKSPEC_VERSION = "1.2"

#: Parts of the contract the core does not use yet: their shape may still change when the issue
#: that needs them lands (``cf plugins`` marks a plugin that implements one).
PROVISIONAL: frozenset[str] = frozenset()

#: The spec modules, one per concern, in the order the manager registers them.
SPEC_MODULES = (
    "hookspecs.capture",
    "hookspecs.jobs",
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

__all__ = ["HOOKSPEC_VERSION", "PROJECT_NAME", "PROVISIONAL", "SPEC_MODULES", "OptionsError", "Secret",
           "hookimpl", "parse_options"] + [
    name for name, value in vars(_types).items() if not name.startswith("_") and isinstance(value, type) and value.__module__ == _types.__name__
]
