"""SIP over TLS for pbx_siprec (sipp 3.6.1 has no TLS): a Python ``ssl`` client sends a SIPREC
INVITE over TLS, the test streams the RTP itself, and the archived audio is read back. The
recorder's certificate is checked by the client (IP SAN, our test CA); client certificates are
required and checked by the recorder."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import shutil
import socket
import ssl

import pytest
from cf_pbx_siprec.config import SiprecConfigError, SiprecSettings

from tests.asterisk_sim import make_user
from tests.siprec_helpers import channel, dominant, level, multipart, recording, rfc_metadata, sdp_offer, tone, ulaw
from tests.test_siprec_sipp import Srs, free_udp_tcp_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]



def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject_cn, key, issuer_cn, issuer_key, *, ca=False, ip=None, client=False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                   else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path, cert=None, key=None):
    from cryptography.hazmat.primitives import serialization

    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return str(path)


@pytest.fixture
def pki(tmp_path):
    ca_key, rogue_key = _key(), _key()
    ca = _cert("CallFort test CA", ca_key, "CallFort test CA", ca_key, ca=True)
    rogue = _cert("Rogue CA", rogue_key, "Rogue CA", rogue_key, ca=True)
    srv_key, sbc_key, bad_key = _key(), _key(), _key()
    out = {"ca": _write(tmp_path / "ca.pem", ca), "rogue_ca": _write(tmp_path / "rogue.pem", rogue)}
    out["cert"] = _write(tmp_path / "srs.pem", _cert("srs", srv_key, "CallFort test CA", ca_key, ip="127.0.0.1"))
    out["key"] = _write(tmp_path / "srs.key", key=srv_key)
    out["sbc_cert"] = _write(tmp_path / "sbc.pem", _cert("sbc", sbc_key, "CallFort test CA", ca_key, client=True))
    out["sbc_key"] = _write(tmp_path / "sbc.key", key=sbc_key)
    out["bad_cert"] = _write(tmp_path / "bad.pem", _cert("sbc", bad_key, "Rogue CA", rogue_key, client=True))
    out["bad_key"] = _write(tmp_path / "bad.key", key=bad_key)
    return out


def client_ctx(pki, cert="sbc", ca="ca"):
    ctx = ssl.create_default_context(cafile=pki[ca])  # checks the recorder's certificate and its IP
    if cert:
        ctx.load_cert_chain(pki[f"{cert}_cert"], pki[f"{cert}_key"])
    return ctx


def invite(port, media_port):
    sdp = (sdp_offer().replace("[media_ip]", "127.0.0.1").replace("[media_port+2]", str(media_port + 2))
           .replace("[media_port]", str(media_port)).replace("[cseq]", "1").replace("[local_ip]", "127.0.0.1"))
    ctype, body = multipart(sdp, rfc_metadata())
    body = body.replace("\n", "\r\n").encode()
    head = (f"INVITE sip:srs@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
            "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-1\r\n"
            "From: <sip:src@127.0.0.1>;tag=src1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: tls-call-1\r\n"
            "CSeq: 1 INVITE\r\nContact: <sip:src@127.0.0.1:5999;transport=tls>;+sip.src\r\nRequire: siprec\r\n"
            f"Max-Forwards: 70\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def in_dialog(method, port, to_tag, cseq):
    return (f"{method} sip:srs@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-{cseq}{method}\r\n"
            f"From: <sip:src@127.0.0.1>;tag=src1\r\nTo: <sip:srs@127.0.0.1>;tag={to_tag}\r\nCall-ID: tls-call-1\r\n"
            f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


async def read_response(reader):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    m = re.search(rb"content-length:\s*(\d+)", head, re.I)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return head.decode(), body.decode()


def srs_tls(tmp_path, deployment, make_app, pki, **extra):
    tls_port = free_udp_tcp_port()
    kw = {"transports": '["udp", "tls"]', "tls_port": tls_port, "tls_cert": f'"{pki["cert"]}"',
          "tls_key": f'"{pki["key"]}"', "tls_client_ca": f'"{pki["ca"]}"', "tls_require_client_cert": "true"}
    kw.update(extra)
    return Srs(tmp_path, deployment, make_app, **kw), tls_port


async def test_siprec_over_tls_with_client_certificate_records_the_call(tmp_path, deployment, make_app, pki):
    h, port = srs_tls(tmp_path, deployment, make_app, pki)
    async with h:
        make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        media = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for s in media:
            s.bind(("127.0.0.1", 0))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(pki),
                                                       server_hostname="127.0.0.1")
        writer.write(invite(port, media[0].getsockname()[1]))
        head, body = await read_response(reader)
        while head.startswith("SIP/2.0 1"):
            head, body = await read_response(reader)
        assert head.startswith("SIP/2.0 200"), head
        assert f":{port};transport=tls>;+sip.srs" in head
        to_tag = re.search(r"^To:.*;tag=([^;\s]+)", head, re.M | re.I).group(1)
        ports = [int(p) for p in re.findall(r"m=audio (\d+)", body)]
        writer.write(in_dialog("ACK", port, to_tag, 1))
        await writer.drain()
        adv, cus = ulaw(tone(440, 3.0)), ulaw(tone(880, 3.0))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(150):  # 3 s of 20 ms packets, paced
            for n, (sock, audio) in enumerate(((media[0], adv), (media[1], cus))):
                pkt = bytes([0x80, 0]) + i.to_bytes(2, "big") + (i * 160).to_bytes(4, "big") \
                    + (0x5000 + n).to_bytes(4, "big") + audio[i * 160:(i + 1) * 160]
                sock.sendto(pkt, ("127.0.0.1", ports[n]))
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - loop.time()))
        writer.write(in_dialog("BYE", port, to_tag, 2))
        head, _ = await read_response(reader)
        assert head.startswith("SIP/2.0 200")
        writer.close()
        for s in media:
            s.close()
        row = await h.archived()
    assert row.advisor_id == "A100"
    rec = recording(h.app, row.recording_id)
    a = channel(h.app, row.recording_id, "advisor")
    assert rec.duration == pytest.approx(3.0, abs=0.3)
    assert dominant(a, 0.2, rec.duration - 0.2) == 440 and level(a, 0.2, rec.duration - 0.2) > 4000
    assert channel(h.app, row.recording_id, "customer") is None  # no consent


@pytest.mark.parametrize("case", ["no-client-cert", "client-cert-of-another-ca", "client-distrusts-server"])
async def test_tls_certificate_checks_refuse_the_connection(tmp_path, deployment, make_app, pki, case):
    h, port = srs_tls(tmp_path, deployment, make_app, pki)
    async with h:
        ctx = {"no-client-cert": lambda: client_ctx(pki, cert=None),
               "client-cert-of-another-ca": lambda: client_ctx(pki, cert="bad"),
               "client-distrusts-server": lambda: client_ctx(pki, ca="rogue_ca")}[case]()
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
            writer.write(invite(port, 30000))
            await read_response(reader)  # TLS 1.3: the server's refusal arrives with the first read
        assert h.source.counters["invites"] == 0 and not h.source.sessions
        # the recorder goes on: a proper client still gets through
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(pki),
                                                       server_hostname="127.0.0.1")
        writer.write(in_dialog("OPTIONS", port, "x", 1).replace(b";tag=x", b""))
        head, _ = await read_response(reader)
        assert head.startswith("SIP/2.0 200")
        writer.close()


def test_tls_settings_are_checked(pki, tmp_path):
    base = {"transports": ["tls"], "tls_cert": pki["cert"], "tls_key": pki["key"]}
    assert SiprecSettings.from_mapping(base).tls_port == 5061
    with pytest.raises(SiprecConfigError, match="needs tls_cert"):
        SiprecSettings.from_mapping({"transports": ["tls"]})
    with pytest.raises(SiprecConfigError, match="does not exist"):
        SiprecSettings.from_mapping({**base, "tls_key": str(tmp_path / "missing.key")})
    open_key = tmp_path / "open.key"
    shutil.copy(pki["key"], open_key)
    os.chmod(open_key, 0o644)
    with pytest.raises(SiprecConfigError, match="chmod 600"):
        SiprecSettings.from_mapping({**base, "tls_key": str(open_key)})
    with pytest.raises(SiprecConfigError, match="needs tls_client_ca"):
        SiprecSettings.from_mapping({**base, "tls_require_client_cert": True})
    with pytest.raises(SiprecConfigError, match="cannot be used"):
        SiprecSettings.from_mapping({**base, "tls_key": pki["sbc_key"]})  # key of another certificate
