"""RTP reception of one recorded stream: latching, per-SSRC reordering with sequence wrap, RFC 4733
events (stored as events, never as audio), comfort noise, loss and gap counting, and batching of
the audio into frames of up to 200 ms for the core's live spool."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

REORDER_DEPTH = 5
BATCH_BYTES = 1600  # 200 ms of G.711
#: seconds by which the RTP timestamp may run ahead of (or back behind) what the sequence numbers
#: explain before the stream is re-anchored on the arrival time (a jump of the sender's clock)
RESYNC_JUMP = 5.0
_HDR = struct.Struct("!BBHII")
_FAST = struct.Struct("!HII")


class RtpStream:
    """The receive side of one m-line. ``emit(timestamp, payload)`` gets G.711 bytes in order."""

    def __init__(self, index: int, port: int, codec_pt: int, dtmf_pt: int | None, t0: float,
                 emit: Callable[[float, bytes], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.port = port
        self.pt = codec_pt
        self.dtmf_pt = dtmf_pt
        self.t0 = t0
        self.emit = emit
        self.clock = clock
        self.remote: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.active = True
        self.ssrc: int | None = None
        self.stats: dict[str, int] = {"packets": 0, "lost": 0, "late": 0, "duplicates": 0, "ssrc_changes": 0,
                                      "foreign": 0, "cn": 0, "resyncs": 0, "bad": 0, "other_pt": 0}
        self.events: list[dict[str, Any]] = []
        self._seen_events: set[tuple[int, int]] = set()
        self._reset_seq()
        self._batch = bytearray()
        self._batch_t = 0.0
        self._batch_end = 0.0
        self._fast = False
        self._last_len = -1

    def _reset_seq(self) -> None:
        self.max_seq: int | None = None
        self.cycles = 0
        self.next_ext: int | None = None
        self.buf: dict[int, tuple[int, bytes]] = {}
        self.anchor_t = 0.0
        self.anchor_ts: int | None = None
        self.ts_cycles = 0
        self.last_ts = 0
        self._prev: tuple[int, int] | None = None

    # ---------------------------------------------------------------- packets

    def packet(self, data: bytes, addr: tuple[str, int]) -> None:
        # Fast path: the next packet in order from the latched sender, same SSRC and codec, plain
        # header, nothing buffered (by far the most common case on a healthy network).
        if (self._fast and data[0] == 0x80 and addr == self.remote and len(data) > 12
                and (data[1] & 0x7F) == self.pt and self.active):
            seq, ts, ssrc = _FAST.unpack_from(data, 2)
            if ssrc == self.ssrc and seq == (self.max_seq + 1) & 0xFFFF and ts - self.last_ts == self._last_len:  # type: ignore[operator]
                self.stats["packets"] += 1
                if seq == 0:
                    self.cycles += 0x10000
                self.max_seq = seq
                self.next_ext = self.cycles + seq + 1
                self.last_ts = ts
                self._prev = (self.next_ext - 1, self.ts_cycles + ts)
                payload = data[12:]
                self._last_len = len(payload)
                self._batch += payload
                if len(self._batch) >= BATCH_BYTES:
                    self._batch_end = self._batch_t + len(self._batch) / 8000
                    self.flush()
                return
        self._fast = False
        self._slow(data, addr)

    def _slow(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            self.stats["bad"] += 1
            return
        if self.remote is None:
            self.remote = addr  # latch on the first packet
        elif addr != self.remote:
            self.stats["foreign"] += 1
            return
        if not self.active:
            return
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
        off = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension
            if len(data) < off + 4:
                self.stats["bad"] += 1
                return
            off += 4 + 4 * struct.unpack_from("!H", data, off + 2)[0]
        end = len(data)
        if b0 & 0x20:  # padding
            end -= data[-1]
        if off > end:
            self.stats["bad"] += 1
            return
        payload = data[off:end]
        pt = b1 & 0x7F
        self.stats["packets"] += 1
        now = self.clock() - self.t0
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.stats["ssrc_changes"] += 1
                self.drain()
            self.ssrc = ssrc
            self._reset_seq()
        if pt == self.dtmf_pt:
            self._event(ts, payload, now)
            return
        if pt == 13:
            self.stats["cn"] += 1
            return
        if pt != self.pt:
            self.stats["other_pt"] += 1
            return
        ext = self._extend(seq)
        if ext is None:
            return
        ets = self._extend_ts(ts)
        if self.anchor_ts is None:
            self.anchor_ts, self.anchor_t = ets, now
        elif self._prev is not None and ext > self._prev[0]:
            # The RTP clock places the audio (receive delays of a busy recorder move nothing);
            # only a jump of the sender's clock that the sequence numbers do not explain
            # (a restarted or misbehaving sender) re-anchors on the arrival time.
            ts_gap = (ets - self._prev[1]) / 8000
            if ts_gap > RESYNC_JUMP + 0.02 * (ext - self._prev[0]) or ts_gap < -RESYNC_JUMP:
                self.stats["resyncs"] += 1
                self.drain()
                self.anchor_ts, self.anchor_t = ets, now
        if self._prev is None or ext > self._prev[0]:
            self._prev = (ext, ets)
        if self.next_ext is None:
            self.next_ext = ext
        if ext < self.next_ext:
            self.stats["late"] += 1
            return
        if ext in self.buf:
            self.stats["duplicates"] += 1
            return
        self.buf[ext] = (ets, payload)
        self._advance()

    def _extend(self, seq: int) -> int | None:
        if self.max_seq is None:
            self.max_seq = seq
            return seq
        delta = (seq - self.max_seq) & 0xFFFF
        if delta < 0x8000:
            if seq < self.max_seq:
                self.cycles += 0x10000
            self.max_seq = seq
            return self.cycles + seq
        # older than the newest (reordered or late)
        back = self.cycles + seq - (0x10000 if seq > self.max_seq else 0)
        return back if back >= 0 else None

    def _extend_ts(self, ts: int) -> int:
        if self.anchor_ts is None:
            self.last_ts = ts
            return ts
        delta = (ts - self.last_ts) & 0xFFFFFFFF
        if delta < 0x80000000:
            if ts < self.last_ts:
                self.ts_cycles += 0x100000000
            self.last_ts = ts
            return self.ts_cycles + ts
        return self.ts_cycles + ts - (0x100000000 if ts > self.last_ts else 0)

    def _advance(self) -> None:
        buf = self.buf
        assert self.next_ext is not None
        while True:
            item = buf.pop(self.next_ext, None)
            if item is not None:
                self._out(*item)
                self.next_ext += 1
                continue
            if len(buf) > REORDER_DEPTH:
                nxt = min(buf)
                self.stats["lost"] += nxt - self.next_ext
                self.next_ext = nxt
                continue
            break

    def drain(self) -> None:
        """Everything buffered out, in order (end of call, hold, new SSRC)."""
        if self.buf and self.next_ext is not None:
            for ext in sorted(self.buf):
                self.stats["lost"] += max(0, ext - self.next_ext)
                self._out(*self.buf[ext])
                self.next_ext = ext + 1
            self.buf.clear()
        self.flush()

    def _out(self, ets: int, payload: bytes) -> None:
        assert self.anchor_ts is not None
        t = self.anchor_t + (ets - self.anchor_ts) / 8000
        # the next in-order packet may take the fast path when it follows exactly
        self._fast = not self.buf and self.next_ext is not None
        self._last_len = len(payload)
        if self._batch and abs(t - self._batch_end) > 0.0005:
            self.flush()
        if not self._batch:
            self._batch_t = t
        self._batch += payload
        self._batch_end = self._batch_t + len(self._batch) / 8000
        if len(self._batch) >= BATCH_BYTES:
            self.flush()

    def reanchor(self) -> None:
        """The stream resumes after a hold: place the next packet by its arrival time."""
        self.drain()
        self.anchor_ts = None
        self._fast = False

    def flush(self) -> None:
        self._fast = False
        if self._batch:
            t, data = self._batch_t, bytes(self._batch)
            self._batch.clear()
            if t >= 0:
                self.emit(t, data)

    def _event(self, ts: int, payload: bytes, now: float) -> None:
        if len(payload) < 4:
            self.stats["bad"] += 1
            return
        ev, flags, duration = payload[0], payload[1], struct.unpack_from("!H", payload, 2)[0]
        if not flags & 0x80:
            return  # only the end packets count (sent three times: de-duplicated by timestamp)
        key = (ts, ev)
        if key in self._seen_events:
            return
        self._seen_events.add(key)
        self.events.append({"at": round(now, 3), "duration": round(duration / 8000, 3), "event": ev})

    def summary(self) -> dict[str, Any]:
        return {**self.stats, "dtmf_events": len(self.events), "latched": self.remote is not None}


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, stream: RtpStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stream.packet(data, addr)


class PortPool:
    """Consecutive even ports per call from the configured range (sipp plays stream n at base+2n)."""

    def __init__(self, lo: int, hi: int, host: str) -> None:
        self.lo, self.hi, self.host = lo, hi, host
        self.used: set[int] = set()
        self._next = lo

    def _free(self, port: int) -> bool:
        if port in self.used or port > self.hi:
            return False
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((self.host, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def take(self, n: int) -> int:
        span = 2 * max(n, 1)
        size = self.hi - self.lo + 1
        for _ in range(size // 2 + 1):
            base = self._next
            if base + span - 2 > self.hi:
                base = self._next = self.lo
            self._next = base + span if base + span <= self.hi else self.lo
            if all(self._free(base + 2 * i) for i in range(n)):
                self.used.update(base + 2 * i for i in range(n))
                return base
        raise OSError("no free RTP ports in the configured range")

    def release(self, ports: list[int]) -> None:
        self.used.difference_update(ports)


async def open_stream(loop: asyncio.AbstractEventLoop, host: str, stream: RtpStream) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, stream.port))
    transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(stream), sock=sock)
    stream.transport = transport
