"""Settings of ``[plugins.pbx_siprec]``.

```toml
[plugins.pbx_siprec]
name = "siprec"                 # capture source name
listen = "0.0.0.0"              # SIP and RTP bind address
advertise = "192.0.2.10"        # address put into Contact and SDP (default: listen, or 127.0.0.1)
sip_port = 5060
transports = ["udp", "tcp"]     # and "tls" (tls_port, tls_cert, tls_key, tls_client_ca,
                                # tls_require_client_cert: see docs/siprec.md)
rtp_ports = [40000, 40999]      # inclusive range; each call gets consecutive even ports
session_expires = 1800          # seconds; 0 disables session-timer supervision
max_body = 65536

[[plugins.pbx_siprec.src]]      # each allowed recording client (SBC)
name = "sbc1"
addresses = ["192.0.2.0/28"]

[plugins.pbx_siprec.advisors]   # participant AoR (or its user part) -> advisor id
"sip:100@pbx.example" = "A100"
"101" = "A101"
```
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from typing import Any

import attrs


class SiprecConfigError(ValueError):
    """A setting of [plugins.pbx_siprec] is wrong; the message says which."""


@attrs.frozen(kw_only=True)
class SrcEntry:
    name: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def normalise_aor(aor: str) -> str:
    a = aor.strip().strip("<>").lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if a.startswith(scheme):
            a = a[len(scheme):]
            break
    return a.split(";", 1)[0].split("?", 1)[0]


@attrs.frozen(kw_only=True)
class SiprecSettings:
    name: str = "siprec"
    listen: str = "0.0.0.0"  # noqa: S104 - a recorder listens for its SBCs
    advertise: str = "127.0.0.1"
    sip_port: int = 5060
    transports: tuple[str, ...] = ("udp", "tcp")
    rtp_min: int = 40000
    rtp_max: int = 40999
    session_expires: int = 1800
    max_body: int = 65536
    srcs: tuple[SrcEntry, ...] = ()
    advisors: Mapping[str, str] = attrs.field(factory=dict)
    #: seconds of a stream's audio kept in memory while its participant is not known yet
    backlog_seconds: float = 10.0
    #: SIP over TLS (transport "tls"): port, the server's certificate chain and key (PEM files, the
    #: key 0600), and optionally the CAs whose client certificates are accepted (required with
    #: tls_require_client_cert)
    tls_port: int = 5061
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    tls_require_client_cert: bool = False

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> SiprecSettings:
        try:
            srcs = []
            for e in m.get("src") or []:
                nets = tuple(ipaddress.ip_network(a, strict=False) for a in e.get("addresses") or [])
                if not nets:
                    raise SiprecConfigError(f"src {e.get('name')!r} has no addresses")
                srcs.append(SrcEntry(name=str(e.get("name") or "src"), networks=nets))
            rng = m.get("rtp_ports") or [40000, 40999]
            lo, hi = int(rng[0]), int(rng[1])
            if lo < 1024 or hi > 65535 or hi - lo < 3:
                raise SiprecConfigError("rtp_ports must be a range [low, high] within 1024..65535")
            transports = tuple(str(t).lower() for t in m.get("transports") or ("udp", "tcp"))
            bad = [t for t in transports if t not in ("udp", "tcp", "tls")]
            if bad:
                raise SiprecConfigError(f"transport {bad[0]!r} is not available (choose udp, tcp, tls)")
            tls = {k: (str(m[k]) if m.get(k) else None) for k in ("tls_cert", "tls_key", "tls_client_ca")}
            require_cc = bool(m.get("tls_require_client_cert", False))
            if "tls" in transports:
                _check_tls_files(tls["tls_cert"], tls["tls_key"], tls["tls_client_ca"], require_cc)
            listen = str(m.get("listen") or "0.0.0.0")  # noqa: S104
            advertise = str(m.get("advertise") or (listen if listen not in ("0.0.0.0", "::") else "127.0.0.1"))
            ipaddress.ip_address(advertise)
            advisors = {normalise_aor(str(k)): str(v) for k, v in (m.get("advisors") or {}).items()}
            return cls(name=str(m.get("name") or "siprec"), listen=listen, advertise=advertise,
                       sip_port=int(m.get("sip_port", 5060)), transports=transports, rtp_min=lo + (lo % 2),
                       rtp_max=hi, session_expires=int(m.get("session_expires", 1800)),
                       max_body=int(m.get("max_body", 65536)), srcs=tuple(srcs), advisors=advisors,
                       backlog_seconds=float(m.get("backlog_seconds", 10.0)),
                       tls_port=int(m.get("tls_port", 5061)), tls_cert=tls["tls_cert"], tls_key=tls["tls_key"],
                       tls_client_ca=tls["tls_client_ca"], tls_require_client_cert=require_cc)
        except SiprecConfigError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise SiprecConfigError(f"[plugins.pbx_siprec] is invalid: {exc}") from exc

    def tls_context(self) -> ssl.SSLContext:
        """The server side of SIP over TLS: TLS 1.2 or later, our certificate chain, and client
        certificates checked against ``tls_client_ca`` (required or, without the flag, optional)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.tls_cert and self.tls_key
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_client_ca:
            ctx.load_verify_locations(cafile=self.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if self.tls_require_client_cert else ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def src_for(self, ip: str) -> SrcEntry | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for s in self.srcs:
            if any(addr in n for n in s.networks):
                return s
        return None

    def advisor_for(self, aor: str) -> str | None:
        a = normalise_aor(aor)
        if a in self.advisors:
            return self.advisors[a]
        user = a.split("@", 1)[0]
        return self.advisors.get(user)


def _check_tls_files(cert: str | None, key: str | None, client_ca: str | None, require_client_cert: bool) -> None:
    if not cert or not key:
        raise SiprecConfigError("transport tls needs tls_cert and tls_key (PEM files)")
    for what, path in (("tls_cert", cert), ("tls_key", key), ("tls_client_ca", client_ca)):
        if path and not os.path.isfile(path):
            raise SiprecConfigError(f"{what} {path} does not exist")
    if os.stat(key).st_mode & 0o077:
        raise SiprecConfigError(f"tls_key {key} is readable by others: chmod 600 it")
    if require_client_cert and not client_ca:
        raise SiprecConfigError("tls_require_client_cert needs tls_client_ca (the CAs of the SBCs' certificates)")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise SiprecConfigError(f"TLS certificate or key cannot be used: {exc}") from None
