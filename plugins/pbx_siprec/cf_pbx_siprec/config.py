"""Settings of ``[plugins.pbx_siprec]``.

```toml
[plugins.pbx_siprec]
name = "siprec"                 # capture source name
listen = "0.0.0.0"              # SIP and RTP bind address
advertise = "192.0.2.10"        # address put into Contact and SDP (default: listen, or 127.0.0.1)
sip_port = 5060
transports = ["udp", "tcp"]
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
            bad = [t for t in transports if t not in ("udp", "tcp")]
            if bad:
                raise SiprecConfigError(f"transport {bad[0]!r} is not available (choose udp, tcp)")
            listen = str(m.get("listen") or "0.0.0.0")  # noqa: S104
            advertise = str(m.get("advertise") or (listen if listen not in ("0.0.0.0", "::") else "127.0.0.1"))
            ipaddress.ip_address(advertise)
            advisors = {normalise_aor(str(k)): str(v) for k, v in (m.get("advisors") or {}).items()}
            return cls(name=str(m.get("name") or "siprec"), listen=listen, advertise=advertise,
                       sip_port=int(m.get("sip_port", 5060)), transports=transports, rtp_min=lo + (lo % 2),
                       rtp_max=hi, session_expires=int(m.get("session_expires", 1800)),
                       max_body=int(m.get("max_body", 65536)), srcs=tuple(srcs), advisors=advisors,
                       backlog_seconds=float(m.get("backlog_seconds", 10.0)))
        except SiprecConfigError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise SiprecConfigError(f"[plugins.pbx_siprec] is invalid: {exc}") from exc

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
