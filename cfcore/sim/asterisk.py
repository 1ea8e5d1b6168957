"""A simulated Asterisk PBX that speaks the Asterisk Manager Interface (AMI).

**A simulator for ``cf demo`` and the tests, not production code.** It was written from
Asterisk's published AMI documentation (actions Login, Challenge, Ping, Logoff,
CoreShowChannels, MixMonitor, MixMonitorMute, StopMixMonitor; the events they and calls raise)
and from the event order measured on a real Asterisk 22 in ``FIELD-NOTES.md``. No real Asterisk
was available while writing it; where it differs from a real one, the real one is right.

What it does:

- the banner ``Asterisk Call Manager/11.0.0``, CRLF framing, ``Response``/``Event``/``ActionID``;
  Login with the plain secret or an MD5 challenge (wrong credentials: ``Response: Error`` and the
  connection is closed, as Asterisk does); TCP or TLS;
- call flows driven by the caller of this class (inbound, outbound, answer, hold, blind transfer,
  hangup) with the events of FIELD-NOTES in that order, on PJSIP channel names, with Uniqueid and
  Linkedid like Asterisk's;
- MixMonitor with ``r(file)`` and ``t(file)`` (and the ``b`` flag: write only while bridged):
  writes two mono 8 kHz PCM16 WAV files the way MixMonitor does: ``r`` = the advisor's voice (a
  440 Hz tone here), ``t`` = the customer's voice (660 Hz); a muted direction is written as
  silence, so both files stay the same length and aligned; the WAV header sizes are written when
  the file is closed (StopMixMonitor or hangup); a ``Command`` of the form ``touch '<path>'`` is
  carried out (nothing else is executed);
- **audio only while frames flow** (FIELD-NOTES 2026-12-02): MixMonitor writes while at least one
  direction carries RTP (the silent direction as silence); with no RTP in either direction (hold,
  or silence suppression on both phones, ``rtp()``) the files do not grow at all, so a file is
  shorter than the call;
- the files are written through a stdio-like buffer of ``write_buffer`` bytes (glibc: 4096 on
  ext4/xfs): the size a reader sees lags what MixMonitor wrote by up to that much;
- the event order, fields and quirks measured on Asterisk 22.10 (no ``MixMonitorStop`` at hangup,
  ``Hangup`` keeping the last channel state, cause 127 + ``TechCause`` for unanswered calls, the
  outbound trunk's number by ``NewCallerid`` with ``Exten=s``, no ``MixMonitorID``, ...);
- AMI write permissions (``write_perms``): ``MixMonitor`` needs ``system``, ``MixMonitorMute``
  and ``StopMixMonitor`` ``system`` or ``call``, ``CoreShowChannels`` ``system`` or ``reporting``;
  otherwise ``Permission denied``, as Asterisk answers;
- fault injection: drop all AMI connections, refuse new ones for a while, inject raw bytes.

Time comes from the clock it is given (a ``FrozenClock`` in tests): the audio written between
two changes is exactly as long as the clock moved while frames flowed, so tests can assert
sample-exact positions (``Monitor.mutes`` records the sample position of every mute change).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import re
import secrets
import shlex
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
RATE = 8000
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


def _now() -> datetime:
    return datetime.now(UTC)


def tone_table(freq: int, amplitude: int = 9000, rate: int = RATE) -> bytes:
    """One second of a sine tone as PCM16LE (integer frequencies repeat exactly every second)."""
    a = array.array("h", (int(amplitude * math.sin(2 * math.pi * freq * n / rate)) for n in range(rate)))
    if a.itemsize != 2:
        raise RuntimeError("array('h') is not 16 bit here")
    return a.tobytes() if struct.pack("=h", 1) == struct.pack("<h", 1) else _swap(a)


def _swap(a: array.array[int]) -> bytes:
    a.byteswap()
    return a.tobytes()


@dataclass
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    endpoint: str
    state: int = 0
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = "from-internal"
    exten: str = "s"
    priority: str = "1"
    bridge: str | None = None
    monitor: Monitor | None = None
    gone: bool = False
    #: the phone / trunk sends RTP (False: silence suppression, a dead line)
    sending: bool = True
    #: the channel put its peer on hold (neither direction carries frames on this channel)
    held: bool = False
    #: the channel that ran Dial (the caller), for AppDial in CoreShowChannel
    dialled: bool = False


@dataclass
class Monitor:
    """One MixMonitor with r() and t() files on a channel."""

    id: str
    channel: SimChannel
    r_path: Path
    t_path: Path
    started: datetime
    adv_tone: bytes
    cus_tone: bytes
    #: () -> (advisor frames flow, customer frames flow) right now
    flows: Callable[[], tuple[bool, bool]]
    honour_mute: bool = True
    command: str | None = None
    bridged_only: bool = False
    write_buffer: int = 4096
    mute_read: bool = False
    mute_write: bool = False
    written: int = 0  # samples per file, as MixMonitor wrote them (buffered or not)
    closed: bool = False
    #: (direction, state, sample position) of every MixMonitorMute, in order
    mutes: list[tuple[str, bool, int]] = field(default_factory=list)
    _flow_us: int = 0  # microseconds during which frames flowed
    _last: datetime | None = None
    _files: list = field(default_factory=list)  # type: ignore[type-arg]
    _bufs: list[bytearray] = field(default_factory=list)

    def open(self) -> None:
        for p in (self.r_path, self.t_path):
            p.parent.mkdir(parents=True, exist_ok=True)
            f = open(p, "wb")  # noqa: SIM115 - closed in close()
            self._files.append(f)
            self._bufs.append(bytearray())
        self._last = self.started
        for i in (0, 1):
            self._emit(i, _wav_header(0))  # sizes 0 until the file is closed, like Asterisk

    def _emit(self, i: int, data: bytes) -> None:
        """Write through a stdio-like buffer: the file grows in whole buffers."""
        if self.write_buffer <= 0:
            self._files[i].write(data)
            self._files[i].flush()
            return
        buf = self._bufs[i]
        buf += data
        if len(buf) >= self.write_buffer:
            n = len(buf) - len(buf) % self.write_buffer
            self._files[i].write(bytes(buf[:n]))
            self._files[i].flush()
            del buf[:n]

    def advance(self, now: datetime) -> None:
        """Write the audio of the time since the last call, in the state that held meanwhile."""
        if self.closed or self._last is None:
            return
        us = int((now - self._last) / timedelta(microseconds=1))
        if us <= 0:
            return
        self._last = now
        adv, cus = self.flows()
        if not (adv or cus):
            return  # no frames, no audio: the files do not grow
        self._flow_us += us
        target = (self._flow_us * RATE + 500_000) // 1_000_000
        n = target - self.written
        if n <= 0:
            return
        silent_r = not adv or (self.mute_read and self.honour_mute)
        silent_t = not cus or (self.mute_write and self.honour_mute)
        for i, tone, silent in ((0, self.adv_tone, silent_r), (1, self.cus_tone, silent_t)):
            self._emit(i, b"\x00\x00" * n if silent else _slice(tone, self.written, n))
        self.written = target

    def visible_size(self, which: int = 0) -> int:
        """The size a reader of the file sees now (what left the buffer)."""
        return self._files[which].tell() if not self.closed else (self.r_path, self.t_path)[which].stat().st_size

    def close(self, now: datetime) -> None:
        if self.closed:
            return
        self.advance(now)
        for f, buf in zip(self._files, self._bufs, strict=True):
            f.write(bytes(buf))
            buf.clear()
            size = f.tell()
            f.seek(0)
            f.write(_wav_header(size - 44))
            f.close()
        self.closed = True
        self._run_command()

    def _run_command(self) -> None:
        if not self.command:
            return
        try:
            parts = shlex.split(self.command)
        except ValueError:
            parts = []
        root = self.r_path.parent
        if len(parts) == 2 and parts[0] in ("touch", "/bin/touch", "/usr/bin/touch"):
            target = Path(parts[1])
            if target.parent.resolve() == root.resolve():
                target.touch()
                return
        log.warning("simulated MixMonitor ignores Command %r (only touch in the spool is carried out)", self.command)


def _slice(table: bytes, start_sample: int, n: int) -> bytes:
    """``n`` samples of the periodic ``table`` starting at sample ``start_sample``."""
    period = len(table) // 2
    out = bytearray()
    pos = start_sample % period
    remaining = n
    while remaining:
        take = min(remaining, period - pos)
        out += table[pos * 2:(pos + take) * 2]
        remaining -= take
        pos = 0
    return bytes(out)


def _wav_header(data_size: int, rate: int = RATE) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_size))


@dataclass
class SimCall:
    """A call in the simulator, as the test or demo drives it."""

    caller: SimChannel
    callee: SimChannel
    advisor: SimChannel
    customer: SimChannel
    direction: str  # in | out
    bridge: str | None = None
    answered: bool = False
    ended: bool = False

    @property
    def linkedid(self) -> str:
        return self.caller.linkedid


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.logged_in = False
        self.events = True
        self.challenge: str | None = None
        self.username: str | None = None

    def send(self, headers: list[tuple[str, str]]) -> None:
        if self.writer.is_closing():
            return
        self.writer.write("".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n")


class AsteriskSim:
    """The simulated PBX. ``await start()``, drive calls, ``await stop()``."""

    def __init__(self, *, monitor_root: Path, username: str = "callfort", secret: str = "",
                 clock: Callable[[], datetime] = _now, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, honour_mute: bool = True,
                 advisor_tone: int = 440, customer_tone: int = 660, trunk: str = "PJSIP/trunk",
                 write_buffer: int = 4096, write_perms: tuple[str, ...] = ("call", "system"),
                 read_perms: tuple[str, ...] = ("call", "system")) -> None:
        self.monitor_root = Path(monitor_root)
        self.monitor_root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.secret = secret or secrets.token_hex(8)
        self.clock = clock
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.honour_mute = honour_mute
        self.trunk = trunk
        self.write_buffer = write_buffer
        self.write_perms = set(write_perms)
        self.read_perms = set(read_perms)
        self._adv_tone = tone_table(advisor_tone)
        self._cus_tone = tone_table(customer_tone)
        self._server: asyncio.Server | None = None
        self.conns: set[_Conn] = set()
        self.refusing = False
        self.channels: dict[str, SimChannel] = {}  # by name
        self.calls: list[SimCall] = []
        self._epoch = int(clock().timestamp())
        self._seq = itertools.count(0)
        self._bridge_seq = itertools.count(1)
        self._mon_seq = itertools.count(1)
        self.logins_ok = 0
        self.logins_failed = 0
        #: every action received, with Secret and Key masked: (action, {field: value})
        self.actions: list[tuple[str, dict[str, str]]] = []
        #: called before an action is answered (tests: hang up while consent is being applied)
        self.before_action: Callable[[str, dict[str, str]], Awaitable[None] | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ server
    async def start(self) -> AsteriskSim:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.ssl_context,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        now = self.clock()
        self._advance(now)
        for ch in self.channels.values():
            if ch.monitor is not None:
                ch.monitor.close(now)
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        if self._tasks:
            # Aborted transports end the connection handlers by themselves (cancelling them
            # makes asyncio log the cancellation as an error).
            _, pending = await asyncio.wait(list(self._tasks), timeout=2)
            for t in pending:
                t.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> AsteriskSim:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def drop_connections(self) -> None:
        """Cut every AMI connection at once (a network failure)."""
        for c in list(self.conns):
            transport = c.writer.transport
            if transport is not None:
                transport.abort()
        self.conns.clear()

    def inject(self, data: bytes) -> None:
        """Send raw bytes to every logged-in connection (malformed-frame tests)."""
        for c in self.conns:
            if c.logged_in and not c.writer.is_closing():
                c.writer.write(data)

    @property
    def logged_in(self) -> int:
        return sum(1 for c in self.conns if c.logged_in)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        if self.refusing:
            writer.close()
            return
        conn = _Conn(writer)
        self.conns.add(conn)
        buf = b""
        try:
            writer.write(BANNER)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                while True:
                    m = re.search(rb"\r?\n\r?\n", buf)
                    if m is None:
                        break
                    raw, buf = buf[: m.start()], buf[m.end():]
                    if raw.strip():
                        await self._handle(conn, _parse(raw))
                    if writer.is_closing():
                        return
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.conns.discard(conn)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------------ actions
    async def _handle(self, conn: _Conn, msg: dict[str, str]) -> None:
        lower = {k.lower(): v for k, v in msg.items()}
        action = lower.get("action", "")
        aid = lower.get("actionid")
        masked = {k: ("***" if k.lower() in ("secret", "key") else v) for k, v in msg.items()}
        self.actions.append((action, masked))

        def reply(headers: list[tuple[str, str]]) -> None:
            out = headers[:1] + ([("ActionID", aid)] if aid is not None else []) + headers[1:]
            conn.send(out)

        def error(message: str) -> None:
            reply([("Response", "Error"), ("Message", message)])

        if not action:
            error("Missing action in request")
            return
        if self.before_action is not None:
            res = self.before_action(action, lower)
            if asyncio.iscoroutine(res):
                await res
        a = action.lower()
        if a == "challenge":
            if lower.get("authtype", "").lower() != "md5":
                error("Must specify AuthType")
                return
            conn.challenge = str(secrets.randbelow(10**9))
            reply([("Response", "Success"), ("Challenge", conn.challenge)])
            return
        if a == "login":
            ok = lower.get("username") == self.username
            if lower.get("authtype", "").lower() == "md5":
                expect = hashlib.md5(((conn.challenge or "") + self.secret).encode(), usedforsecurity=False).hexdigest()
                ok = ok and conn.challenge is not None and lower.get("key", "") == expect
            else:
                ok = ok and lower.get("secret", "") == self.secret
            if not ok:
                self.logins_failed += 1
                error("Authentication failed")
                conn.writer.close()  # Asterisk drops the session after a failed login
                return
            self.logins_ok += 1
            conn.logged_in = True
            conn.username = lower.get("username")
            conn.events = lower.get("events", "on").lower() != "off"
            reply([("Response", "Success"), ("Message", "Authentication accepted")])
            if conn.events:
                conn.send([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "1"),
                           ("LastReload", "1"), ("Status", "Fully Booted")])
            return
        if a == "logoff":
            reply([("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])
            conn.writer.close()
            return
        if not conn.logged_in:
            error("Permission denied")
            return
        needs = _WRITE_PERMS.get(a)
        if needs is not None and not (needs & self.write_perms):
            error("Permission denied")  # what Asterisk answers for an action outside the write classes
            return
        self._advance(self.clock())
        if a == "ping":
            ts = f"{self.clock().timestamp():.6f}"
            reply([("Response", "Success"), ("Ping", "Pong"), ("Timestamp", ts)])
            return
        if a == "coreshowchannels":
            live = [c for c in self.channels.values() if not c.gone]
            reply([("Response", "Success"), ("EventList", "start"), ("Message", "Channels will follow")])
            for ch in live:
                # Measured: a dialled channel shows AppDial "(Outgoing Line)" even while bridged;
                # BridgeId comes last.
                app, data = ("AppDial", "(Outgoing Line)") if ch.dialled else ("Dial", "")
                conn.send([("Event", "CoreShowChannel")] + ([("ActionID", aid)] if aid else []) + self._chan_headers(ch) +
                          [("Application", app), ("ApplicationData", data), ("Duration", "00:00:01"),
                           ("BridgeId", ch.bridge or "")])
            conn.send([("Event", "CoreShowChannelsComplete")] + ([("ActionID", aid)] if aid else []) +
                      [("EventList", "Complete"), ("ListItems", str(len(live)))])
            return
        if a in ("mixmonitor", "mixmonitormute", "stopmixmonitor"):
            target = self.channels.get(lower.get("channel", ""))
            if target is None or target.gone:
                error("No such channel")
                return
            getattr(self, f"_act_{a}")(target, lower, reply, error)
            return
        error(f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands.")

    def _act_mixmonitor(self, ch: SimChannel, f: dict[str, str], reply: Callable[..., None],
                        error: Callable[[str], None]) -> None:
        opts = f.get("options", "")
        parsed = dict(re.findall(r"([A-Za-z])(?:\(([^)]*)\))?", opts))
        flags = "".join(k for k in parsed)
        r, t = parsed.get("r"), parsed.get("t")
        if not r or not t:
            # The real MixMonitor would also write a mixed file; CallFort never asks for one.
            error("The simulator supports MixMonitor with r() and t() only")
            return
        paths = []
        for p in (r, t):
            path = Path(p) if p.startswith("/") else self.monitor_root / p
            if self.monitor_root.resolve() not in path.resolve().parents:
                error(f"Cannot write outside the monitor spool: {p}")
                return
            paths.append(path)
        if ch.monitor is not None and not ch.monitor.closed:
            ch.monitor.close(self.clock())
        mon = Monitor(id=f"{next(self._mon_seq):x}", channel=ch, r_path=paths[0], t_path=paths[1], started=self.clock(),
                      adv_tone=self._adv_tone, cus_tone=self._cus_tone, flows=lambda: self._flows(ch),
                      honour_mute=self.honour_mute, command=f.get("command"), bridged_only="b" in flags,
                      write_buffer=self.write_buffer)
        mon.open()
        ch.monitor = mon
        reply([("Response", "Success")])  # measured: no MixMonitorID in the response
        self._event("MixMonitorStart", ch)

    def _act_mixmonitormute(self, ch: SimChannel, f: dict[str, str], reply: Callable[..., None],
                            error: Callable[[str], None]) -> None:
        mon = ch.monitor
        if mon is None or mon.closed:
            error("Cannot set mute flag")
            return
        direction = f.get("direction", "").lower()
        if direction not in ("read", "write", "both"):
            error("Invalid direction specified")
            return
        state = f.get("state", "").lower() in ("1", "yes", "true", "on")
        mon.advance(self.clock())
        mon.mutes.append((direction, state, mon.written))
        if direction in ("read", "both"):
            mon.mute_read = state
        if direction in ("write", "both"):
            mon.mute_write = state
        reply([("Response", "Success")])
        self._event("MixMonitorMute", ch, [("Direction", direction), ("State", "1" if state else "0")])

    def _act_stopmixmonitor(self, ch: SimChannel, f: dict[str, str], reply: Callable[..., None],
                            error: Callable[[str], None]) -> None:
        mon = ch.monitor
        if mon is None or mon.closed:
            error("Could not stop monitoring channel")
            return
        mon.close(self.clock())
        reply([("Response", "Success")])
        self._event("MixMonitorStop", ch)

    # ------------------------------------------------------------------ events
    def _chan_headers(self, ch: SimChannel, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [(f"{p}Channel", ch.name), (f"{p}ChannelState", str(ch.state)),
                (f"{p}ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
                (f"{p}CallerIDNum", ch.caller_num or "<unknown>"), (f"{p}CallerIDName", ch.caller_name or "<unknown>"),
                (f"{p}ConnectedLineNum", ch.connected_num or "<unknown>"),
                (f"{p}ConnectedLineName", ch.connected_name or "<unknown>"), (f"{p}Language", "en"),
                (f"{p}AccountCode", ""), (f"{p}Context", ch.context), (f"{p}Exten", ch.exten),
                (f"{p}Priority", ch.priority), (f"{p}Uniqueid", ch.uniqueid), (f"{p}Linkedid", ch.linkedid)]

    def _event(self, name: str, ch: SimChannel | None = None, extra: list[tuple[str, str]] | None = None,
               dest: SimChannel | None = None, pre: list[tuple[str, str]] | None = None) -> None:
        headers = [("Event", name), ("Privilege", "call,all")] + (pre or [])
        if ch is not None:
            headers += self._chan_headers(ch)
        if dest is not None:
            headers += self._chan_headers(dest, "Dest")
        headers += extra or []
        for c in self.conns:
            if c.logged_in and c.events:
                c.send(headers)

    def _bridge_headers(self, bid: str, n: int) -> list[tuple[str, str]]:
        return [("BridgeUniqueid", bid), ("BridgeType", "basic"), ("BridgeTechnology", "simple_bridge"),
                ("BridgeCreator", "<unknown>"), ("BridgeName", "<unknown>"), ("BridgeNumChannels", str(n)),
                ("BridgeVideoSourceMode", "none")]

    def _new_channel(self, endpoint: str, *, linkedid: str | None = None, state: int = 0, caller_num: str = "",
                     connected_num: str = "", context: str = "from-advisor", exten: str = "") -> SimChannel:
        n = next(self._seq)
        uid = f"{self._epoch}.{n}"
        ch = SimChannel(name=f"{endpoint}-{n:08x}", uniqueid=uid, linkedid=linkedid or uid, endpoint=endpoint,
                        state=state, caller_num=caller_num, connected_num=connected_num, context=context, exten=exten)
        self.channels[ch.name] = ch
        self._event("Newchannel", ch)
        return ch

    def _set_state(self, ch: SimChannel, state: int) -> None:
        ch.state = state
        self._event("Newstate", ch)

    # ------------------------------------------------------------------ audio
    def _peer(self, ch: SimChannel) -> SimChannel | None:
        if not ch.bridge:
            return None
        return next((o for o in self.channels.values() if o is not ch and o.bridge == ch.bridge and not o.gone), None)

    def _flows(self, ch: SimChannel) -> tuple[bool, bool]:
        """(frames from the advisor's phone, frames to it) on a monitored channel, right now."""
        mon = ch.monitor
        if ch.gone or ch.state != 6 or ch.held or (mon is not None and mon.bridged_only and not ch.bridge):
            return False, False
        peer = self._peer(ch)
        return ch.sending, bool(peer is not None and peer.sending and peer.state == 6)

    def _advance(self, now: datetime) -> None:
        """Bring every running MixMonitor up to ``now`` before anything changes."""
        for ch in list(self.channels.values()):
            if ch.monitor is not None and not ch.monitor.closed:
                ch.monitor.advance(now)

    def tick(self) -> None:
        """Write what the running MixMonitors recorded up to the clock's present time."""
        self._advance(self.clock())

    def rtp(self, call: SimCall, *, advisor: bool | None = None, customer: bool | None = None) -> None:
        """Start or stop the RTP a side sends (silence suppression, a dead line). No event: Asterisk
        raises none for it."""
        self._advance(self.clock())
        if advisor is not None:
            call.advisor.sending = advisor
        if customer is not None:
            call.customer.sending = customer

    # ------------------------------------------------------------------ call flows
    def inbound_call(self, number: str, endpoint: str, *, did: str | None = None) -> SimCall:
        """A customer calls in on the trunk and the advisor's phone rings."""
        ext = endpoint.split("/", 1)[-1]
        self._advance(self.clock())
        cus = self._new_channel(self.trunk, state=4, caller_num=number, context="from-trunk", exten=did or ext)
        adv = self._new_channel(endpoint, linkedid=cus.linkedid, context="from-advisor", exten="")
        adv.dialled = True
        adv.caller_num = ext
        self._event("NewCallerid", adv, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])
        adv.connected_num = number
        self._event("NewConnectedLine", adv)
        self._event("DialBegin", cus, [("DialString", ext)], dest=adv)
        self._set_state(adv, 5)
        cus.connected_num = ext
        self._event("NewConnectedLine", cus)
        self._event("DialState", cus, [("DialStatus", "RINGING")], dest=adv)
        call = SimCall(caller=cus, callee=adv, advisor=adv, customer=cus, direction="in")
        self.calls.append(call)
        return call

    def ons_call(self, number: str, mobile: str, *, variable: str, advisor_id: str) -> SimCall:
        """ONS: a customer calls an advisor's number and the PBX routes the leg to the advisor's
        mobile through the trunk; a pre-dial handler sets ``variable`` = ``advisor_id`` on the
        outgoing channel (``VarSet``) before ``DialBegin``."""
        self._advance(self.clock())
        cus = self._new_channel(self.trunk, state=4, caller_num=number, context="from-trunk", exten="200")
        mob = self._new_channel(self.trunk, linkedid=cus.linkedid, context="from-trunk", exten="")
        mob.dialled = True
        mob.caller_num = mobile
        self._event("VarSet", mob, [("Variable", variable), ("Value", advisor_id)])
        mob.connected_num = number
        self._event("NewConnectedLine", mob)
        self._event("DialBegin", cus, [("DialString", f"trunk/{mobile}")], dest=mob)
        self._set_state(mob, 5)
        self._event("DialState", cus, [("DialStatus", "RINGING")], dest=mob)
        call = SimCall(caller=cus, callee=mob, advisor=mob, customer=cus, direction="in")
        self.calls.append(call)
        return call

    def outbound_call(self, endpoint: str, number: str) -> SimCall:
        """An advisor dials a customer's number out through the trunk (measured order: the trunk's
        Newchannel has no number and ``Exten=s``; the number arrives by NewCallerid; DialBegin
        follows the trunk's Newstate Ringing)."""
        ext = endpoint.split("/", 1)[-1]
        self._advance(self.clock())
        adv = self._new_channel(endpoint, state=4, caller_num=ext, context="from-advisor", exten=number)
        cus = self._new_channel(self.trunk, linkedid=adv.linkedid, context="from-advisor", exten="s")
        cus.dialled = True
        cus.caller_num = number
        self._event("NewCallerid", cus, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])
        cus.connected_num = ext
        self._event("NewConnectedLine", cus)
        self._set_state(cus, 5)
        self._event("DialBegin", adv, [("DialString", f"trunk/{number}")], dest=cus)
        adv.connected_num = number
        self._event("NewConnectedLine", adv)
        self._event("DialState", adv, [("DialStatus", "RINGING")], dest=cus)
        call = SimCall(caller=adv, callee=cus, advisor=adv, customer=cus, direction="out")
        self.calls.append(call)
        return call

    def _dial(self, caller: SimChannel, callee: SimChannel, dialstring: str, direction: str) -> SimCall:
        callee.dialled = True
        self._event("DialBegin", caller, [("DialString", dialstring)], dest=callee)
        self._set_state(callee, 5)
        caller.connected_num = callee.caller_num
        self._event("NewConnectedLine", caller)
        self._event("DialState", caller, [("DialStatus", "RINGING")], dest=callee)
        adv, cus = (callee, caller) if direction == "in" else (caller, callee)
        call = SimCall(caller=caller, callee=callee, advisor=adv, customer=cus, direction=direction)
        self.calls.append(call)
        return call

    def answer(self, call: SimCall) -> None:
        """The called party picks up; both channels enter a new bridge (measured: on an outbound
        call the trunk enters first, on an inbound call the advisor)."""
        self._advance(self.clock())
        self._set_state(call.callee, 6)
        self._event("DialEnd", call.caller, [("DialStatus", "ANSWER")], dest=call.callee)
        if call.caller.state != 6:
            self._set_state(call.caller, 6)
        bid = f"{secrets.token_hex(4)}-sim-bridge-{next(self._bridge_seq)}"
        call.bridge = bid
        self._event("BridgeCreate", None, pre=self._bridge_headers(bid, 0))
        order = (call.advisor, call.customer) if call.direction == "in" else (call.customer, call.advisor)
        for n, ch in enumerate(order, start=1):
            ch.bridge = bid
            self._event("BridgeEnter", ch, pre=self._bridge_headers(bid, n))
        call.answered = True

    def hold(self, call: SimCall) -> None:
        """The advisor puts the customer on hold: the customer hears music on hold, the advisor's
        channel carries no frames either way, so MixMonitor writes nothing meanwhile."""
        self._advance(self.clock())
        call.advisor.held = True
        self._event("Hold", call.advisor, [("MusicClass", "default")])

    def unhold(self, call: SimCall) -> None:
        self._advance(self.clock())
        call.advisor.held = False
        self._event("Unhold", call.advisor)

    def hangup(self, call: SimCall, *, by: str = "customer") -> None:
        """One side hangs up; the other follows. Measured order (answered): HangupRequest,
        BridgeLeave x2, BridgeDestroy, SoftHangupRequest on the dialling channel, Hangup x2, each
        Hangup with the channel's last state; no MixMonitorStop. Unanswered: HangupRequest cause
        127, DialEnd CANCEL, SoftHangupRequest, Hangup callee then caller, cause 127 + TechCause."""
        if call.ended:
            return
        now = self.clock()
        self._advance(now)
        first, second = (call.customer, call.advisor) if by == "customer" else (call.advisor, call.customer)
        if not call.answered:
            self._event("HangupRequest", first, [("Cause", "127")])
            self._event("DialEnd", call.caller, [("DialStatus", "CANCEL")], dest=call.callee)
            self._event("SoftHangupRequest", call.callee, [("Cause", "127")])
            for ch in (call.callee, call.caller):
                self._gone(ch, now, cause="127", tech_cause="487" if ch is call.callee else "0")
            call.ended = True
            return
        self._event("HangupRequest", first, [("Cause", "16")])
        bid = call.bridge or ""
        for n, ch in enumerate((first, second)):
            if ch.bridge == bid:
                ch.bridge = None
                self._event("BridgeLeave", ch, pre=self._bridge_headers(bid, 1 - n))
        self._event("BridgeDestroy", None, pre=self._bridge_headers(bid, 0))
        self._event("SoftHangupRequest", call.caller, [("Cause", "16")])
        for ch in (first, second):
            self._gone(ch, now)
        call.ended = True

    def _gone(self, ch: SimChannel, now: datetime, cause: str = "16", tech_cause: str | None = None) -> None:
        if ch.gone:
            return
        if ch.monitor is not None and not ch.monitor.closed:
            # MixMonitor finishes its files when the channel goes, silently: Asterisk raises
            # MixMonitorStop only after an explicit StopMixMonitor (measured).
            ch.monitor.close(now)
        ch.gone = True
        text = {"16": "Normal Clearing", "26": "Answered elsewhere", "127": "Interworking, unspecified"}
        extra = [("Cause", cause), ("Cause-txt", text.get(cause, "Unknown"))]
        if tech_cause is not None:
            extra.append(("TechCause", tech_cause))
        self._event("Hangup", ch, extra)  # keeps the channel's last state (6 Up, 5 Ringing, ...)
        self.channels.pop(ch.name, None)

    def blind_transfer(self, call: SimCall, to_endpoint: str) -> SimCall:
        """The advisor transfers the customer blind to another extension; that phone rings."""
        ext = to_endpoint.split("/", 1)[-1]
        now = self.clock()
        self._advance(now)
        adv, cus, bid = call.advisor, call.customer, call.bridge or ""
        self._event("BlindTransfer", None,
                    [("Result", "Success")] + self._chan_headers(adv, "Transferer") + self._chan_headers(cus, "Transferee")
                    + self._bridge_headers(bid, 2) + [("IsExternal", "No"), ("Context", "from-advisor"), ("Extension", ext)])
        for n, ch in enumerate((adv, cus)):
            ch.bridge = None
            self._event("BridgeLeave", ch, pre=self._bridge_headers(bid, 1 - n))
        self._event("BridgeDestroy", None, pre=self._bridge_headers(bid, 0))
        self._gone(adv, now)
        call.ended = True
        new = self._new_channel(to_endpoint, linkedid=cus.linkedid, context="from-advisor", exten="")
        new.caller_num = ext
        self._event("NewCallerid", new)
        new.connected_num = cus.caller_num
        self._event("NewConnectedLine", new)
        leg = self._dial(cus, new, ext, call.direction)
        leg.advisor, leg.customer = new, cus
        return leg

    def start_consult(self, call: SimCall, to_endpoint: str) -> SimCall:
        """Attended transfer, step 1: the advisor puts the customer on hold and calls a colleague
        from a second channel of the same phone."""
        ext = to_endpoint.split("/", 1)[-1]
        own = call.advisor.endpoint.split("/", 1)[-1]
        self.hold(call)
        adv2 = self._new_channel(call.advisor.endpoint, state=4, caller_num=own, context="from-advisor", exten=ext)
        target = self._new_channel(to_endpoint, linkedid=adv2.linkedid, caller_num=ext, connected_num=own,
                                   context="from-advisor", exten="")
        consult = self._dial(adv2, target, ext, "out")
        consult.advisor, consult.customer = target, adv2  # for answer(): the colleague picks up
        return consult

    def complete_attended_transfer(self, call: SimCall, consult: SimCall) -> SimCall:
        """Attended transfer, step 2: the advisor completes it. As Asterisk merges the bridges,
        the transferer's two channels are kicked first, then the customer moves to the colleague,
        then AttendedTransfer is raised and the kicked channels hang up."""
        now = self.clock()
        self._advance(now)
        adv, cus = call.advisor, call.customer
        adv2, target = consult.caller, consult.callee
        b1, b2 = call.bridge or "", consult.bridge or ""
        adv.bridge = None
        self._event("BridgeLeave", adv, pre=self._bridge_headers(b1, 1))
        adv2.bridge = None
        self._event("BridgeLeave", adv2, pre=self._bridge_headers(b2, 1))
        cus.bridge = None
        self._event("BridgeLeave", cus, pre=self._bridge_headers(b1, 0))
        cus.bridge = b2
        self._event("BridgeEnter", cus, pre=self._bridge_headers(b2, 2))
        self._event("AttendedTransfer", None,
                    [("Result", "Success")] + self._chan_headers(adv, "OrigTransferer")
                    + [("OrigBridgeUniqueid", b1)] + self._chan_headers(adv2, "SecondTransferer")
                    + [("SecondBridgeUniqueid", b2), ("DestType", "Bridge"), ("DestBridgeUniqueid", b2)]
                    + self._chan_headers(cus, "Transferee") + self._chan_headers(target, "TransferTarget"))
        self._gone(adv, now)
        self._gone(adv2, now)
        self._event("BridgeDestroy", None, pre=self._bridge_headers(b1, 0))
        call.ended = consult.ended = True
        new = SimCall(caller=cus, callee=target, advisor=target, customer=cus, direction=call.direction,
                      bridge=b2, answered=True)
        self.calls.append(new)
        return new

    # ------------------------------------------------------------------ inspection
    def monitor_of(self, call: SimCall) -> Monitor | None:
        return call.advisor.monitor

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError(f"simulator: {what} not reached within {timeout}s")
            await asyncio.sleep(0.01)

    async def wait_recording(self, call: SimCall, *, muted: bool = True, timeout: float = 10.0) -> Monitor:
        """Wait until MixMonitor runs on the call's advisor channel (and the customer is muted)."""
        await self.wait_for(lambda: call.advisor.monitor is not None and not call.advisor.monitor.closed
                            and call.advisor.monitor.mute_write == muted, timeout, "MixMonitor on the advisor")
        assert call.advisor.monitor is not None
        return call.advisor.monitor


#: AMI write classes an action needs (any of them), as Asterisk registers them
_WRITE_PERMS: dict[str, set[str]] = {
    "mixmonitor": {"system"},
    "mixmonitormute": {"system", "call"},
    "stopmixmonitor": {"system", "call"},
    "coreshowchannels": {"system", "reporting"},
}


def _parse(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in re.split(r"\r?\n", raw.decode("utf-8", errors="replace")):
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out
