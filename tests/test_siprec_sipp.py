"""SIPREC end to end with Debian's sipp as the recording client (issue 15).

sipp sends our own scenarios (RFC 7866 two-stream over UDP and TCP, Avaya SBCE, OpenSIPS, CANCEL,
hold, malformed bodies) and plays pcaps with a 440 Hz tone on the advisor's stream and 880 Hz on
the customer's. The recorder (pbx_siprec in a capture runner on the test's loop) writes through the
core's live spool into the archive; every test reads the archived audio back per channel.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import socket

import pytest

from cfcore.capture import controller
from cfcore.capture.live import evidence_of
from cfcore.capture.runner import CaptureRunner
from cfcore.testing import free_tcp_port
from tests.asterisk_sim import make_user
from tests.siprec_helpers import (
    ACK,
    ack,
    bye,
    channel,
    dominant,
    invite_answered,
    is_silent,
    level,
    multipart,
    pause,
    play,
    recording,
    recv,
    request,
    rfc_metadata,
    rtp_packet,
    scenario,
    sdp_offer,
    send,
    tone,
    ulaw,
    write_pcap,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) is not installed")]



def free_udp_tcp_port() -> int:
    for _ in range(50):
        p = free_tcp_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free port")


def free_even_udp(n: int = 4) -> int:
    for _ in range(200):
        base = random.randrange(20000, 30000, 2)
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


@pytest.fixture(scope="module")
def pcaps(tmp_path_factory):
    d = tmp_path_factory.mktemp("pcaps")
    adv, cus = ulaw(tone(440, 6.0)), ulaw(tone(880, 6.0))
    two = d / "two-6s.pcap"
    write_pcap(two, [(7000, 6000, adv), (7002, 6002, cus)], dtmf=[(0, 1.0, "5")])
    long = d / "two-14s.pcap"
    write_pcap(long, [(7000, 6000, ulaw(tone(440, 14.0))), (7002, 6002, ulaw(tone(880, 14.0)))])
    return {"two": two, "long": long}


class Srs:
    """A deployment with [plugins.pbx_siprec] and a capture runner on the test's loop."""

    def __init__(self, tmp_path, deployment, make_app, clock=None, **settings):
        self.tmp = tmp_path
        self.sip_port = free_udp_tcp_port()
        base = free_even_udp(2) // 100 * 100 + 40
        extra = "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(deployment, "a", encoding="utf-8") as f:
            f.write(f"""
[plugins.pbx_siprec]
listen = "127.0.0.1"
sip_port = {self.sip_port}
rtp_ports = [{base}, {base + 59}]
{extra}
[[plugins.pbx_siprec.src]]
name = "sbc-test"
addresses = ["127.0.0.1/32"]

[plugins.pbx_siprec.advisors]
"sip:100@pbx.example" = "A100"
"4711" = "A4711"
""")
        self.app = make_app(deployment) if clock is None else make_app(deployment, clock=clock)
        self.deployment = deployment
        self.runner = None
        self.task = None

    async def __aenter__(self):
        self.runner = CaptureRunner(self.app, poll_interval=0.02)
        self.task = asyncio.create_task(self.runner.run())
        for _ in range(500):
            if self.runner.started.is_set() and self.source.ready.is_set():
                break
            await asyncio.sleep(0.01)
        assert self.source.ready.is_set()
        return self

    async def __aexit__(self, *exc):
        await self.runner.stop()
        await asyncio.wait_for(self.task, 20)

    @property
    def source(self):
        return self.runner.sources["siprec"]

    async def sipp(self, steps, transport="u1", name="scn", expect_ok=True, timeout=60):
        scn = self.tmp / f"{name}.xml"
        scn.write_text(scenario(steps))
        port = free_udp_tcp_port()
        mport = free_even_udp(4)
        proc = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(scn), "-t", transport, "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
            "-mp", str(mport), "-m", "1", "-timeout", f"{timeout}s", "-timeout_error", "-nostdin",
            "-trace_err", "-error_file", str(self.tmp / f"{name}.err"), "-trace_msg", "-message_file",
            str(self.tmp / f"{name}.msg"), f"127.0.0.1:{self.sip_port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=self.tmp)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 20)
        if expect_ok and proc.returncode != 0:
            err = (self.tmp / f"{name}.err").read_text(errors="replace") if (self.tmp / f"{name}.err").exists() else ""
            msgs = (self.tmp / f"{name}.msg").read_text(errors="replace") if (self.tmp / f"{name}.msg").exists() else ""
            raise AssertionError(f"sipp failed ({proc.returncode}):\n{err[-3000:]}\n{msgs[-6000:]}\n{out.decode()[-2000:]}")
        return proc.returncode

    def messages(self, name="scn"):
        return (self.tmp / f"{name}.msg").read_text(errors="replace")

    async def archived(self, timeout=20.0):
        from sqlalchemy import select

        from cfcore.db.models_capture import LiveCall

        for _ in range(int(timeout / 0.05)):
            with self.app.catalog.session() as s:
                rows = list(s.scalars(select(LiveCall).where(LiveCall.source == "siprec")))
            done = [r for r in rows if r.state == "archived" and r.recording_id]
            if done:
                return done[-1]
            await asyncio.sleep(0.05)
        raise AssertionError("no SIPREC call was archived")

    async def consented_call(self, steps, *, advisor="A100", after=2.5, **sipp):
        """Play ``steps`` with sipp; ``after`` seconds into the recording the advisor starts
        two-sided recording (the customer was informed). Returns the trigger's request and the
        archived call."""
        adv = make_user(self.app, "anna", ["advisor"], advisor_id=advisor)
        run = asyncio.create_task(self.sipp(steps, **sipp))
        call_id = await self.active_call()
        await asyncio.sleep(after)
        req = await asyncio.to_thread(controller.trigger, self.app, adv, call_id, "record_both", "api", 10.0)
        await run
        return req, await self.archived()

    async def active_call(self, timeout=10.0):
        for _ in range(int(timeout / 0.02)):
            if self.source.by_call:
                sess = next(iter(self.source.by_call.values()))
                if sess.started:
                    return sess.call_id
            await asyncio.sleep(0.02)
        raise AssertionError("no recording session started")


