"""Storage: where ciphertext objects live."""

from __future__ import annotations

from ._markers import hookspec
from .types import StoreType


@hookspec
def cf_media_stores() -> list[StoreType]:
    """Register store implementations by type name.

    :return: ``StoreType`` registrations; a ``[stores.<instance>]`` section with ``type = "<name>"``
        builds one with ``create(options, ctx)``. Duplicate type names are an error. All results
        are collected.

    Added in 1.0. Example::

        @hookimpl
        def cf_media_stores():
            return [StoreType(name="local", create=lambda opts, ctx: LocalStore(opts["root"]))]
    """
