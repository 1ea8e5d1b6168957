"""Test helpers for live capture and SIPREC: tones, G.711 encoding, pcap files for sipp, archive checks."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

RATE = 8000


def tone(freq: float, seconds: float, amp: int = 9000, start_sample: int = 0) -> bytes:
    n = int(round(seconds * RATE))
    return struct.pack(f"<{n}h", *(int(amp * math.sin(2 * math.pi * freq * (start_sample + i) / RATE))
                                   for i in range(n)))


def _encoder(law: str) -> Any:
    """Nearest-code G.711 encoder, built by inverting the archive's own decoder table."""
    import bisect

    from cfcore.wav import g711_decode

    dec = struct.unpack("<256h", g711_decode(bytes(range(256)), law))
    pairs = sorted((v, c) for c, v in enumerate(dec))
    values = [p[0] for p in pairs]
    cache: dict[int, int] = {}

    def enc(x: int) -> int:
        if x not in cache:
            i = bisect.bisect_left(values, x)
            cand = [j for j in (i - 1, i) if 0 <= j < len(values)]
            cache[x] = pairs[min(cand, key=lambda j: abs(values[j] - x))][1]
        return cache[x]

    return enc


_ENC: dict[str, Any] = {}


def g711(pcm: bytes, law: str = "ulaw") -> bytes:
    enc = _ENC.get(law) or _ENC.setdefault(law, _encoder(law))
    n = len(pcm) // 2
    return bytes(enc(v) for v in struct.unpack(f"<{n}h", pcm[:2 * n]))


def ulaw(pcm: bytes) -> bytes:
    return g711(pcm, "ulaw")


def level(pcm: bytes, start: float, end: float) -> float:
    a, b = int(round(start * RATE)), int(round(end * RATE))
    chunk = pcm[2 * a:2 * b]
    s = struct.unpack(f"<{len(chunk) // 2}h", chunk)
    return math.sqrt(sum(v * v for v in s) / len(s)) if s else 0.0


def dominant(pcm: bytes, start: float, end: float, freqs: tuple[float, ...] = (440.0, 880.0)) -> float:
    """Which of ``freqs`` dominates the stretch (Goertzel)."""
    a, b = int(round(start * RATE)), int(round(end * RATE))
    chunk = pcm[2 * a:2 * b]
    s = struct.unpack(f"<{len(chunk) // 2}h", chunk)
    best, best_p = 0.0, -1.0
    for f in freqs:
        coeff = 2 * math.cos(2 * math.pi * f / RATE)
        q1 = q2 = 0.0
        for v in s:
            q0 = coeff * q1 - q2 + v
            q2, q1 = q1, q0
        p = q1 * q1 + q2 * q2 - coeff * q1 * q2
        if p > best_p:
            best, best_p = f, p
    return best


def is_silent(pcm: bytes, start: float, end: float) -> bool:
    a, b = int(round(start * RATE)), int(round(end * RATE))
    chunk = pcm[2 * a:2 * b]
    return len(chunk) > 0 and chunk == bytes(len(chunk))


