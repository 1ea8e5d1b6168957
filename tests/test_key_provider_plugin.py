"""A key provider from a plugin (an HSM or KMS stand-in) replaces the key ring through cf_key_providers."""

from __future__ import annotations

import os

import pytest
from archive_helpers import make_wav
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cfcore.archive import read_channel
from cfcore.errors import ConfigError
from cfcore.ingest import ingest_wav
from cfcore.plugins import get_plugin_manager
from hookspecs import hookimpl
from hookspecs.types import KeyProviderType


class InMemoryKms:
    """Wraps data keys with AES-GCM under KEKs that never leave this object."""

    name = "test-kms"

    def __init__(self):
        self.keks = {"kms-1": AESGCM.generate_key(256)}
        self.current = "kms-1"
        self.wrapped = 0

    def current_kek_id(self):
        return self.current

    def wrap(self, kek_id, data_key, aad):
        nonce = os.urandom(12)
        self.wrapped += 1
        return nonce + AESGCM(self.keks[kek_id]).encrypt(nonce, data_key, aad)

    def unwrap(self, kek_id, wrapped, aad):
        key = self.keks[kek_id]  # KeyError for an unknown KEK, as the protocol says
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], aad)

    def rotate(self):
        self.current = f"kms-{len(self.keks) + 1}"
        self.keks[self.current] = AESGCM.generate_key(256)
        return self.current


KMS = InMemoryKms()


class KmsPlugin:
    @hookimpl
    def cf_key_providers(self):
        return [KeyProviderType(name="test-kms", create=lambda opts, ctx: KMS)]


def test_recordings_are_wrapped_by_the_plugin_provider(deployment, make_app, tmp_path):
    deployment.write_text(deployment.read_text().replace('provider = "keyring"', 'provider = "test-kms"'))
    (deployment.parent / "keys" / "keyring.json").unlink()  # a plugin provider needs no key ring
    from cfcore.config import load_config

    pm = get_plugin_manager(load_config(deployment), extra=[("kms", KmsPlugin())])
    app = make_app(deployment, pm=pm)
    wav, chans = make_wav(tmp_path / "a.wav", seconds=1.0, channels=1)
    before = KMS.wrapped
    rec = ingest_wav(app, wav, advisor_id="A1", customer_ids=["C1"])
    assert KMS.wrapped == before + 1
    assert read_channel(app, rec, "advisor") == chans[0]
    assert not (deployment.parent / "keys" / "keyring.json").exists()


def test_unknown_provider_lists_the_choices(deployment, make_app):
    deployment.write_text(deployment.read_text().replace('provider = "keyring"', 'provider = "vault"'))
    app = make_app(deployment)
    with pytest.raises(ConfigError, match="keys.provider 'vault'.*choose one of: keyring"):
        app.keys.current_kek_id()
