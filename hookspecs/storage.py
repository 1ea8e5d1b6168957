"""Storage: where ciphertext objects live."""

from __future__ import annotations

from ._markers import hookspec
from .types import BrokenCopy, StoreType


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


@hookspec
def cf_store_copy_broken(event: BrokenCopy) -> None:
    """A copy of a media object was found missing or damaged (by a read that then fell back to a
    healthy copy, or by ``cf store check``).

    :param event: which store and key, the problem, the stores still holding a good copy, and the
        seq of the ``store.copy_broken`` audit entry (already committed) that recorded it.
    :return: ignored. All implementations are called; an exception is logged and never breaks
        the read that found the broken copy. ``cf store repair`` re-creates the copy.

    Added in 1.0. Example::

        @hookimpl
        def cf_store_copy_broken(event):
            pager.send(f"copy of {event.key} in store {event.store} is {event.problem}")
    """