def rtp_packet(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 0, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def write_pcap(path: Path, streams: list[Any], *, pt: int = 0, ptime: float = 0.02,
               src_ip: str = "127.0.0.1", dst_ip: str = "127.0.0.1", dtmf: list[tuple[int, float, str]] | None = None,
               transform: Any = None, payload_bytes: int | None = None) -> None:
    """A pcap of RTP streams for sipp's ``play_pcap_audio``: ``streams`` = ``(src port, dst port,
    G.711 payload bytes[, start seconds])``; sipp rewrites the destination (stream n to the answer's port + 2n).
    ``transform(stream index, packet number, rtp) -> [packets]`` rewrites each RTP packet (SRTP:
    encrypt; tamper; replay); the extra packets follow 1 ms apart."""
    import socket

    per = int(RATE * ptime)
    packets: list[tuple[float, int, int, bytes]] = []
    for idx, entry in enumerate(streams):
        sport, dport, audio = entry[:3]
        start = float(entry[3]) if len(entry) > 3 else 0.0  # type: ignore[misc]
        ssrc = 0x1000 + idx
        pb = payload_bytes or per  # G.729: 20 bytes per 20 ms (160 RTP clock ticks)
        for i in range(len(audio) // pb):
            rtp = rtp_packet(i, i * per, ssrc, audio[i * pb:(i + 1) * pb], pt=pt, marker=i == 0)
            outs = transform(idx, i, rtp) if transform is not None else [rtp]
            for k, out in enumerate(outs):
                packets.append((start + i * ptime + idx * 1e-4 + k * 1e-3, sport, dport, out))
        for (stream, at, digit) in dtmf or []:
            if stream != idx:
                continue
            ev = "0123456789*#".index(digit)
            base = int(at / ptime)
            for j in range(4):
                end = 0x80 if j == 3 else 0
                body = struct.pack("!BBH", ev, end | 10, (j + 1) * per)
                rtp = rtp_packet(60000 + base + j, base * per, ssrc, body, pt=101)
                packets.append((at + j * ptime + 5e-5, sport, dport, rtp))
    packets.sort(key=lambda p: p[0])

    def csum(data: bytes) -> int:
        if len(data) % 2:
            data += b"\0"
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        s = (s >> 16) + (s & 0xFFFF)
        s += s >> 16
        return ~s & 0xFFFF

    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, sport, dport, rtp in packets:
            udp = struct.pack("!HHHH", sport, dport, 8 + len(rtp), 0) + rtp
            iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(src_ip),
                              socket.inet_aton(dst_ip))
            iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
            frame = b"\0" * 12 + b"\x08\x00" + iph + udp
            sec = int(t)
            f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)


def recording(app: Any, rec_id: str) -> Any:
    from cfcore.archive import get_recording

    with app.catalog.session() as s:
        rec = get_recording(s, rec_id)
        _ = (rec.segments, rec.consents, rec.subjects, rec.media)
        return rec


def channel(app: Any, rec_id: str, name: str) -> bytes | None:
    from cfcore.archive import read_channel
    from cfcore.errors import NotFound

    try:
        return read_channel(app, rec_id, name)
    except NotFound:
        return None


# ---------------------------------------------------------------------- SIPREC with sipp

RFC_NS = "urn:ietf:params:xml:ns:recording:1"


def rfc_metadata(advisor_aor: str = "sip:100@pbx.example", customer_aor: str = "sip:+4930123456@carrier.example",
                 labels: tuple[str, str] = ("1", "2"), extra: str = "", mode: str = "complete") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='{RFC_NS}'>
  <datamode>{mode}</datamode>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ=="><sipSessionID>ab30317f1a784dc48ff8;remote=47755a9de7</sipSessionID></session>
  <participant participant_id="P-adv"><nameID aor="{advisor_aor}"><name>Advisor</name></nameID></participant>
  <participant participant_id="P-cus"><nameID aor="{customer_aor}"/></participant>
  <stream stream_id="S-a" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>{labels[0]}</label></stream>
  <stream stream_id="S-c" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>{labels[1]}</label></stream>
  <participantstreamassoc participant_id="P-adv"><send>S-a</send><recv>S-c</recv></participantstreamassoc>
  <participantstreamassoc participant_id="P-cus"><send>S-c</send><recv>S-a</recv></participantstreamassoc>
  {extra}
