"""Keys: key-encryption keys for the envelope encryption."""

from __future__ import annotations

from ._markers import hookspec
from .types import KeyProviderType


@hookspec
def cf_key_providers() -> list[KeyProviderType]:
    """Register key providers (key ring file, HSM, KMS) by type name.

    :return: ``KeyProviderType`` registrations; ``[keys] provider = "<name>"`` picks one. The core
        ships ``keyring`` (a 0600 file). All results are collected; duplicate names are an error.

    Added in 1.0. Example::

        @hookimpl
        def cf_key_providers():
            return [KeyProviderType(name="vault", create=lambda opts, ctx: VaultKeys(opts["url"]))]
    """
