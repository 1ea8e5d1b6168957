"""The SIPREC recording server (SRS): SIP over UDP and TCP, recording sessions, RTP, and the hand
over of live audio to the core's sink.

One recording session (RS) is one SIP dialog with the recording client (SRC, usually an SBC).
Its m-lines are mapped label -> stream -> participant through the metadata; the participant whose
AoR is configured as an advisor is the advisor, everybody else is the customer. The core decides
what is kept (advisor only until the advisor records the customer's consent); this source only
tells it whose voice a frame carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hookspecs.types import (
    AudioFrame,
    CallEvent,
    CallEventKind,
    CaptureSink,
    ChannelRole,
    Direction,
    RecordingMode,
)

from . import metadata as mdmod
from . import sdp as sdpmod
from .config import SiprecSettings
from .g722 import G722Decoder
from .g729 import G729Decoder
from .media import PortPool, RtpStream, open_stream
from .sipmsg import SipMessage, SipParseError, body_parts, head_length, parse, response
from .srtp import SrtpContext

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"
SUPPORTED_EXT = {"siprec", "timer", "100rel", "replaces", "norefersub"}
T1 = 0.5
BYE_GRACE = 0.1
METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")


def is_recording_session(msg: SipMessage) -> bool:
    """``Require: siprec`` or a Contact with ``+sip.src`` (leniently also a bare ``;src``)."""
    if "siprec" in msg.tokens("require"):
        return True
    contact = " ".join(msg.all("contact")).lower()
    return bool(re.search(r";\s*\+?sip\.src\b|;\s*src\b", contact))


class Reply:
    """Where responses for one request go (the UDP peer, or the TCP connection)."""

    def __init__(self, send: Callable[[bytes], None], udp: bool, peer: tuple[str, int], transport: str = "") -> None:
        self.send, self.udp, self.peer = send, udp, peer
        self.transport = transport or ("udp" if udp else "tcp")


class Session:
    def __init__(self, server: SiprecSource, invite: SipMessage, reply: Reply, src: str) -> None:
        self.server = server
        self.sip_call_id = invite.call_id
        cid = invite.call_id
        self.call_id = cid if len(cid) <= 100 and cid.isprintable() else "sr-" + hashlib.sha256(cid.encode()).hexdigest()[:40]
        self.src = src
        self.reply = reply
        self.to_tag = secrets.token_hex(6)
        self.t0 = time.monotonic()
        self.started_at: datetime = server.clock()
        self.sdp_session = secrets.randbelow(2**31)
        self.sdp_version = 0
        self.offer: sdpmod.Offer | None = None
        self.chosen: list[sdpmod.Chosen] = []
        self.ports: dict[int, int] = {}
        self.streams: dict[int, RtpStream] = {}
        self.metadata = mdmod.Metadata()
        self.roles: dict[int, ChannelRole | None] = {}
        self.advisor_id: str | None = None
        self.customer: str | None = None
        self.started = False
        self.ended = False
        self.held = False
        self.pending_invite: SipMessage | None = None
        self.cancelled = False
        self.backlog: dict[int, list[tuple[float, bytes, str]]] = {}
        self.g722: dict[int, G722Decoder] = {}
        self.mixed: set[int] = set()
        self.backlog_dropped = 0
        self.vendor: dict[str, str] = {}
        self.expires: int = 0
        self.timer: asyncio.TimerHandle | None = None
        self.retrans: asyncio.Task[None] | None = None
        self.acked = asyncio.Event()
        self.last_answer: bytes = b""
        self.metadata_updates = 0
        self.start_done = asyncio.Event()
        #: evidence: every metadata XML received (as sent) and the normalised state after each
        self.md_versions: list[dict[str, Any]] = []
        self.md_timeline: list[dict[str, Any]] = []
        self._evidence_bytes = 0

    def record_metadata(self, method: str, raw: bytes, md: mdmod.Metadata) -> None:
        """Keep one received metadata document and the merged state it produced (complete replaces,
        partial merges): sealed into the recording at its end as evidence."""
        at = round(time.monotonic() - self.t0, 3)
        self._evidence_bytes += len(raw)
        if self._evidence_bytes > 1 << 20:  # a runaway SRC: keep the hash, not the text
            xml = None
        else:
            xml = raw.decode("utf-8", "replace")
        self.md_versions.append({"at": at, "method": method, "mode": "complete" if md.complete else "partial",
                                 "sha256": hashlib.sha256(raw).hexdigest(), "xml": xml})
        m = self.metadata
        labels = {sid: lab for sid, lab in m.streams.items()}
        self.md_timeline.append({
            "at": at, "mode": "complete" if md.complete else "partial",
            "participants": [{"id": p.id, "aors": list(p.aors), "name": p.name,
                              "send": [labels.get(x, x) for x in p.send], "recv": [labels.get(x, x) for x in p.recv]}
                             for p in m.participants.values()],
            "streams": dict(m.streams), "vendor": dict(m.vendor), "session_ids": list(m.session_ids)})

    # ---------------------------------------------------------------- roles

    def resolve_roles(self) -> None:
        adv_idx: set[int] = set()
        cus_idx: set[int] = set()
        advisor = None
        customer = None
        assert self.offer is not None
        for m, c in zip(self.offer.media, self.chosen, strict=True):
            if c.codec is None:
                continue
            senders = self.metadata.senders_for_label(m.label, m.index)
            if not senders:
                continue
            advs = [a for a in (next((x for x in (self.server.settings.advisor_for(y) for y in p.aors) if x), None)
                                for p in senders) if a]
            others = [p for p in senders if p.aors and not any(self.server.settings.advisor_for(y) for y in p.aors)]
            if advs:
                advisor = advisor or advs[0]
            if others:
                # a customer's stream; a mixed stream (advisor and customer on one m-line) carries the
                # customer's voice too, so it is the customer's: kept only from the consent on
                cus_idx.add(m.index)
                customer = customer or others[0].aors[0]
                if advs:
                    self.mixed.add(m.index)
            elif advs:
                adv_idx.add(m.index)
        if advisor is None:
            # who is the advisor may come later (Avaya SBCE: a dummy participant first, then UPDATE)
            self.roles = {i: None for i in self.streams}
            return
        self.advisor_id = advisor
        self.customer = customer
        self.roles = {i: (ChannelRole.ADVISOR if i in adv_idx else ChannelRole.CUSTOMER) for i in self.streams}

    def on_audio(self, index: int, t: float, data: bytes, codec: str | None = None) -> None:
        if codec is None:
            codec = self.chosen[index].codec or "pcmu"
            if codec == "g729":
                codec = "pcm_s16le"  # decoded by the stream, in order
            elif codec == "g722":
                # decoded in arrival order (the ADPCM state runs on); 8 kHz lower sub-band
                dec = self.g722.get(index) or self.g722.setdefault(index, G722Decoder())
                data, codec = dec.decode_low(data), "pcm_s16le"
        role = self.roles.get(index)
        if role is None or not self.started:
            q = self.backlog.setdefault(index, [])
            q.append((t, data, codec))
            limit = self.server.settings.backlog_seconds * 8000 * (2 if codec == "pcm_s16le" else 1)
            while sum(len(d) for _, d, _ in q) > limit:
                q.pop(0)
                self.backlog_dropped += 1
            return
        self.server.frame(AudioFrame(call_id=self.call_id, role=role, timestamp=t, payload=data, codec=codec))

    def flush_backlog(self) -> None:
        backlog, self.backlog = self.backlog, {}
        for index, items in backlog.items():
            for t, data, codec in items:
                self.on_audio(index, t, data, codec)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, st in self.streams.items():
            role = self.roles.get(i)
            label = self.offer.media[i].label if self.offer else None
            out[f"{role.value if role else 'unknown'}:{label or i}"] = {**st.summary(), **({"mixed": 1} if i in self.mixed else {})}
        if self.backlog_dropped:
            out["backlog_dropped"] = self.backlog_dropped
        return out


class SiprecSource:
    """The capture source ``pbx_siprec``: a SIPREC SRS."""

    can_mute = False  # the SRC sends both voices; the core drops the customer's until consent

    def __init__(self, settings: SiprecSettings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.name = settings.name
        self.clock = clock
        self.sink: CaptureSink | None = None
        self.sessions: dict[str, Session] = {}
        self.by_call: dict[str, Session] = {}
        self.ports = PortPool(settings.rtp_min, settings.rtp_max, settings.listen)
        self._stop = asyncio.Event()
        self._servers: list[Any] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tx: OrderedDict[tuple[str, str, str, str], bytes] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ready = asyncio.Event()
        self.counters: dict[str, int] = {"invites": 0, "rejected": 0, "ended": 0, "frames": 0, "frame_errors": 0,
                                         "retransmissions": 0}
        self.last_error: str | None = None

    # ---------------------------------------------------------------- CaptureSource

    async def run(self, sink: CaptureSink) -> None:
        self.sink = sink
        loop = asyncio.get_running_loop()
        s = self.settings
        if "udp" in s.transports:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _SipUdp(self), local_addr=(s.listen, s.sip_port))
        if "tcp" in s.transports:
            self._servers.append(await asyncio.start_server(self._tcp_client, s.listen, s.sip_port))
        if "tls" in s.transports:
            self._servers.append(await asyncio.start_server(self._tcp_client, s.listen, s.tls_port,
                                                            ssl=s.tls_context(), ssl_handshake_timeout=10))
        self.ready.set()
        log.info("SIPREC recorder %s listening on %s:%d (%s)", self.name, s.listen, s.sip_port, ",".join(s.transports))
        try:
            await self._stop.wait()
        finally:
            for sess in list(self.sessions.values()):
                await self.end(sess, "recorder stopped")
            if self._udp is not None:
                self._udp.close()
            for srv in self._servers:
                srv.close()
                with contextlib.suppress(Exception):
                    await srv.wait_closed()
            self.ready.clear()

    async def set_mode(self, call_id: str, mode: RecordingMode) -> bool:
        # The SRC always sends both voices: the core's live spool applies the mode frame by frame.
        return call_id in self.by_call and not self.by_call[call_id].ended

    async def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, Any]:
        return {"connected": self.ready.is_set(), "last_error": self.last_error,
                "active_legs": [s.call_id for s in self.sessions.values()], **self.counters}

    # ---------------------------------------------------------------- sink helpers

    def frame(self, frame: AudioFrame) -> None:
        sink = self.sink
        if sink is None:
            return
        self.counters["frames"] += 1
        nowait = getattr(sink, "audio_frame_nowait", None)
        try:
            if nowait is not None:
                nowait(frame)
            else:
                self._spawn(sink.audio_frame(frame))
        except Exception as exc:  # a frame the core refuses must not take the recorder down
            self.counters["frame_errors"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("call %s: frame refused: %s", frame.call_id, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _event(self, sess: Session, kind: CallEventKind, **detail: str) -> None:
        if self.sink is None:
            return
        num = None
        if sess.customer:
            user = sess.customer.split(":", 1)[-1].split("@", 1)[0]
            num = user if re.fullmatch(r"\+?[0-9]{3,20}", user) else None
        pbx = sess.vendor.get("ucid") or sess.vendor.get("extTrackingID") or sess.vendor.get("callId") or (
            sess.metadata.session_ids[0] if sess.metadata.session_ids else None)
        await self.sink.call_event(CallEvent(
            kind=kind, call_id=sess.call_id, source=self.name,
            at=sess.started_at if kind is CallEventKind.STARTED else self.clock(), advisor_id=sess.advisor_id,
            customer_number=num, direction=Direction.INBOUND, pbx_call_id=(pbx or sess.sip_call_id)[:128],
            detail={k: v for k, v in detail.items() if v}))

    # ---------------------------------------------------------------- transport

    def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(self._tcp_loop(reader, writer))

    async def _tcp_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        tls = writer.get_extra_info("ssl_object") is not None
        reply = Reply(writer.write, False, peer, "tls" if tls else "tcp")
        if tls:
            cert = writer.get_extra_info("peercert") or {}
            log.info("SIP TLS connection from %s (client certificate: %s)", peer[0], "yes" if cert else "none")
        buf = bytearray()
        try:
            while not reader.at_eof():
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                while True:
                    while buf[:2] == b"\r\n":  # keep-alive CRLFs
                        del buf[:2]
                    hl = head_length(buf)
                    if hl < 0:
                        if len(buf) > 16384:
                            raise SipParseError("headers longer than 16 KiB", 0)
                        break
                    m = re.search(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", bytes(buf[:hl]), re.I)
                    length = int(m.group(1)) if m else 0
                    if length > self.settings.max_body:
                        with contextlib.suppress(SipParseError):
                            req = parse(bytes(buf[:hl]) + b"", max_body=1 << 30, stream=False)
                            reply.send(response(req, 413, "Request Entity Too Large"))
                        raise SipParseError("body too large", 0)
                    if len(buf) < hl + length:
                        break
                    data = bytes(buf[:hl + length])
                    del buf[:hl + length]
                    self._spawn(self.handle(data, reply, stream=True))
        except (SipParseError, ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("SIP TCP connection from %s closed: %s", peer[0], exc)
        finally:
            writer.close()

    async def handle(self, data: bytes, reply: Reply, stream: bool = False) -> None:
        if not data.strip():
            return
        try:
            msg = parse(data, self.settings.max_body, stream=stream)
        except SipParseError as exc:
            self.counters["rejected"] += 1
            log.info("malformed SIP message from %s: %s", reply.peer[0], exc)
            if exc.status:
                with contextlib.suppress(Exception):
                    req = parse(data[:head_length(data)] if head_length(data) > 0 else data, 1 << 30)
                    reply.send(response(req, exc.status, "Bad Request" if exc.status == 400 else "Too Large"))
            return
        if not msg.is_request:
            return  # we send no requests that expect responses
        try:
            await self._request(msg, reply)
        except SipParseError as exc:
            self.counters["rejected"] += 1
            self._send(msg, reply, response(msg, exc.status or 400, "Bad Request", to_tag=secrets.token_hex(4),
                                headers=[("Warning", f'399 callfort "{str(exc)[:80]}"')]))
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.exception("SIP request %s failed", msg.method)
            with contextlib.suppress(Exception):
                self._send(msg, reply, response(msg, 500, "Server Internal Error"))

    @staticmethod
    def _tx_key(msg: SipMessage) -> tuple[str, str, str, str]:
        """A server transaction: Call-ID, Via branch, method and CSeq (the CSeq tells apart the
        requests of an RFC 2543 client that sends no branch)."""
        return (msg.call_id, msg.branch, msg.method or "", (msg.get("cseq") or "").strip())

    def _remember(self, msg: SipMessage, data: bytes) -> None:
        self._tx[self._tx_key(msg)] = data
        while len(self._tx) > 20000:
            self._tx.popitem(last=False)

    def _send(self, msg: SipMessage, reply: Reply, data: bytes) -> None:
        self._remember(msg, data)
        reply.send(data)

    # ---------------------------------------------------------------- requests

    async def _request(self, msg: SipMessage, reply: Reply) -> None:
        method = msg.method or ""
        if method not in ("ACK", "CANCEL"):
            key = self._tx_key(msg)
            if key in self._tx:  # a retransmission (RFC 3261 17.2): absorbed
                self.counters["retransmissions"] += 1
                prev = self._tx[key]
                if prev:  # the last answer sent, final or provisional, goes out again
                    reply.send(prev)
                return  # still being handled: the answer is on its way
            self._remember(msg, b"")
            try:
                await self._dispatch(msg, reply)
            finally:
                if self._tx.get(key) == b"":  # ended without an answer: a retransmission is handled anew
                    del self._tx[key]
            return
        await self._dispatch(msg, reply)

    async def _dispatch(self, msg: SipMessage, reply: Reply) -> None:
        method = msg.method or ""
        sess = self.sessions.get(msg.call_id)
        if method == "OPTIONS":
            self._send(msg, reply, response(msg, 200, "OK", to_tag=secrets.token_hex(4), headers=[
                ("Allow", ALLOW), ("Supported", "siprec, timer"), ("Accept", "application/sdp, multipart/mixed")]))
            return
        src = self.settings.src_for(reply.peer[0])
        if src is None:
            self.counters["rejected"] += 1
            log.warning("SIP %s from %s refused: not a configured recording client", method, reply.peer[0])
            if method != "ACK":
                self._send(msg, reply, response(msg, 403, "Forbidden", to_tag=secrets.token_hex(4)))
            return
        if method == "INVITE" and msg.tag("to") is None:
            await self._initial_invite(msg, reply, src.name)
            return
        if method == "ACK":
            if sess is not None:
                sess.acked.set()
            return
        if method == "CANCEL":
            await self._cancel(msg, reply, sess)
            return
        if sess is None or sess.ended:
            self._send(msg, reply, response(msg, 481, "Call/Transaction Does Not Exist"))
            return
        if method == "BYE":
            self._send(msg, reply, response(msg, 200, "OK"))
            await asyncio.sleep(BYE_GRACE)  # RTP sent just before the BYE may still be in flight
            await self.end(sess, "BYE from the recording client")
        elif method in ("INVITE", "UPDATE"):
            await self._modify(sess, msg, reply)
        else:
            self._send(msg, reply, response(msg, 405, "Method Not Allowed", headers=[("Allow", ALLOW)]))

    def _reject(self, msg: SipMessage, reply: Reply, status: int, reason: str, warning: str = "",
                headers: list[tuple[str, str]] | None = None) -> None:
        self.counters["rejected"] += 1
        h = list(headers or [])
        if warning:
            h.append(("Warning", f'399 callfort "{warning[:100]}"'))
        log.info("recording session %s refused: %d %s %s", msg.call_id[:40], status, reason, warning)
        self._send(msg, reply, response(msg, status, reason, to_tag=secrets.token_hex(4), headers=h))

    async def _initial_invite(self, msg: SipMessage, reply: Reply, src: str) -> None:
        self.counters["invites"] += 1
        if not is_recording_session(msg):
            self._reject(msg, reply, 403, "Forbidden", "not a recording session (no Require: siprec / +sip.src)")
            return
        unsupported = msg.tokens("require") - SUPPORTED_EXT
        if unsupported:
            self._reject(msg, reply, 420, "Bad Extension", headers=[("Unsupported", ", ".join(sorted(unsupported)))])
            return
        if msg.call_id in self.sessions:
            self._reject(msg, reply, 482, "Loop Detected")
            return
        try:
            parts = body_parts(msg)
            sdp_raw = parts.get("application/sdp")
            if not sdp_raw:
                self._reject(msg, reply, 488, "Not Acceptable Here", "an SDP offer is required")
                return
            offer = sdpmod.parse(sdp_raw)
            raw_md = next((parts[t] for t in METADATA_TYPES if t in parts), None)
            md = mdmod.parse(raw_md) if raw_md else mdmod.Metadata()
        except (SipParseError, sdpmod.SdpError, mdmod.MetadataError) as exc:
            status = getattr(exc, "status", 400)
            self._reject(msg, reply, status, "Bad Request" if status == 400 else "Not Acceptable Here", str(exc))
            return
        init_md = (raw_md, md) if raw_md else None
        chosen = [sdpmod.choose(m) for m in offer.media]
        if not any(c.codec for c in chosen):
            why = "; ".join(sorted({c.reason for c in chosen}))
            self._reject(msg, reply, 488, "Not Acceptable Here", why,
                         headers=[("Warning", '305 callfort "SRTP crypto suite not supported (AES_CM_128_HMAC_SHA1_80/32 only)"')] if "srtp" in why else None)
            return
        sess = Session(self, msg, reply, src)
        sess.offer, sess.chosen, sess.metadata = offer, chosen, md
        if init_md is not None:
            sess.record_metadata("INVITE", *init_md)
        sess.vendor = dict(md.vendor)
        ucid = mdmod.ucid_from_uui(msg.get("user-to-user"))
        if ucid:
            sess.vendor.setdefault("ucid", ucid)
        sess.pending_invite = msg
        self.sessions[msg.call_id] = sess
        self.by_call[sess.call_id] = sess
        if reply.udp:
            self._send(msg, reply, response(msg, 100, "Trying"))
        try:
            await self._open_media(sess, list(range(len(offer.media))))
        except OSError as exc:
            self.sessions.pop(msg.call_id, None)
            self.by_call.pop(sess.call_id, None)
            self._reject(msg, reply, 503, "Service Unavailable", str(exc))
            return
        sess.expires = self._negotiate_timer(msg)
        sess.resolve_roles()
        if sess.advisor_id:
            await self._start(sess)  # the catalog knows the call before the SRC is answered
        await asyncio.sleep(0)
        if sess.cancelled:
            return
        sess.pending_invite = None
        self._answer(sess, msg, reply)
        if sess.started:
            await self._event(sess, CallEventKind.ANSWERED)
        self._arm_timer(sess)

    def _negotiate_timer(self, msg: SipMessage) -> int:
        se = msg.get("session-expires")
        want = self.settings.session_expires
        if se is None or want <= 0:
            return 0
        try:
            asked = int(se.split(";")[0].strip())
        except ValueError:
            return want
        return max(90, min(asked, want)) if asked > 0 else want

    def _answer(self, sess: Session, msg: SipMessage, reply: Reply, with_sdp: bool = True) -> None:
        port = self.settings.tls_port if reply.transport == "tls" else self.settings.sip_port
        headers = [("Contact", f"<sip:srs@{self.settings.advertise}:{port}"
                               f";transport={reply.transport}>;+sip.srs"),
                   ("Allow", ALLOW), ("Supported", "siprec, timer")]
        if msg.method == "INVITE" and "siprec" in msg.tokens("require"):
            headers.append(("Require", "siprec" + (", timer" if sess.expires else "")))
        elif sess.expires:
            headers.append(("Require", "timer"))
        if sess.expires:
            headers.append(("Session-Expires", f"{sess.expires};refresher=uac"))
        body = b""
        if with_sdp:
            assert sess.offer is not None
            sess.sdp_version += 1
            body = sdpmod.answer(sess.offer, sess.chosen, sess.ports, self.settings.advertise, sess.sdp_session,
                                 sess.sdp_version)
            sess.last_answer = body
        data = response(msg, 200, "OK", to_tag=sess.to_tag, headers=headers, body=body)
        self._send(msg, reply, data)
        if reply.udp and msg.method == "INVITE":
            sess.acked.clear()
            if sess.retrans is not None:
                sess.retrans.cancel()
            sess.retrans = asyncio.ensure_future(self._retransmit(sess, reply, data))

    async def _retransmit(self, sess: Session, reply: Reply, data: bytes) -> None:
        delay = T1
        waited = 0.0
        while waited < 64 * T1 and not sess.ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sess.acked.wait(), delay)
                return
            waited += delay
            reply.send(data)
            delay = min(delay * 2, 4.0)

    async def _open_media(self, sess: Session, indices: list[int]) -> None:
        assert sess.offer is not None
        usable = [i for i in indices if sess.chosen[i].codec is not None]
        if not usable:
            return
        first = min(sess.ports, default=None)
        base0 = sess.ports[first] - 2 * first if first is not None else None
        if base0 is not None and self.ports.take_exact([base0 + 2 * i for i in usable]):
            # a stream added later (transfer) at base + 2 x m-line index, where SRCs that send
            # stream n to base + 2n (sipp) expect it
            step = [base0 + 2 * i for i in usable]
        else:
            base = self.ports.take(len(usable))
            step = [base + 2 * n for n in range(len(usable))]
        loop = asyncio.get_running_loop()
        for n, i in enumerate(usable):
            c = sess.chosen[i]
            port = step[n]
            sess.ports[i] = port
            st = RtpStream(i, port, c.pt or 0, c.dtmf_pt, sess.t0,
                           (lambda idx: (lambda t, d: sess.on_audio(idx, t, d)))(i))
            if c.crypto is not None:
                st.srtp = SrtpContext(c.crypto)
            if c.codec == "g729":
                st.decode, st._bps = G729Decoder().decode, 16000
            try:
                await open_stream(loop, self.settings.listen, st)
            except OSError:
                self.ports.release(list(sess.ports.values()))
                raise
            st.active = not sess.offer.media[i].inactive
            sess.streams[i] = st

    async def _start(self, sess: Session) -> None:
        if sess.started or sess.ended:
            return
        sess.started = True
        try:
            await self._event(sess, CallEventKind.STARTED, src=sess.src)
        finally:
            sess.start_done.set()
        sess.flush_backlog()

    def _arm_timer(self, sess: Session) -> None:
        if sess.timer is not None:
            sess.timer.cancel()
        if sess.expires:
            loop = asyncio.get_running_loop()
            sess.timer = loop.call_later(sess.expires, lambda: self._spawn(
                self.end(sess, "session timer expired (no refresh from the recording client)")))

    async def _cancel(self, msg: SipMessage, reply: Reply, sess: Session | None) -> None:
        if sess is None or sess.pending_invite is None or sess.pending_invite.branch != msg.branch:
            # nothing pending: the INVITE was answered already (CANCEL then has no effect) or is unknown
            self._send(msg, reply, response(msg, 200 if sess is not None else 481,
                                            "OK" if sess is not None else "Call/Transaction Does Not Exist"))
            return
        self._send(msg, reply, response(msg, 200, "OK"))
        inv = sess.pending_invite
        sess.cancelled = True
        sess.pending_invite = None
        self._send(inv, reply, response(inv, 487, "Request Terminated", to_tag=sess.to_tag))
        await self.end(sess, "cancelled by the recording client")

    async def _modify(self, sess: Session, msg: SipMessage, reply: Reply) -> None:
        """re-INVITE or UPDATE: new SDP (hold/resume, new streams), new metadata, or a session refresh."""
        try:
            parts = body_parts(msg)
            sdp_raw = parts.get("application/sdp")
            new_offer = sdpmod.parse(sdp_raw) if sdp_raw else None
            raw_md = next((parts[t] for t in METADATA_TYPES if t in parts), None)
            md = mdmod.parse(raw_md) if raw_md else None
        except (SipParseError, sdpmod.SdpError, mdmod.MetadataError) as exc:
            status = getattr(exc, "status", 400)
            self._send(msg, reply, response(msg, status, "Bad Request" if status == 400 else "Not Acceptable Here",
                                            headers=[("Warning", f'399 callfort "{str(exc)[:100]}"')]))
            return
        if md is not None:
            sess.metadata = sess.metadata.merge(md)
            sess.vendor.update(md.vendor)
            sess.metadata_updates += 1
            assert raw_md is not None
            sess.record_metadata(msg.method or "", raw_md, md)
        if new_offer is not None:
            assert sess.offer is not None
            old = sess.offer
            if len(new_offer.media) < len(old.media):
                self._send(msg, reply, response(msg, 488, "Not Acceptable Here",
                                                headers=[("Warning", '399 callfort "m-lines may not be removed"')]))
                return
            chosen = list(sess.chosen)
            for m in new_offer.media[len(old.media):]:
                chosen.append(sdpmod.choose(m))
            sess.offer, sess.chosen = new_offer, chosen
            added = list(range(len(old.media), len(new_offer.media)))
            if added:
                try:
                    await self._open_media(sess, added)
                except OSError as exc:
                    log.warning("call %s: no ports for new streams: %s", sess.call_id, exc)
            all_inactive = all(m.inactive for i, m in enumerate(new_offer.media) if i in sess.streams)
            for i, st in sess.streams.items():
                was = st.active
                st.active = not new_offer.media[i].inactive
                # a new offer may move the sender (an SBC re-originating media after a transfer):
                # latch again if packets come from a new address within the next second (50 packets)
                st.relatch = 50
                st._fast = False
                if was and not st.active:
                    st.drain()
                elif st.active and not was:
                    st.reanchor()
            if all_inactive and not sess.held:
                sess.held = True
                if sess.started:
                    await self._event(sess, CallEventKind.HELD)
            elif not all_inactive and sess.held:
                sess.held = False
                if sess.started:
                    await self._event(sess, CallEventKind.RESUMED)
        if md is not None or new_offer is not None:
            sess.resolve_roles()
            if sess.advisor_id and not sess.started:
                await self._start(sess)
                await self._event(sess, CallEventKind.ANSWERED)
                if sess.held:
                    await self._event(sess, CallEventKind.HELD)
        if msg.method == "INVITE":
            # an INVITE without SDP asks for our offer: the current SDP (session refresh)
            self._answer(sess, msg, reply, with_sdp=True)
        else:
            self._answer(sess, msg, reply, with_sdp=new_offer is not None)
        self._arm_timer(sess)

    async def end(self, sess: Session, reason: str) -> None:
        if sess.ended:
            return
        sess.ended = True
        if sess.timer is not None:
            sess.timer.cancel()
        if sess.retrans is not None:
            sess.retrans.cancel()
        for st in sess.streams.values():
            st.drain()
            if st.transport is not None:
                st.transport.close()
        self.ports.release(list(sess.ports.values()))
        self.sessions.pop(sess.sip_call_id, None)
        self.by_call.pop(sess.call_id, None)
        self.counters["ended"] += 1
        if not sess.started and not sess.cancelled and sess.backlog:
            log.warning("call %s ended before its advisor was known: %d s of audio not recorded", sess.call_id,
                        sum(len(d) for q in sess.backlog.values() for _, d, _ in q) // 8000)
        if sess.started:
            await sess.start_done.wait()  # the catalog sees the start before the end
            stats = sess.stats()
            stats["metadata_updates"] = sess.metadata_updates
            # time and duration only: the digits can be card numbers (PCI) and never go to the log
            stats["dtmf"] = [{"at": e["at"], "duration": e["duration"], "stream": i}
                             for i, st in sess.streams.items() for e in st.events]
            evidence = {"kind": "siprec-metadata", "versions": sess.md_versions, "timeline": sess.md_timeline}
            await self._event(sess, CallEventKind.ENDED, reason=reason, media_stats=json.dumps(stats),
                              evidence=json.dumps(evidence) if sess.md_versions else "")


class _SipUdp(asyncio.DatagramProtocol):
    def __init__(self, source: SiprecSource) -> None:
        self.source = source
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        t = self.transport
        assert t is not None
        reply = Reply(lambda b: t.sendto(b, addr), True, addr[:2])
        self.source._spawn(self.source.handle(data, reply))