</recording>"""


def sdp_offer(labels: tuple[str, ...] = ("1", "2"), direction: str = "sendonly", proto: str = "RTP/AVP",
              fmts: str = "0 101", extra: str = "", zero_addr: bool = False) -> str:
    ip = "0.0.0.0" if zero_addr else "[media_ip]"
    lines = ["v=0", "o=SRC 1 [cseq] IN IP4 [local_ip]", "s=-", f"c=IN IP4 {ip}", "t=0 0"]
    for n, label in enumerate(labels):
        lines.append(f"m=audio [media_port{'+' + str(2 * n) if n else ''}] {proto} {fmts}")
        lines += ["a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
                  f"a=label:{label}", f"a={direction}"]
        if extra:
            lines.append(extra)
    return "\n".join(lines) + "\n"


def multipart(sdp: str | None, xml: str | None, *, xml_first: bool = False, extra_part: bool = False,
              xml_type: str = "application/rs-metadata+xml") -> tuple[str, str]:
    """``(content type header value, body)``."""
    parts = []
    if sdp is not None:
        parts.append(f"Content-Type: application/sdp\n\n{sdp}")
    if xml is not None:
        parts.append(f"Content-Type: {xml_type}\nContent-Disposition: recording-session\n\n{xml}")
    if xml_first:
        parts.reverse()
    if extra_part:
        parts.insert(1, "Content-Type: application/x-cisco-metadata\n\n<cisco><x/></cisco>")
    if len(parts) == 1:
        ctype, _, body = parts[0].partition("\n\n")
        return ctype.split(":", 1)[1].strip(), body
    body = "".join(f"--uniqueBoundary\n{p}\n" for p in parts) + "--uniqueBoundary--\n"
    return "multipart/mixed;boundary=uniqueBoundary", body


def request(method: str, ctype: str | None = None, body: str = "", *, cseq: int = 1, extra_headers: str = "",
            in_dialog: bool = False, require: str = "siprec", contact_param: str = "+sip.src",
            branch: str = "[branch]") -> str:
    """A request for sipp; a fixed ``branch`` lets a test send a retransmission of it."""
    to = "<sip:srs@[remote_ip]:[remote_port]>" + ("[peer_tag_param]" if in_dialog else "")
    head = [f"{method} sip:srs@[remote_ip]:[remote_port] SIP/2.0",
            f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}",
            "From: <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
            f"To: {to}", "Call-ID: [call_id]", f"CSeq: {cseq} {method}",
            f"Contact: <sip:src@[local_ip]:[local_port];transport=[transport]>;{contact_param}",
            "Max-Forwards: 70"]
    if require and method == "INVITE" and not in_dialog:
        head.append(f"Require: {require}")
    if extra_headers:
        head += extra_headers.strip().split("\n")
    if ctype:
        head.append(f"Content-Type: {ctype}")
    head.append("Content-Length: [len]")
    return "\n".join(head) + "\n\n" + body


def scenario(steps: list[str]) -> str:
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="callfort">\n'
            + "\n".join(steps) + "\n</scenario>\n")


def send(msg: str, retrans: bool = True) -> str:
    attr = ' retrans="500"' if retrans else ""
    return f"<send{attr}><![CDATA[\n{msg}\n]]></send>"


def recv(status: str | int, optional: bool = False, rrs: bool = False, extra: str = "") -> str:
    opt = ' optional="true"' if optional else ""
    rr = ' rrs="true"' if rrs else ""
    return f'<recv response="{status}"{opt}{rr}>{extra}</recv>'


ACK = ("ACK sip:srs@[remote_ip]:[remote_port] SIP/2.0\n"
       "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
       "From: <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n"
       "To: <sip:srs@[remote_ip]:[remote_port]>[peer_tag_param]\n"
       "Call-ID: [call_id]\nCSeq: {cseq} ACK\nMax-Forwards: 70\nContent-Length: 0\n")


def ack(cseq: int = 1) -> str:
    return send(ACK.replace("{cseq}", str(cseq)), retrans=False)


def play(pcap: Path) -> str:
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


def pause(ms: int) -> str:
    return f'<pause milliseconds="{ms}"/>'


def invite_answered(ctype: str, body: str, **kw: Any) -> list[str]:
    return [send(request("INVITE", ctype, body, **kw)), recv(100, optional=True),
            recv(200, rrs=True), ack()]


def bye(cseq: int = 2) -> list[str]:
    return [send(request("BYE", cseq=cseq, in_dialog=True)), recv(200)]
