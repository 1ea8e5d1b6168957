"""SRTP reception (RFC 3711, SDES keys of RFC 4568) of pbx_siprec: the RFC's key derivation test
vectors, packets from libsrtp (pylibsrtp) across a sequence-number rollover, tampered and replayed
packets, and the crypto lines we accept or refuse."""

from __future__ import annotations

import base64
import os
import struct

import pytest
from cf_pbx_siprec import sdp as sdpmod
from cf_pbx_siprec.srtp import CryptoAttr, CryptoError, SrtpContext, derive

pylibsrtp = pytest.importorskip("pylibsrtp")


def test_key_derivation_matches_rfc3711_appendix_b3():
    mk = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    ms = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert derive(mk, ms, 0, 16).hex() == "c61e7a93744f39ee10734afe3ff7a087"
    assert derive(mk, ms, 2, 14).hex() == "30cbbc08863d8c85d49db34a9ae1"
    assert derive(mk, ms, 1, 20).hex() == "cebe321f6ff7716b6fd4ab49af256a156d38baa4"


@pytest.mark.parametrize(("suite", "profile", "tag"), [
    ("AES_CM_128_HMAC_SHA1_80", "SRTP_PROFILE_AES128_CM_SHA1_80", 10),
    ("AES_CM_128_HMAC_SHA1_32", "SRTP_PROFILE_AES128_CM_SHA1_32", 4)])
def test_libsrtp_packets_decrypt_across_rollover_and_forgeries_are_dropped(suite, profile, tag):
    key = os.urandom(30)
    pol = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                           srtp_profile=getattr(pylibsrtp.Policy, profile))
    tx = pylibsrtp.Session(policy=pol)
    rx = SrtpContext(CryptoAttr.parse(f"1 {suite} inline:{base64.b64encode(key).decode()}|2^31"))
    plain, prot = [], []
    for i in range(3000):  # 65000 .. 2463: the rollover counter goes to 1
        p = struct.pack("!BBHII", 0x80, 0, (65000 + i) & 0xFFFF, i * 160, 0xCAFE) + bytes([i & 0xFF]) * 160
        plain.append(p)
        prot.append(tx.protect(p))
    assert len(prot[0]) == len(plain[0]) + tag
    # out of order within the window, across the wrap
    order = list(range(3000))
    order[530], order[536] = order[536], order[530]
    for i in order:
        assert rx.unprotect(prot[i]) == plain[i]
    assert rx.stats == {"srtp_auth_failed": 0, "srtp_replayed": 0}
    assert rx.unprotect(prot[2990]) is None and rx.unprotect(prot[100]) is None  # replay / too old
    assert rx.stats["srtp_replayed"] == 2
    p = struct.pack("!BBHII", 0x80, 0, 2464 % 65536, 3000 * 160, 0xCAFE) + b"\x55" * 160
    good = tx.protect(p)
    bad = bytearray(good)
    bad[15] ^= 0x80  # one payload bit
    assert rx.unprotect(bytes(bad)) is None and rx.stats["srtp_auth_failed"] == 1
    assert rx.unprotect(good[:-1]) is None and rx.stats["srtp_auth_failed"] == 2  # cut tag
    assert rx.unprotect(good[:10]) is None and rx.stats["srtp_auth_failed"] == 3  # runt
    assert rx.unprotect(good) == p  # the forgeries did not move the replay window


@pytest.mark.parametrize(("line", "why"), [
    ("1 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 64, "not supported"),
    ("1 F8_128_HMAC_SHA1_80 inline:" + "A" * 40, "not supported"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 20, "16 bytes"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!", "base64"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40 + " UNENCRYPTED_SRTP", "session parameters"),
    ("1 AES_CM_128_HMAC_SHA1_80 uri:http://x/key", "inline"),
    ("x AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40, "tag"),
    ("1 AES_CM_128_HMAC_SHA1_80", "needs")])
def test_crypto_lines_we_refuse(line, why):
    with pytest.raises(CryptoError, match=why):
        CryptoAttr.parse(line)


def test_mki_is_skipped_and_the_answer_carries_our_own_key():
    key = os.urandom(30)
    a = CryptoAttr.parse(f"7 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}|2^20|1:4")
    assert a.mki_len == 4 and a.tag == "7"
    offer = sdpmod.parse(("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 8\r\n"
                          f"a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}\r\n"
                          "m=audio 4002 RTP/SAVP 0\r\na=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 64
                          + "\r\n").encode())
    chosen = [sdpmod.choose(m) for m in offer.media]
    assert chosen[0].codec == "pcma" and chosen[0].crypto == a.__class__(tag="7", suite=a.suite,
                                                                          master_key=key[:16],
                                                                          master_salt=key[16:])
    assert chosen[1].codec is None and chosen[1].reason == "srtp-unsupported"
    body = sdpmod.answer(offer, chosen, {0: 5000}, "192.0.2.9", 1, 1).decode()
    assert "m=audio 5000 RTP/SAVP 8" in body and "m=audio 0 RTP/SAVP 0" in body
    ours = body.split("a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:")[1].split()[0]
    assert base64.b64decode(ours) != key and len(base64.b64decode(ours)) == 30

