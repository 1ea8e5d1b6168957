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

from hookspecs.options import OptionsError, parse_options

WHERE = "plugins.pbx_siprec"


class SiprecConfigError(ValueError):
    """A setting of [plugins.pbx_siprec] is wrong; the message says which."""


@attrs.frozen(kw_only=True)
class SrcOptions:
    """One ``[[plugins.pbx_siprec.src]]``: a recording client (SBC) allowed to connect."""

    name: str = "src"
    addresses: list[str] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class SiprecOptions:
    """``[plugins.pbx_siprec]`` as written, typed; the core builds it with
    ``hookspecs.parse_options`` (unknown keys and wrong types refused with the key named).
    ``SiprecSettings.from_options`` adds the checks of each value's form."""

    name: str = "siprec"
    listen: str = "0.0.0.0"  # noqa: S104 - a recorder listens for its SBCs
    advertise: str | None = None
    sip_port: int = 5060
    transports: list[str] = attrs.field(factory=lambda: ["udp", "tcp"])
    rtp_ports: list[int] = attrs.field(factory=lambda: [40000, 40999])
    session_expires: int = 1800
    max_body: int = 65536
    #: without an entry the plugin is installed but idle
    src: list[SrcOptions] = attrs.field(factory=list)
    advisors: Mapping[str, str] = attrs.field(factory=dict)
    backlog_seconds: float = 10.0
    tls_port: int = 5061
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    tls_require_client_cert: bool = False


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
        """Settings from a section as a mapping (what ``[plugins.pbx_siprec]`` holds)."""
        try:
            return cls.from_options(parse_options(SiprecOptions, m, where=WHERE))
        except OptionsError as exc:
            raise SiprecConfigError(str(exc)) from None

    @classmethod
    def from_options(cls, o: SiprecOptions) -> SiprecSettings:
        """The checks of each value's form and of keys that go together; each message names the key."""
        srcs = []
        for i, e in enumerate(o.src):
            try:
                nets = tuple(ipaddress.ip_network(a, strict=False) for a in e.addresses)
            except ValueError as exc:
                raise SiprecConfigError(f"{WHERE}.src[{i}].addresses: {exc}") from None
            if not nets:
                raise SiprecConfigError(f"{WHERE}.src[{i}] ({e.name!r}) has no addresses")
            srcs.append(SrcEntry(name=e.name or "src", networks=nets))
        if len(o.rtp_ports) != 2:
            raise SiprecConfigError(f"{WHERE}.rtp_ports must be a range [low, high]")
        lo, hi = o.rtp_ports
        if lo < 1024 or hi > 65535 or hi - lo < 3:
            raise SiprecConfigError(f"{WHERE}.rtp_ports must be a range [low, high] within 1024..65535")
        transports = tuple(t.lower() for t in o.transports) or ("udp", "tcp")
        bad = [t for t in transports if t not in ("udp", "tcp", "tls")]
        if bad:
            raise SiprecConfigError(f"{WHERE}.transports: {bad[0]!r} is not available (choose udp, tcp, tls)")
        if "tls" in transports:
            _check_tls_files(o.tls_cert, o.tls_key, o.tls_client_ca, o.tls_require_client_cert)
        advertise = o.advertise or (o.listen if o.listen not in ("0.0.0.0", "::") else "127.0.0.1")  # noqa: S104
        try:
            ipaddress.ip_address(advertise)
        except ValueError:
            raise SiprecConfigError(f"{WHERE}.advertise must be an IP address, got {advertise!r}") from None
        return cls(name=o.name or "siprec", listen=o.listen, advertise=advertise, sip_port=o.sip_port,
                   transports=transports, rtp_min=lo + (lo % 2), rtp_max=hi, session_expires=o.session_expires,
                   max_body=o.max_body, srcs=tuple(srcs),
                   advisors={normalise_aor(k): v for k, v in o.advisors.items()},
                   backlog_seconds=o.backlog_seconds, tls_port=o.tls_port, tls_cert=o.tls_cert or None,
                   tls_key=o.tls_key or None, tls_client_ca=o.tls_client_ca or None,
                   tls_require_client_cert=o.tls_require_client_cert)

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
