"""In-tree default plugin: the ``keyring`` key provider (KEKs in a 0600 file in the keys dir)."""

from hookspecs import hookimpl
from hookspecs.types import KeyProviderType


@hookimpl
def cf_key_providers():  # type: ignore[no-untyped-def]
    from cfcore.crypto.keyring import create_keyring

    return [KeyProviderType(name="keyring", create=create_keyring,
                            description="key-encryption keys in a 0600 JSON file in the keys directory")]
