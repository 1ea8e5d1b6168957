"""SRTP reception (RFC 3711) for SDES-keyed streams (RFC 4568): AES_CM_128_HMAC_SHA1_80 and _32.

Key derivation with the AES-CM PRF (key derivation rate 0), AES-128 counter mode decryption, HMAC-SHA1
authentication (10 or 4 byte tags), the rollover counter estimated as in RFC 3711 Appendix A, and a
64-packet replay window. A packet that fails authentication or is replayed is dropped and counted;
it never reaches the audio.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

import attrs
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: suite -> authentication tag length in bytes
SUITES = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4}
REPLAY_WINDOW = 64


class CryptoError(ValueError):
    """An ``a=crypto`` line we cannot use (unknown suite, bad key parameters)."""


@attrs.frozen
class CryptoAttr:
    """One ``a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:length]`` line."""

    tag: str
    suite: str
    master_key: bytes
    master_salt: bytes
    mki_len: int = 0

    @classmethod
    def parse(cls, value: str) -> CryptoAttr:
        parts = value.split()
        if len(parts) < 3:
            raise CryptoError("crypto attribute needs tag, suite and key parameters")
        tag, suite, params = parts[0], parts[1], parts[2]
        if not tag.isdigit() or len(tag) > 9:
            raise CryptoError("bad crypto tag")
        if suite not in SUITES:
            raise CryptoError(f"crypto suite {suite[:40]} is not supported")
        if len(parts) > 3:
            # session parameters (UNENCRYPTED_SRTP, KDR, ...) change the processing: not supported
            raise CryptoError("crypto session parameters are not supported")
        if ";" in params:
            raise CryptoError("more than one master key is not supported")
        if not params.startswith("inline:"):
            raise CryptoError("only inline keys are supported")
        fields = params[len("inline:"):].split("|")
        try:
            raw = base64.b64decode(fields[0], validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("crypto key is not base64") from None
        if len(raw) != 30:
            raise CryptoError("crypto key must be 16 bytes of key and 14 of salt")
        mki_len = 0
        for f in fields[1:]:
            if ":" in f:
                mki, _, ln = f.partition(":")
                if not (mki.isdigit() and ln.isdigit()) or not 1 <= int(ln) <= 128:
                    raise CryptoError("bad MKI in crypto key")
                mki_len = int(ln)
            elif not (f.isdigit() or (f.startswith("2^") and f[2:].isdigit())):
                raise CryptoError("bad key lifetime")
        return cls(tag=tag, suite=suite, master_key=raw[:16], master_salt=raw[16:], mki_len=mki_len)

    def inline(self) -> str:
        return base64.b64encode(self.master_key + self.master_salt).decode()


def _aes_cm(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def derive(master_key: bytes, master_salt: bytes, label: int, length: int, index: int = 0) -> bytes:
    """RFC 3711 §4.3.1 with the AES-CM PRF (§4.3.3); key derivation rate 0, so r = 0."""
    x = bytearray(master_salt)
    key_id = (label << 48) | 0  # label || r (r = index DIV kdr = 0 for kdr 0)
    kid = key_id.to_bytes(7, "big")
    for i in range(7):
        x[7 + i] ^= kid[i]
    return _aes_cm(master_key, bytes(x) + b"\0\0", b"\0" * length)


class SrtpContext:
    """The receive side of one SRTP stream (one master key, any number of SSRCs)."""

    def __init__(self, crypto: CryptoAttr) -> None:
        self.tag_len = SUITES[crypto.suite]
        self.mki_len = crypto.mki_len
        self.key = derive(crypto.master_key, crypto.master_salt, 0, 16)
        self.auth = hmac.new(derive(crypto.master_key, crypto.master_salt, 1, 20), digestmod=hashlib.sha1)
        self.salt = derive(crypto.master_key, crypto.master_salt, 2, 14)
        self.aes = algorithms.AES(self.key)
        # per SSRC: (rollover counter, highest sequence number, replay bitmap of the last 64 indices)
        self.state: dict[int, list[int]] = {}
        self.stats = {"srtp_auth_failed": 0, "srtp_replayed": 0}

    def _iv(self, ssrc: int, index: int) -> bytes:
        v = int.from_bytes(self.salt + b"\0\0", "big") ^ (ssrc << 64) ^ (index << 16)
        return v.to_bytes(16, "big")

    def unprotect(self, data: bytes) -> bytes | None:
        """The plain RTP packet, or None (dropped: too short, not authentic, or replayed)."""
        trailer = self.tag_len + self.mki_len
        if len(data) < 12 + trailer:
            self.stats["srtp_auth_failed"] += 1
            return None
        seq, = struct.unpack_from("!H", data, 2)
        ssrc, = struct.unpack_from("!I", data, 8)
        st = self.state.get(ssrc)
        if st is None:
            roc, s_l, bitmap = 0, seq, 0
            v = 0
        else:
            roc, s_l, bitmap = st
            # RFC 3711 Appendix A: guess the rollover counter of this packet
            if s_l < 0x8000:
                v = roc - 1 if seq - s_l > 0x8000 else roc
            else:
                v = roc + 1 if s_l - 0x8000 > seq else roc
            if v < 0:
                v = 0
        index = (v << 16) | seq
        if st is not None:
            top = (roc << 16) | s_l
            delta = index - top
            if delta <= 0:
                if -delta >= REPLAY_WINDOW or bitmap >> (-delta) & 1:
                    self.stats["srtp_replayed"] += 1
                    return None
        end = len(data) - trailer
        tag = data[end + self.mki_len:]
        mac = self.auth.copy()
        mac.update(data[:end])
        mac.update(struct.pack("!I", v & 0xFFFFFFFF))
        if not hmac.compare_digest(mac.digest()[:self.tag_len], tag):
            self.stats["srtp_auth_failed"] += 1
            return None
        # authentic: update the replay window and the highest index
        if st is None:
            self.state[ssrc] = [v, seq, 1]
        else:
            top = (roc << 16) | s_l
            delta = index - top
            if delta > 0:
                bitmap = ((bitmap << delta) | 1) & ((1 << REPLAY_WINDOW) - 1) if delta < REPLAY_WINDOW else 1
                st[0], st[1], st[2] = v, seq, bitmap
            else:
                st[2] = bitmap | (1 << -delta)
        b0 = data[0]
        off = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10 and end >= off + 4:
            off += 4 + 4 * struct.unpack_from("!H", data, off + 2)[0]
        if off > end:
            self.stats["srtp_auth_failed"] += 1
            return None
        enc = Cipher(self.aes, modes.CTR(self._iv(ssrc, index))).encryptor()
        return data[:off] + enc.update(data[off:end]) + enc.finalize()
