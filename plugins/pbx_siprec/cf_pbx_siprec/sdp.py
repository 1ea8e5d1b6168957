"""SDP offers from a recording client and the recorder's answers (RFC 4566/3264, RFC 7866 §8)."""

from __future__ import annotations

import ipaddress

import attrs

CODECS = {"pcmu": "PCMU", "pcma": "PCMA"}
STATIC = {0: "pcmu", 8: "pcma", 9: "g722", 18: "g729", 13: "cn"}
#: offered SRTP suites we can decrypt (none yet: see docs/siprec.md)
CRYPTO_SUITES: tuple[str, ...] = ()


class SdpError(ValueError):
    """The SDP cannot be understood (400) or nothing in it can be recorded (488)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@attrs.define
class Media:
    index: int
    kind: str
    port: int
    proto: str
    fmts: list[str]
    addr: str | None
    label: str | None = None
    direction: str = "sendrecv"
    rtpmap: dict[int, str] = attrs.Factory(dict)
    crypto: list[str] = attrs.Factory(list)

    def codec_of(self, pt: int) -> str | None:
        name = self.rtpmap.get(pt)
        if name is not None:
            return name.split("/")[0].lower()
        return STATIC.get(pt)

    @property
    def inactive(self) -> bool:
        return self.direction == "inactive" or self.port == 0 or (self.addr or "") in ("0.0.0.0", "::")


@attrs.define
class Offer:
    media: list[Media]
    session_addr: str | None
    version: int = 0


def parse(body: bytes) -> Offer:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or not lines[0].startswith("v=0"):
        raise SdpError("SDP does not start with v=0")
    session_addr = None
    session_dir = "sendrecv"
    media: list[Media] = []
    for ln in lines:
        if len(ln) < 2 or ln[1] != "=":
            raise SdpError(f"bad SDP line {ln[:30]!r}")
        t, v = ln[0], ln[2:]
        cur = media[-1] if media else None
        if t == "m":
            parts = v.split()
            if len(parts) < 4:
                raise SdpError("bad m= line")
            try:
                port = int(parts[1].split("/")[0])
            except ValueError:
                raise SdpError("bad m= port") from None
            if not 0 <= port <= 65535:
                raise SdpError("bad m= port")
            media.append(Media(index=len(media), kind=parts[0], port=port, proto=parts[2], fmts=parts[3:],
                               addr=None, direction=session_dir))
            if len(media) > 32:
                raise SdpError("too many m= lines")
        elif t == "c":
            parts = v.split()
            if len(parts) < 3:
                raise SdpError("bad c= line")
            addr = parts[2].split("/")[0]
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise SdpError("c= address is not an IP address") from None
            if cur is None:
                session_addr = addr
            else:
                cur.addr = addr
        elif t == "a":
            name, _, val = v.partition(":")
            if name in ("sendonly", "recvonly", "inactive", "sendrecv"):
                if cur is None:
                    session_dir = name
                else:
                    cur.direction = name
            elif cur is None:
                continue
            elif name == "label":
                cur.label = val.strip()[:64]
            elif name == "rtpmap":
                pt, _, enc = val.partition(" ")
                try:
                    cur.rtpmap[int(pt)] = enc.strip()
                except ValueError:
                    raise SdpError("bad rtpmap") from None
            elif name == "crypto":
                cur.crypto.append(val.strip())
    for m in media:
        if m.addr is None:
            m.addr = session_addr
    if not media:
        raise SdpError("SDP has no m= line")
    return Offer(media=media, session_addr=session_addr)


@attrs.define
class Chosen:
    """What the recorder takes from one m-line."""

    index: int
    codec: str | None  # pcmu | pcma, None = port 0
    pt: int | None
    dtmf_pt: int | None
    reason: str = ""


def choose(m: Media) -> Chosen:
    if m.kind != "audio":
        return Chosen(m.index, None, None, None, "not audio")
    if m.proto.upper() not in ("RTP/AVP", "RTP/AVPF"):
        if "SAVP" in m.proto.upper():
            suites = [c.split()[1] if len(c.split()) > 1 else "" for c in m.crypto]
            if not any(s in CRYPTO_SUITES for s in suites):
                return Chosen(m.index, None, None, None, "srtp-unsupported")
        return Chosen(m.index, None, None, None, f"transport {m.proto} not supported")
    codec_pt = None
    codec = None
    dtmf = None
    for f in m.fmts:
        try:
            pt = int(f)
        except ValueError:
            continue
        name = m.codec_of(pt)
        if name in CODECS and codec is None:
            codec, codec_pt = name, pt
        elif name == "telephone-event" and dtmf is None:
            dtmf = pt
    if codec is None:
        return Chosen(m.index, None, None, None, "no supported codec (PCMU/PCMA)")
    return Chosen(m.index, codec, codec_pt, dtmf)


def answer(offer: Offer, chosen: list[Chosen], ports: dict[int, int], addr: str, session_id: int,
           version: int) -> bytes:
    """Same m-lines in the same order, labels echoed, recvonly (inactive when the offer is),
    one codec plus telephone-event, port 0 for unusable lines."""
    out = ["v=0", f"o=CallFort {session_id} {version} IN IP4 {addr}", "s=CallFort SRS", f"c=IN IP4 {addr}", "t=0 0"]
    for m, c in zip(offer.media, chosen, strict=True):
        if c.codec is None or c.pt is None:
            out.append(f"m={m.kind} 0 {m.proto} {m.fmts[0] if m.fmts else '0'}")
            if m.label:
                out.append(f"a=label:{m.label}")
            continue
        fmts = [str(c.pt)] + ([str(c.dtmf_pt)] if c.dtmf_pt is not None else [])
        out.append(f"m=audio {ports[m.index]} {m.proto} {' '.join(fmts)}")
        out.append(f"a=rtpmap:{c.pt} {CODECS[c.codec]}/8000")
        if c.dtmf_pt is not None:
            out.append(f"a=rtpmap:{c.dtmf_pt} telephone-event/8000")
            out.append(f"a=fmtp:{c.dtmf_pt} 0-15")
        if m.label:
            out.append(f"a=label:{m.label}")
        out.append("a=inactive" if m.direction in ("inactive", "recvonly") else "a=recvonly")
    return ("\r\n".join(out) + "\r\n").encode()