@pytest.fixture
def srs(tmp_path, deployment, make_app):
    def make(**settings):
        return Srs(tmp_path, deployment, make_app, **settings)
    return make


def check_two_sided(app, rec_id):
    rec = recording(app, rec_id)
    both = [s for s in rec.segments if s.mode == "both"]
    assert rec.two_sided and len(both) == 1 and len(rec.consents) == 1
    t = both[0].start
    a, c = channel(app, rec_id, "advisor"), channel(app, rec_id, "customer")
    assert a is not None and c is not None
    assert 0.5 < t < rec.duration - 1.0
    assert dominant(a, 0.3, rec.duration - 0.3) == 440 and level(a, 0.3, rec.duration - 0.3) > 4000
    assert is_silent(c, 0, t), "customer audio before the consent"
    assert dominant(c, t + 0.1, rec.duration - 0.3) == 880 and level(c, t + 0.1, rec.duration - 0.3) > 4000
    return rec


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_rfc_two_streams_consent_mid_call(srs, pcaps, transport):
    ctype, body = multipart(sdp_offer(), rfc_metadata())
    steps = invite_answered(ctype, body) + [play(pcaps["two"]), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps, transport=transport)
    assert req.status == "applied"
    msgs = h.messages()
    assert "+sip.srs" in msgs and "a=label:1" in msgs and "a=label:2" in msgs and "a=recvonly" in msgs
    assert row.advisor_id == "A100" and row.customer_hint == "+49******56"
    rec = check_two_sided(h.app, row.recording_id)
    assert rec.duration == pytest.approx(6.0, abs=0.25)
    from cfcore.capture.live import stats_of

    st = stats_of(h.app, row.recording_id)["streams"]
    assert st["advisor:1"]["lost"] == 0 and st["customer:2"]["lost"] == 0
    assert st["advisor:1"]["packets"] >= 300 and st["advisor:1"]["dtmf_events"] == 1
    assert [d["stream"] for d in st["dtmf"]] == [0] and 0.9 < st["dtmf"][0]["at"] < 1.6
    assert all("event" not in d for d in st["dtmf"])  # the digit itself is never logged


AVAYA_DUMMY = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1" xmlns:avaya="http://www.avaya.com/siprec">
  <datamode>complete</datamode>
  <session session_id="av-s1"/>
  <participant participant_id="dummy"><nameID aor="sip:dummy@sbce.example"/></participant>
  <stream stream_id="st1" session_id="av-s1"><label>1</label></stream>
  <stream stream_id="st2" session_id="av-s1"><label>2</label></stream>
</recording>"""

AVAYA_REAL = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1" xmlns:avaya="http://www.avaya.com/siprec">
  <datamode>complete</datamode>
  <session session_id="av-s1"><avaya:ucid>00001000021666849580</avaya:ucid></session>
  <participant participant_id="pa"><nameID aor="sip:4711@cm.example"/></participant>
  <participant participant_id="pc"><nameID aor="sip:+4930123456@trunk.example"/></participant>
  <stream stream_id="st1" session_id="av-s1"><label>1</label></stream>
  <stream stream_id="st2" session_id="av-s1"><label>2</label></stream>
  <participantstreamassoc participant_id="pa"><send>st1</send></participantstreamassoc>
  <participantstreamassoc participant_id="pc"><send>st2</send></participantstreamassoc>
</recording>"""


async def test_avaya_sbce_dummy_participant_then_update_with_ucid(srs, pcaps):
    ctype, body = multipart(sdp_offer(), AVAYA_DUMMY, xml_first=True)
    uui = "User-to-User: 00FA0800010002635A1B2C;encoding=hex"
    xtype, xbody = multipart(None, AVAYA_REAL)
    steps = (invite_answered(ctype, body, extra_headers=uui) + [play(pcaps["two"]), pause(1500)]
             + [send(request("UPDATE", xtype, xbody, cseq=2, in_dialog=True)), recv(200)]
             + [pause(4800)] + bye(3))
    async with srs() as h:
        await h.sipp(steps)
        row = await h.archived()
    assert row.advisor_id == "A4711" and row.customer_hint == "+49******56"
    # the UCID of the User-to-User header (node 1, sequence 2, timestamp 0x635A1B2C)
    assert row.pbx_call_id == f"{1:05d}{2:05d}{0x635A1B2C:010d}"
    rec = recording(h.app, row.recording_id)
    assert not rec.two_sided and channel(h.app, row.recording_id, "customer") is None
    a = channel(h.app, row.recording_id, "advisor")
    # the advisor's audio before the UPDATE was kept in memory and written once the advisor was known
    assert dominant(a, 0.3, 1.2) == 440 and level(a, 0.3, 5.5) > 4000
    check_metadata_evidence(h, row.recording_id)


