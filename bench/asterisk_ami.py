"""How fast the AMI side is: frame parsing alone, and whole calls tracked from a simulated
Asterisk (events over loopback TCP, MixMonitor/mute actions answered, no archive).

    .venv/bin/python bench/asterisk_ami.py [CALLS]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from cf_pbx_asterisk.ami import FrameParser
from cf_pbx_asterisk.config import AsteriskSettings
from cf_pbx_asterisk.source import AsteriskSource

from cfcore.clock import FrozenClock
from cfcore.sim.asterisk import AsteriskSim


class NullSink:
    def __init__(self) -> None:
        self.events = 0
        self.finished = 0

    async def call_event(self, event: object) -> None:
        self.events += 1

    async def call_finished(self, call: object) -> str:
        self.finished += 1
        return "0" * 32

    async def audio_frame(self, frame: object) -> None:
        return None


def bench_parser(n: int = 200_000) -> None:
    msg = (b"Event: Newstate\r\nPrivilege: call,all\r\nChannel: PJSIP/100-00000001\r\nChannelState: 6\r\n"
           b"ChannelStateDesc: Up\r\nCallerIDNum: 100\r\nCallerIDName: <unknown>\r\nConnectedLineNum: +4930123456\r\n"
           b"ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: from-internal\r\n"
           b"Exten: 100\r\nPriority: 1\r\nUniqueid: 1795906488.1\r\nLinkedid: 1795906488.0\r\n\r\n")
    data = msg * 1000
    p = FrameParser()
    t = time.perf_counter()
    count = 0
    for _ in range(n // 1000):
        for i in range(0, len(data), 65536):
            count += len(p.feed(data[i:i + 65536]))
    dt = time.perf_counter() - t
    print(f"frame parser: {count / dt:,.0f} events/s ({len(msg)} bytes each, {count * len(msg) / dt / 1e6:.1f} MB/s)")


async def bench_calls(calls: int) -> None:
    from datetime import UTC, datetime

    tmp = Path(tempfile.mkdtemp())
    clock = FrozenClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    sim = await AsteriskSim(monitor_root=tmp / "spool", clock=clock).start()
    advisors = {f"PJSIP/{100 + i}": f"A{100 + i}" for i in range(calls)}
    settings = AsteriskSettings.from_mapping({
        "host": "127.0.0.1", "port": sim.port, "username": sim.username, "secret": sim.secret,
        "monitor_dir": str(tmp / "spool"), "recordings_dir": str(tmp / "spool"), "settle_seconds": 0,
        "advisors": advisors})
    source = AsteriskSource(settings, clock=clock, data_dir=tmp / "data")
    sink = NullSink()
    task = asyncio.create_task(source.run(sink))
    await sim.wait_for(lambda: source.resyncs > 0, 10)
    t = time.perf_counter()
    sim_calls = [sim.inbound_call(f"+49301{i:06d}", f"PJSIP/{100 + i}") for i in range(calls)]
    for c in sim_calls:
        sim.answer(c)
    await sim.wait_for(lambda: all(c.advisor.monitor is not None and c.advisor.monitor.mute_write for c in sim_calls),
                       120)
    clock.advance(1)
    for c in sim_calls:
        sim.hangup(c)
    await sim.wait_for(lambda: sink.finished == calls, 120)
    dt = time.perf_counter() - t
    print(f"{calls} calls tracked, recorded (MixMonitor + mute) and handed over in {dt:.2f}s: "
          f"{calls / dt:,.0f} calls/s, {sink.events / dt:,.0f} call events/s")
    await source.stop()
    await task
    await sim.stop()


if __name__ == "__main__":
    bench_parser()
    asyncio.run(bench_calls(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
