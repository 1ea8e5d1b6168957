"""Sealing a data key to the archive's public key (sites, issue 17).

A site wraps each recording's data key to the archive's X25519 public key as soon as the
recording is final, so that only the archive can open what the site shipped::

    sealed = "CFS1" | ephemeral X25519 public key (32) | nonce (12) | AES-256-GCM(data key) + tag (48)

The wrapping key is HKDF-SHA256 over the X25519 shared secret, salted with both public keys, with
``info = "callfort-archive-seal:v1"``; the GCM additional data is the recording id (the same
``wrap_aad`` as the key ring), so a sealed key copied onto another recording does not open.

Key files (hex, mode 0600, in the deployment's keys dir) are created only by ``cf sync keys
--create``; a missing key is an error, never silently recreated.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError, IntegrityError
from .keyfiles import check_private, create_private
from .keyring import wrap_aad

MAGIC = b"CFS1"
INFO = b"callfort-archive-seal:v1"
SEALED_SIZE = 4 + 32 + 12 + 32 + 16

#: File names in the keys dir.
SEAL_KEY_FILE = "archive-seal.key"  # X25519 private key of the archive
SIGNING_KEY_FILE = "sync-signing.key"  # Ed25519: manifests (site) and receipts (archive)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def _parse_public(hex_value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(str(hex_value).strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{what} must be 64 hex characters (a 32-byte public key)",
                          hint="copy it from 'cf sync keys' on the other side")
    return raw


def _derive(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub, info=INFO).derive(shared)


def seal(recipient_public_hex: str, recording_id: str, data_key: bytes) -> bytes:
    recipient_pub = _parse_public(recipient_public_hex, "the archive's public key")
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_pub))
    nonce = os.urandom(12)
    ct = AESGCM(_derive(shared, eph_pub, recipient_pub)).encrypt(nonce, data_key, wrap_aad(recording_id))
    return MAGIC + eph_pub + nonce + ct


def unseal(private: X25519PrivateKey, recording_id: str, sealed: bytes) -> bytes:
    sealed = bytes(sealed)
    if len(sealed) != SEALED_SIZE or not sealed.startswith(MAGIC):
        raise IntegrityError(f"the sealed data key of recording {recording_id} is malformed")
    eph_pub, nonce, ct = sealed[4:36], sealed[36:48], sealed[48:]
    recipient_pub = private.public_key().public_bytes_raw()
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        return AESGCM(_derive(shared, eph_pub, recipient_pub)).decrypt(nonce, ct, wrap_aad(recording_id))
    except (InvalidTag, ValueError):
        raise IntegrityError(f"the sealed data key of recording {recording_id} does not open with this "
                             "archive's key (another archive's key, or changed)") from None


# ---------------------------------------------------------------------- key files


def _load_seed(path: Path, what: str) -> bytes:
    if not path.exists():
        raise ConfigError(f"{what} {path} is missing", hint="create it once with 'cf sync keys --create' "
                          "(or restore it from the key backup)")
    check_private(path)
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ConfigError(f"{path} is not a 32-byte hex key", hint="restore it from the key backup")
    return seed


def create_key_files(keys_dir: Path, *, seal_key: bool) -> list[Path]:
    """Create the sync signing key (and the archive's seal key) unless they exist. Returns the
    files created."""
    created = []
    names = [SIGNING_KEY_FILE, *([SEAL_KEY_FILE] if seal_key else [])]
    for name in names:
        path = keys_dir / name
        if create_private(path, os.urandom(32).hex().encode() + b"\n"):
            created.append(path)
    return created


def seal_private_key(keys_dir: Path) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_load_seed(keys_dir / SEAL_KEY_FILE, "the archive's seal key"))


def signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_load_seed(keys_dir / SIGNING_KEY_FILE, "the sync signing key"))


def public_hex(key: X25519PrivateKey | Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def verify_signature(public_hex_value: str, signature_hex: str, data: bytes, what: str) -> None:
    pub = Ed25519PublicKey.from_public_bytes(_parse_public(public_hex_value, f"the signing key for {what}"))
    try:
        pub.verify(bytes.fromhex(signature_hex), data)
    except (InvalidSignature, ValueError):
        raise IntegrityError(f"the signature of {what} does not verify",
                             hint="forged, changed in transit, or signed with another key") from None