class UdpSrc:
    """A SIP client over UDP that renders the sipp templates of ``request`` itself and sends each
    datagram exactly as told, twice where a test wants a retransmission; it reads every answer, in
    whatever order they come (sipp aborts on an answer that arrives between two of its sends)."""

    def __init__(self, srs_port: int, ip: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.port, self.srs_port = self.sock.getsockname()[1], srs_port
        self.call_id = f"retrans-{random.getrandbits(32):08x}@127.0.0.1"
        self.peer_tag = ""
        self.answers: list[str] = []

    def render(self, template: str) -> bytes:
        head, _, body = template.partition("\n\n")
        for k, v in {"[media_ip]": "127.0.0.1", "[media_port]": "40000", "[media_port+2]": "40002",
                     "[local_ip]": "127.0.0.1", "[cseq]": "1"}.items():
            body = body.replace(k, v)
        body = body.replace("\n", "\r\n")
        for k, v in {"[remote_ip]": "127.0.0.1", "[remote_port]": str(self.srs_port), "[local_ip]": "127.0.0.1",
                     "[local_port]": str(self.port), "[transport]": "UDP", "[call_id]": self.call_id,
                     "[pid]": "1", "[call_number]": "1", "[peer_tag_param]": self.peer_tag,
                     "[len]": str(len(body.encode()))}.items():
            head = head.replace(k, v)
        return (head.replace("\n", "\r\n") + "\r\n\r\n" + body).encode()

    def send(self, template: str, times: int = 1) -> None:
        data = self.render(template)
        for _ in range(times):
            self.sock.sendto(data, ("127.0.0.1", self.srs_port))

    async def rtp(self, seconds: float, start: float = 0.0) -> None:
        """A 440 Hz tone in PCMU to every stream of the SRS's answer, in real time."""
        answer = next(a for a in self.answers if re.search(r"^CSeq: \d+ INVITE", a, re.M) and "m=audio" in a)
        ports = [int(p) for p in re.findall(r"^m=audio (\d+)", answer, re.M)]
        payload = ulaw(tone(440.0, seconds, start_sample=int(start * 8000)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
            for n in range(int(seconds * 50)):
                seq = int(start * 50) + n
                for i, port in enumerate(ports):
                    rtp.sendto(rtp_packet(seq, seq * 160, 0x1000 + i, payload[n * 160:(n + 1) * 160]),
                               ("127.0.0.1", port))
                await asyncio.sleep(0.02)

    async def until(self, status: int, method: str, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            self.answers.append(data)
            m = re.search(r"^To:.*?(;tag=[^;\s]+)", data, re.M)
            if m and not self.peer_tag:
                self.peer_tag = m.group(1)
            if data.startswith(f"SIP/2.0 {status} ") and re.search(rf"^CSeq: \d+ {method}", data, re.M):
                return
        raise AssertionError(f"no {status} for {method}; got {[a.split(chr(13))[0] for a in self.answers]}")


async def test_retransmissions_that_arrive_while_the_request_is_handled_are_absorbed(srs):
    """An INVITE and an UPDATE each arrive twice (same branch and CSeq, as a UDP retransmission does
    when the answer is late). Before the fix the second INVITE got 482 Loop Detected and the second
    UPDATE was stored as a third metadata version: CI on a loaded machine, where starting the call
    (catalog writes) took longer than the SRC's 500 ms retransmission timer."""
    ctype, body = multipart(sdp_offer(), AVAYA_DUMMY, xml_first=True)
    xtype, xbody = multipart(None, AVAYA_REAL)
    async with srs() as h:
        src = UdpSrc(h.sip_port)
        src.send(request("INVITE", ctype, body, branch="z9hG4bK-cf-inv-1"), times=2)
        await src.until(200, "INVITE")
        src.send(ACK.replace("{cseq}", "1"))
        await src.rtp(seconds=1.0)
        src.send(request("UPDATE", xtype, xbody, cseq=2, in_dialog=True, branch="z9hG4bK-cf-upd-2"), times=2)
        await src.until(200, "UPDATE")
        await src.rtp(seconds=1.0, start=1.0)
        src.send(request("BYE", cseq=3, in_dialog=True, branch="z9hG4bK-cf-bye-3"))
        await src.until(200, "BYE")
        row = await h.archived()
    statuses = [a.split("\r\n")[0] for a in src.answers]
    assert not [s for s in statuses if not s.startswith(("SIP/2.0 100 ", "SIP/2.0 200 "))], statuses
    assert row.advisor_id == "A4711"
    ev = evidence_of(h.app, row.recording_id)
    assert [v["method"] for v in ev[0]["versions"]] == ["INVITE", "UPDATE"]
    assert h.source.counters["retransmissions"] >= 2


async def test_a_recording_client_outside_the_allow_list_is_refused(srs):
    """Only the SRCs of ``[plugins.pbx_siprec] src`` (here 127.0.0.1/32) may open a session: an
    INVITE from 127.0.0.2 gets 403, no session and no port is opened, and the refusal is counted."""
    ctype, body = multipart(sdp_offer(), rfc_metadata())
    async with srs() as h:
        src = UdpSrc(h.sip_port, ip="127.0.0.2")
        src.send(request("INVITE", ctype, body, branch="z9hG4bK-cf-stranger"))
        await src.until(403, "INVITE")
        assert not h.source.sessions and h.source.counters["rejected"] == 1
        ok = UdpSrc(h.sip_port)  # the allowed address is still served
        ok.send(request("OPTIONS", branch="z9hG4bK-cf-options"))
        await ok.until(200, "OPTIONS")


def check_metadata_evidence(h, rec_id):
    """Both metadata versions (INVITE, UPDATE) kept byte for byte, sealed, with the timeline; shown by
    ``cf recordings show --metadata`` to the call's advisor (audited), refused to another advisor."""
    import hashlib
    import json

    from access_helpers import run_cli_inprocess

    from cfcore.capture.live import evidence_of

    entries = list(h.app.audit.entries(action="recording.evidence", target_id=rec_id))
    assert len(entries) == 1
    sealed = entries[0].detail["sealed"]
    assert set(sealed) <= set("0123456789abcdef")  # sealed (AES-GCM), nothing in clear
    assert "example" not in json.dumps(dict(entries[0].detail))
    make_user(h.app, "anna", ["advisor"], advisor_id="A4711")
    make_user(h.app, "bert", ["advisor"], advisor_id="A100")
    r = run_cli_inprocess(h.deployment, h.app.clock, "anna", "recordings", "show", rec_id, "--metadata", "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)["evidence"]
    assert ev == evidence_of(h.app, rec_id) and len(ev) == 1 and ev[0]["kind"] == "siprec-metadata"
    versions, timeline = ev[0]["versions"], ev[0]["timeline"]
    assert [v["method"] for v in versions] == ["INVITE", "UPDATE"]
    def lines(x):  # as sent (sipp trims each line's indentation and ends lines with CRLF)
        return [ln.strip() for ln in x.splitlines() if ln.strip()]

    assert lines(versions[0]["xml"]) == lines(AVAYA_DUMMY) and lines(versions[1]["xml"]) == lines(AVAYA_REAL)
    assert all(v["sha256"] == hashlib.sha256(v["xml"].encode()).hexdigest() for v in versions)
    assert versions[0]["at"] < 0.5 < 1.2 < versions[1]["at"] < 3.0
    assert [[p["aors"] for p in t["participants"]] for t in timeline] == [
        [["sip:dummy@sbce.example"]], [["sip:4711@cm.example"], ["sip:+4930123456@trunk.example"]]]
    assert timeline[1]["participants"][0]["send"] == ["1"] and timeline[1]["vendor"]
    assert h.app.audit.entries(action="recording.metadata", target_id=rec_id)
    denied = run_cli_inprocess(h.deployment, h.app.clock, "bert", "recordings", "show", rec_id, "--metadata")
    assert denied.exit_code != 0 and "4711@cm" not in denied.output


OPENSIPS = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="g1"><associate-time>2026-12-02T04:00:00Z</associate-time></group>
  <session session_id="os1"><group-ref>g1</group-ref></session>
  <participant participant_id="caller"><nameID aor="sip:100@pbx.example"/></participant>
  <participant participant_id="callee"><nameID aor="sip:+4930123456@carrier.example"/></participant>
  <sessionrecordingassoc session_id="os1"/>
</recording>"""


async def test_opensips_labels_0_1_without_streams_and_lenient_src(srs, pcaps):
    ctype, body = multipart(sdp_offer(labels=("0", "1")), OPENSIPS, extra_part=True)
    steps = invite_answered(ctype, body, require="", contact_param="src") + [play(pcaps["two"]), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps, after=3.0)
    assert "a=label:0" in h.messages() and "a=label:1" in h.messages()
    check_two_sided(h.app, row.recording_id)


async def test_cancel_before_answer_gives_487_and_no_recording(srs):
    from sqlalchemy import select

    from cfcore.db.models import Recording
    from cfcore.db.models_capture import LiveCall

    ctype, body = multipart(sdp_offer(), rfc_metadata())
    inv = request("INVITE", ctype, body).replace("branch=[branch]", "branch=z9hG4bK-[call_number]-inv")
    cancel = ("CANCEL sip:srs@[remote_ip]:[remote_port] SIP/2.0\n"
              "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[call_number]-inv\n"
              "From: <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n"
              "To: <sip:srs@[remote_ip]:[remote_port]>\nCall-ID: [call_id]\nCSeq: 1 CANCEL\n"
              "Max-Forwards: 70\nContent-Length: 0\n")
    ack487 = ("ACK sip:srs@[remote_ip]:[remote_port] SIP/2.0\n"
              "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[call_number]-inv\n"
              "From: <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n"
              "To: <sip:srs@[remote_ip]:[remote_port]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: 1 ACK\n"
              "Max-Forwards: 70\nContent-Length: 0\n")
    steps = [send(inv, retrans=False), recv(100), send(cancel, retrans=False),
             recv(200), recv(487), send(ack487, retrans=False), pause(300)]
    async with srs() as h:
        # A busy catalog: the recorder answers only once the call is in the catalog, so the
        # INVITE is still pending when the CANCEL arrives (deterministically, not by a race).
        import threading

        from sqlalchemy import text

        locked, release = threading.Event(), threading.Event()

        def hold_catalog():
            with h.app.catalog.session() as s:
                if h.app.catalog.is_sqlite:
                    s.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: writers wait
                else:
                    s.execute(text("LOCK TABLE capture_calls IN EXCLUSIVE MODE"))
                locked.set()
                release.wait(30)

        holder = asyncio.create_task(asyncio.to_thread(hold_catalog))
        await asyncio.to_thread(locked.wait, 10)
        try:
            await h.sipp(steps)
        finally:
            release.set()
            await holder
        for _ in range(100):
            if not h.source.sessions:
                break
            await asyncio.sleep(0.05)
        assert not h.source.sessions and not h.source.ports.used  # the RTP ports are free again
        for _ in range(100):
            with h.app.catalog.session() as s:
                if [r.state for r in s.scalars(select(LiveCall))] in ([], ["ended"]):
                    break
            await asyncio.sleep(0.05)
    with h.app.catalog.session() as s:
        rows = list(s.scalars(select(LiveCall)))
        # cancelled before or after the call reached the catalog: never a call left open
        assert [(r.state, r.end_reason) for r in rows] in ([], [("ended", "cancelled by the recording client")])
        assert not list(s.scalars(select(Recording)))


async def test_hold_by_the_src_is_stored_as_a_paused_interval(srs, pcaps):
    ctype, body = multipart(sdp_offer(), rfc_metadata())
    itype, ibody = multipart(sdp_offer(direction="inactive"), None)
    rtype, rbody = multipart(sdp_offer(), None)
    steps = (invite_answered(ctype, body) + [play(pcaps["two"]), pause(1500)]
             + [send(request("INVITE", itype, ibody, cseq=2, in_dialog=True)), recv(100, optional=True),
                recv(200), ack(2), pause(2000)]
             + [send(request("INVITE", rtype, rbody, cseq=3, in_dialog=True)), recv(100, optional=True),
                recv(200), ack(3), pause(2800)] + bye(4))
    async with srs() as h:
        await h.sipp(steps)
        row = await h.archived()
    assert h.messages().count("a=inactive") >= 2  # offered and answered
    rec = recording(h.app, row.recording_id)
    paused = [s for s in rec.segments if s.mode == "paused"]
    assert len(paused) == 1 and 1.2 < paused[0].start < 2.0 and 1.5 < paused[0].end - paused[0].start < 2.5
    a = channel(h.app, row.recording_id, "advisor")
    assert dominant(a, 0.3, paused[0].start - 0.1) == 440
    assert is_silent(a, paused[0].start + 0.05, paused[0].end - 0.05)
    assert level(a, paused[0].end + 0.2, rec.duration - 0.3) > 4000


# (sipp reads [...] as its own keywords, so the internal subset of a classic XXE cannot be sent;
# the external DTD and the entity reference are; tests/test_siprec_units.py covers the rest.)
XXE = """<?xml version="1.0"?>
<!DOCTYPE recording SYSTEM "file:///etc/passwd">
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><participant participant_id="a">
<nameID aor="sip:&xxe;@x"/></participant></recording>"""


@pytest.mark.parametrize(("case", "status"), [
    ("xxe", 400), ("broken-xml", 400), ("broken-sdp", 400), ("srtp", 488), ("not-siprec", 403),
    ("unknown-require", 420), ("no-codec", 488)])
async def test_malformed_or_unsupported_sessions_get_4xx_and_the_recorder_lives_on(srs, case, status):
    sdp, xml = sdp_offer(), rfc_metadata()
    kw: dict[str, str] = {}
    if case == "xxe":
        xml = XXE
    elif case == "broken-xml":
        xml = xml.replace("</recording>", "<participant>")
    elif case == "broken-sdp":
        sdp = sdp.replace("v=0", "x=broken").replace("m=audio [media_port]", "m=audio notaport")
    elif case == "srtp":
        sdp = sdp_offer(proto="RTP/SAVP", extra="a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"
                        "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj")
    elif case == "not-siprec":
        kw = {"require": "", "contact_param": "expires=60"}
    elif case == "unknown-require":
        kw = {"require": "siprec, foo-ext"}
    elif case == "no-codec":
        sdp = sdp_offer(fmts="3")  # GSM only
    ctype, body = multipart(sdp, xml)
    inv = request("INVITE", ctype, body, **kw).replace("branch=[branch]", "branch=z9hG4bK-[call_number]-inv")
    ack4 = ("ACK sip:srs@[remote_ip]:[remote_port] SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[call_number]-inv\n"
            "From: <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n"
            "To: <sip:srs@[remote_ip]:[remote_port]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: 1 ACK\n"
            "Max-Forwards: 70\nContent-Length: 0\n")
    options = request("OPTIONS", cseq=5)
    steps = [send(inv), recv(100, optional=True), recv(status), send(ack4, retrans=False),
             send(options), recv(200)]
    async with srs() as h:
        await h.sipp(steps, name=case)
        assert not h.source.sessions and h.source.counters["rejected"] >= 1
    msgs = h.messages(case)
    assert f"SIP/2.0 {status} " in msgs
    assert "root:" not in msgs  # the external entity was never resolved
    if case == "unknown-require":
        assert "Unsupported: foo-ext" in msgs


async def test_session_timer_refresh_by_reinvite_without_sdp(srs, pcaps):
    ctype, body = multipart(sdp_offer(), rfc_metadata())
    timer = "Supported: timer\nSession-Expires: 120;refresher=uac"
    steps = (invite_answered(ctype, body, extra_headers=timer) + [play(pcaps["two"]), pause(2000)]
             + [send(request("INVITE", None, "", cseq=2, in_dialog=True, extra_headers=timer)),
                recv(100, optional=True), recv(200), ack(2), pause(4300)] + bye(3))
    async with srs(session_expires=600) as h:
        await h.sipp(steps)
        row = await h.archived()
    msgs = h.messages()
    assert msgs.count("Session-Expires: 120;refresher=uac") >= 4  # both INVITEs and both answers
    assert "Require: siprec, timer" in msgs
    # the refresh without SDP was answered with the current SDP (same ports, labels echoed)
    answers = [m for m in msgs.split("SIP/2.0 200 OK")[1:] if "CSeq: 1 INVITE" in m or "CSeq: 2 INVITE" in m]
    ports = [sorted(set(re.findall(r"m=audio (\d+)", a))) for a in answers]
    assert len(ports) >= 2 and all(p == ports[0] for p in ports) and ports[0]
    rec = recording(h.app, row.recording_id)
    a = channel(h.app, row.recording_id, "advisor")
    assert rec.state == "archived" and dominant(a, 0.3, 5.5) == 440 and level(a, 0.3, 5.5) > 4000


# ---------------------------------------------------------------------- SRTP (SDES)

def _srtp_pcap(path, keys):
    """Two SRTP streams encrypted by libsrtp (pylibsrtp, an implementation independent of ours):
    stream 1 with AES_CM_128_HMAC_SHA1_80, stream 2 with _32. Stream 1 also carries 3 tampered
    copies (one bit flipped: authentication fails) and 2 replays of packets already sent."""
    from pylibsrtp import Policy, Session

    profiles = [Policy.SRTP_PROFILE_AES128_CM_SHA1_80, Policy.SRTP_PROFILE_AES128_CM_SHA1_32]
    sessions = [Session(policy=Policy(key=k, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=p))
                for k, p in zip(keys, profiles, strict=True)]
    sent: dict[int, bytes] = {}

    def protect(idx, n, rtp):
        out = [sessions[idx].protect(rtp)]
        if idx == 0:
            sent[n] = out[0]
            if n in (40, 41, 42):
                bad = bytearray(out[0])
                bad[20] ^= 0x01
                out.insert(0, bytes(bad))  # before the original (after it, it counts as a replay)
            if n in (60, 61):
                out.append(sent[n - 30])  # replayed: authentic, but seen before
        return out

    write_pcap(path, [(7000, 6000, ulaw(tone(440, 6.0))), (7002, 6002, ulaw(tone(880, 6.0)))],
               transform=protect)


async def test_srtp_sdes_80_and_32_decrypted_into_the_archive(srs, tmp_path):
    import base64
    import os

    keys = [os.urandom(30), os.urandom(30)]
    pcap = tmp_path / "srtp.pcap"
    _srtp_pcap(pcap, keys)
    b64 = [base64.b64encode(k).decode() for k in keys]
    sdp = sdp_offer(proto="RTP/SAVP", extra="a=crypto:__C__")
    # stream 1: an unsupported suite first (skipped), then ours; stream 2: _32 with a lifetime
    sdp = sdp.replace("a=crypto:__C__", "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"
                      "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAw\n"
                      f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{b64[0]}", 1)
    sdp = sdp.replace("a=crypto:__C__", f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{b64[1]}|2^31", 1)
    ctype, body = multipart(sdp, rfc_metadata())
    steps = invite_answered(ctype, body) + [play(pcap), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps)
    assert req.status == "applied"
    msgs = h.messages()
    answer = msgs.split("SIP/2.0 200 OK")[1]
    assert answer.count("m=audio") == 2 and answer.count("RTP/SAVP") == 2
    ours = re.findall(r"a=crypto:(\d) (\S+) inline:(\S+)", answer)
    assert [(t, s) for t, s, _ in ours] == [("2", "AES_CM_128_HMAC_SHA1_80"), ("1", "AES_CM_128_HMAC_SHA1_32")]
    assert all(len(base64.b64decode(k)) == 30 and k not in b64 for _, _, k in ours)  # our own keys
    rec = check_two_sided(h.app, row.recording_id)
    assert rec.duration == pytest.approx(6.0, abs=0.25)
    from cfcore.capture.live import stats_of

    st = stats_of(h.app, row.recording_id)["streams"]
    a, c = st["advisor:1"], st["customer:2"]
    assert a["srtp"] == 1 and c["srtp"] == 1
    assert a["srtp_auth_failed"] == 3 and a["srtp_replayed"] == 2 and c["srtp_auth_failed"] == 0
    assert a["packets"] == 300 and c["packets"] == 300 and a["lost"] == 0 and c["lost"] == 0
    assert a["duplicates"] == 0  # replays never reached the RTP layer


# ---------------------------------------------------------------------- G.722

@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (G.722 reference encoder) is not installed")
async def test_g722_streams_are_decoded_into_the_archive(srs, tmp_path):
    from tests.test_siprec_g722 import ffmpeg_g722, tone16k

    adv = ffmpeg_g722(tone16k([(440, 6.0)]), tmp_path)
    cus = ffmpeg_g722(tone16k([(880, 6.0)]), tmp_path)
    pcap = tmp_path / "g722.pcap"
    write_pcap(pcap, [(7000, 6000, adv), (7002, 6002, cus)], pt=9)  # 160 bytes / 160 ticks per 20 ms
    ctype, body = multipart(sdp_offer(fmts="9 0 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:9 G722/8000\n"
                                                               "a=rtpmap:0 PCMU/8000"), rfc_metadata())
    steps = invite_answered(ctype, body) + [play(pcap), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps)
    answer = h.messages().split("SIP/2.0 200 OK")[1]
    assert answer.count("m=audio") == 2 and "RTP/AVP 9 101" in answer and "a=rtpmap:9 G722/8000" in answer
    rec = check_two_sided(h.app, row.recording_id)
    assert rec.duration == pytest.approx(6.0, abs=0.25) and rec.sample_rate == 8000


# ---------------------------------------------------------------------- vendors: Cisco, Oracle, BroadWorks; transfer

async def test_cisco_cube_extra_part_streams_inactive_then_sendonly(srs, pcaps):
    """CUBE: a multipart INVITE with an extra part, both streams a=inactive until the call is
    answered, then a re-INVITE makes them sendonly and the media starts."""
    ctype, body = multipart(sdp_offer(direction="inactive"), rfc_metadata(), extra_part=True)
    rtype, rbody = multipart(sdp_offer(), None)
    steps = (invite_answered(ctype, body) + [pause(1200)]
             + [send(request("INVITE", rtype, rbody, cseq=2, in_dialog=True)), recv(100, optional=True),
                recv(200), ack(2), play(pcaps["two"]), pause(7000)] + bye(3))
    async with srs() as h:
        await h.sipp(steps)
        row = await h.archived()
    answers = h.messages().split("SIP/2.0 200 OK")[1:]
    assert "a=inactive" in answers[0] and "a=recvonly" in answers[1]
    rec = recording(h.app, row.recording_id)
    a = channel(h.app, row.recording_id, "advisor")
    assert rec.duration == pytest.approx(7.25, abs=0.5)
    assert is_silent(a, 0.0, 1.1)  # nothing flowed while inactive
    assert dominant(a, 1.8, rec.duration - 0.3) == 440 and level(a, 1.8, rec.duration - 0.3) > 4000
    assert channel(h.app, row.recording_id, "customer") is None  # no consent: the customer is not kept


async def test_oracle_apkt_metadata_with_labels_10_11(srs, tmp_path):
    from cf_pbx_siprec import metadata as mdmod

    from tests.test_siprec_units import ORACLE

    # Oracle's draft dialect: the customer sends label 10 (first m-line), the advisor label 11
    pcap = tmp_path / "oracle.pcap"
    write_pcap(pcap, [(7000, 6000, ulaw(tone(880, 6.0))), (7002, 6002, ulaw(tone(440, 6.0)))])
    sdp = sdp_offer(labels=("10", "11"))
    ctype, body = multipart(sdp, ORACLE.decode(), xml_type="application/rs-metadata")
    steps = invite_answered(ctype, body) + [play(pcap), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps)
    assert row.pbx_call_id == mdmod.parse(ORACLE).vendor["ucid"]
    assert "a=label:10" in h.messages() and "a=label:11" in h.messages()
    check_two_sided(h.app, row.recording_id)


TRANSFER_MD = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>partial</datamode>
  <participant participant_id="P-cus2"><nameID aor="sip:+4940999888@carrier.example"/></participant>
  <stream stream_id="S-t" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>3</label></stream>
  <participantstreamassoc participant_id="P-cus2"><send>S-t</send></participantstreamassoc>
</recording>"""


async def test_transfer_new_m_line_and_new_ssrc(srs, tmp_path):
    """The customer is transferred: a re-INVITE turns label 2 inactive, adds an m-line (label 3)
    for the new party (partial metadata), and the advisor's stream comes with a new SSRC."""
    def new_ssrc(idx, n, rtp):
        if idx == 0 and n >= 150:  # the SBC re-originates the advisor's media at 3 s
            b = bytearray(rtp)
            struct.pack_into("!HII", b, 2, (n + 20000) & 0xFFFF, n * 160 + 777777, 0x2222)
            return [bytes(b)]
        return [rtp]

    import struct

    pcap = tmp_path / "transfer.pcap"
    write_pcap(pcap, [(7000, 6000, ulaw(tone(440, 6.0))), (7002, 6002, ulaw(tone(880, 3.0))),
                      (7004, 6004, ulaw(tone(660, 3.0)), 3.0)], transform=new_ssrc)
    ctype, body = multipart(sdp_offer(), rfc_metadata())
    sdp3 = sdp_offer(labels=("1", "2", "3"))
    sdp3 = sdp3.replace("a=label:2\na=sendonly", "a=label:2\na=inactive")
    ttype, tbody = multipart(sdp3, TRANSFER_MD)
    steps = (invite_answered(ctype, body) + [play(pcap), pause(2500)]
             + [send(request("INVITE", ttype, tbody, cseq=2, in_dialog=True)), recv(100, optional=True),
                recv(200), ack(2), pause(3800)] + bye(3))
    async with srs() as h:
        req, row = await h.consented_call(steps, after=1.0)
    answer = h.messages().split("SIP/2.0 200 OK")[2]
    assert answer.count("m=audio") == 3 and "a=label:3" in answer
    rec = recording(h.app, row.recording_id)
    t = next(s.start for s in rec.segments if s.mode == "both")
    a, c = channel(h.app, row.recording_id, "advisor"), channel(h.app, row.recording_id, "customer")
    freqs = (440.0, 660.0, 880.0)
    assert dominant(a, 0.3, rec.duration - 0.3, freqs) == 440 and level(a, 0.3, 2.8) > 4000
    assert level(a, 3.5, rec.duration - 0.3) > 4000  # the advisor's new SSRC goes on in the same channel
    assert is_silent(c, 0, t)
    assert dominant(c, t + 0.1, 2.4, freqs) == 880 and dominant(c, 3.6, rec.duration - 0.3, freqs) == 660
    from cfcore.capture.live import stats_of

    st = stats_of(h.app, row.recording_id)["streams"]
    assert st["advisor:1"]["ssrc_changes"] == 1 and st["customer:3"]["packets"] >= 140
    # sipp moves its source port after the re-INVITE: the recorder latched again, once
    assert st["advisor:1"]["relatched"] <= 1 and st["advisor:1"]["foreign"] <= 5


BROADWORKS_MIXED = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="bw1"><extensiondata xmlns:bw="http://schema.broadsoft.com/siprec/extensiondata">
    <bw:extTrackingID>12345:1</bw:extTrackingID></extensiondata></session>
  <participant participant_id="a"><nameID aor="tel:+4930123456"/></participant>
  <participant participant_id="b"><nameID aor="sip:4711@bw.example"/></participant>
  <stream stream_id="mixed" session_id="bw1"><label>1</label></stream>
  <participantstreamassoc participant_id="a"><send>mixed</send></participantstreamassoc>
  <participantstreamassoc participant_id="b"><send>mixed</send></participantstreamassoc>
</recording>"""


async def test_broadworks_metadata_first_and_a_mixed_stream(srs, tmp_path):
    """BroadWorks: the metadata part first, one m-line with both voices. A mixed stream carries the
    customer's voice, so it is the customer's channel: nothing of it before the consent."""
    pcap = tmp_path / "mixed.pcap"
    write_pcap(pcap, [(7000, 6000, ulaw(tone(440, 6.0)))])
    ctype, body = multipart(sdp_offer(labels=("1",)), BROADWORKS_MIXED, xml_first=True)
    steps = invite_answered(ctype, body) + [play(pcap), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps, advisor="A4711")
    assert row.advisor_id == "A4711" and row.pbx_call_id == "12345:1" and row.customer_hint == "+49******56"
    rec = recording(h.app, row.recording_id)
    t = next(s.start for s in rec.segments if s.mode == "both")
    a, c = channel(h.app, row.recording_id, "advisor"), channel(h.app, row.recording_id, "customer")
    assert 1.5 < t < rec.duration - 1.0
    assert is_silent(a, 0, rec.duration)  # the advisor has no stream of his own
    assert is_silent(c, 0, t)  # nothing of the mixed stream before the consent
    assert dominant(c, t + 0.1, rec.duration - 0.3) == 440 and level(c, t + 0.1, rec.duration - 0.3) > 4000
    from cfcore.capture.live import stats_of

    assert stats_of(h.app, row.recording_id)["streams"]["customer:1"]["mixed"] == 1


@pytest.mark.skipif(not __import__("cf_pbx_siprec.g729").g729.available(), reason="libbcg729 is not installed")
async def test_g729_streams_are_decoded_into_the_archive(srs, tmp_path):
    from tests.test_siprec_g729 import bcg729_encode

    adv, cus = b"".join(bcg729_encode(tone(440, 6.0))), b"".join(bcg729_encode(tone(880, 6.0)))
    pcap = tmp_path / "g729.pcap"
    write_pcap(pcap, [(7000, 6000, adv), (7002, 6002, cus)], pt=18, payload_bytes=20)
    ctype, body = multipart(sdp_offer(fmts="18 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000"),
                            rfc_metadata())
    steps = invite_answered(ctype, body) + [play(pcap), pause(7000)] + bye()
    async with srs() as h:
        req, row = await h.consented_call(steps)
    answer = h.messages().split("SIP/2.0 200 OK")[1]
    assert "RTP/AVP 18 101" in answer and "a=rtpmap:18 G729/8000" in answer
    rec = recording(h.app, row.recording_id)
    assert rec.duration == pytest.approx(6.0, abs=0.25)
    both = [s for s in rec.segments if s.mode == "both"]
    t = both[0].start
    a, c = channel(h.app, row.recording_id, "advisor"), channel(h.app, row.recording_id, "customer")
    assert dominant(a, 0.3, rec.duration - 0.3) == 440 and level(a, 0.3, rec.duration - 0.3) > 3000
    assert is_silent(c, 0, t)
    assert dominant(c, t + 0.1, rec.duration - 0.3) == 880 and level(c, t + 0.1, rec.duration - 0.3) > 3000
