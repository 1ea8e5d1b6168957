"""Mutual TLS for the CRM: ``cf serve``'s TLS options (``[server] tls_cert``, ``tls_key``,
``tls_client_ca``) on a real uvicorn server; zeep with the CRM's client certificate loads the WSDL
and calls the service, a client without a certificate (or with one from another CA) cannot connect."""

from __future__ import annotations

import os
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from crm_helpers import CRM_PASSWORD, CRM_USER, crm_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cfcore.errors import ConfigError
from cfcore.testing import free_tcp_port, write_deployment


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer_name: x509.Name | None, issuer_key, *, ca: bool = False, server: bool = False):
    now = datetime.now(UTC)  # certificates are checked against the real clock by OpenSSL
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
         .not_valid_after(now + timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        import ipaddress

        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pki(d: Path, tag: str) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(f"{tag} CA", ca_key, None, ca_key, ca=True)
    out = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"{tag} {role}", key, ca.subject, ca_key, server=role == "server")
        (d / f"{tag}-{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        kp = d / f"{tag}-{role}.key"
        kp.write_bytes(_key_pem(key))
        os.chmod(kp, 0o600)
        out[f"{role}_cert"], out[f"{role}_key"] = d / f"{tag}-{role}.pem", kp
    (d / f"{tag}-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["ca"] = d / f"{tag}-ca.pem"
    return out


@pytest.fixture
def tls_world(tmp_path, catalog_url, frozen_clock):
    import uvicorn
    from access_helpers import make_user

    from cfcore.app import App
    from cfcore.web import create_app
    from cfcore.web.tls import tls_options

    pki, other = _pki(tmp_path, "crm"), _pki(tmp_path, "rogue")
    port = free_tcp_port()
    extra = crm_config(port, None).replace(f'public_url = "http://127.0.0.1:{port}"',
                                           f'public_url = "https://127.0.0.1:{port}"\n'
                                           f'tls_cert = "{pki["server_cert"]}"\ntls_key = "{pki["server_key"]}"\n'
                                           f'tls_client_ca = "{pki["ca"]}"')
    dep = write_deployment(tmp_path / "deploy", catalog_url, extra)
    app = App.open(dep, clock=frozen_clock)
    make_user(app, "adam", ["advisor"], advisor_id="A1")
    opts = tls_options(app)
    assert opts["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    server = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning",
                                           proxy_headers=False, **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the TLS server did not start"
        time.sleep(0.02)
    yield app, port, pki, other, frozen_clock
    server.should_exit = True
    thread.join(20)
    app.close()


def _zeep(url: str, session: requests.Session, clock):
    import zeep
    from zeep.transports import Transport
    from zeep.wsse.username import UsernameToken

    return zeep.Client(url, transport=Transport(session=session, timeout=20),
                       settings=zeep.Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True),
                       wsse=UsernameToken(CRM_USER, CRM_PASSWORD, use_digest=True, created=clock.now()))


def test_the_crm_with_its_client_certificate_gets_in(tls_world):
    app, port, pki, _, clock = tls_world
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace s.verify
    s.verify, s.cert = str(pki["ca"]), (str(pki["client_cert"]), str(pki["client_key"]))
    client = _zeep(f"https://127.0.0.1:{port}/soap/crm?wsdl", s, clock)
    calls = client.service.SearchCalls(CustomerId="K-1", _soapheaders={"ActingUser": {"Username": "adam"}})
    assert calls is None  # no calls yet, but a full round trip over mutual TLS


@pytest.mark.parametrize("cert", ["none", "rogue"])
def test_without_a_certificate_from_the_crm_ca_no_connection(tls_world, cert):
    app, port, pki, other, _ = tls_world
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace s.verify
    s.verify = str(pki["ca"])
    if cert == "rogue":
        s.cert = (str(other["client_cert"]), str(other["client_key"]))
    with pytest.raises(requests.exceptions.ConnectionError):  # SSLError or reset during the handshake
        s.get(f"https://127.0.0.1:{port}/soap/crm?wsdl", timeout=10)


def test_tls_options_refuse_half_configurations_and_open_keys(tmp_path, catalog_url, make_app):
    pki = _pki(tmp_path, "x")
    dep = write_deployment(tmp_path / "d1", catalog_url, f'[server]\ntls_client_ca = "{pki["ca"]}"\n')
    from cfcore.web.tls import tls_options

    with pytest.raises(ConfigError, match="needs server.tls_cert"):
        tls_options(make_app(dep))
    os.chmod(pki["server_key"], 0o644)
    dep2 = write_deployment(tmp_path / "d2", catalog_url,
                            f'[server]\ntls_cert = "{pki["server_cert"]}"\ntls_key = "{pki["server_key"]}"\n')
    with pytest.raises(ConfigError, match="readable by others"):
        tls_options(make_app(dep2))
