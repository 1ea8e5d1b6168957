"""The AMI client against the simulated Asterisk: framing, logins (plain, MD5, wrong secret),
TLS with a self-signed certificate, ActionID correlation, keep-alive, reconnect, malformed and
oversized messages, and that neither secrets nor caller numbers reach the log."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from cf_pbx_asterisk import cf_capture_sources
from cf_pbx_asterisk.ami import AmiClient, AmiError, FrameParser, encode_action, mask_number, md5_key
from cf_pbx_asterisk.config import AsteriskConfigError, AsteriskOptions, AsteriskSettings

from hookspecs.options import Secret
from hookspecs.types import PluginContext
from tests.asterisk_sim import (
    AsteriskSim,
    CaptureHarness,
    assert_segments,
    channel,
    has_tone,
    is_silent,
    leg_id,
    make_user,
    self_signed,
    server_ssl,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]



# ---------------------------------------------------------------------- framing (no network)


def test_parser_splits_messages_across_reads_and_tolerates_lf():
    p = FrameParser()
    data = (b"Event: Newchannel\r\nChannel: PJSIP/100-00000001\r\nUniqueid: 1.1\r\n\r\n"
            b"Response: Success\r\nActionID: cf-1\r\nPing: Pong\r\n\r\n"
            b"Event: Hangup\nUniqueid: 1.1\n\n")
    out = []
    for i in range(0, len(data), 7):  # seven bytes at a time
        out += p.feed(data[i:i + 7])
    assert [m.event or m.response for m in out] == ["Newchannel", "Success", "Hangup"]
    assert out[0]["channel"] == "PJSIP/100-00000001"  # keys are case-insensitive
    assert out[1].action_id == "cf-1" and p.malformed == p.oversized == 0


def test_parser_skips_malformed_and_oversized_without_losing_the_next_message():
    p = FrameParser(max_message=1024)
    junk = b"\x00\xff\xfegarbage without colon\r\nmore junk\r\n\r\n"
    no_kind = b"Foo: bar\r\n\r\n"
    big = b"Event: Huge\r\n" + b"X-Pad: " + b"a" * 5000 + b"\r\n\r\n"
    good = b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
    out = p.feed(junk + no_kind + big[:600])
    out += p.feed(big[600:3000])
    out += p.feed(big[3000:] + good)
    assert [m.event for m in out] == ["FullyBooted"]
    assert p.malformed == 2 and p.oversized == 1


def test_encode_action_refuses_header_injection():
    assert encode_action("Ping", {}, "cf-9") == b"Action: Ping\r\nActionID: cf-9\r\n\r\n"
    with pytest.raises(ValueError):
        encode_action("MixMonitor", {"Channel": "PJSIP/100\r\nAction: Originate"}, "cf-1")


def test_md5_key_and_number_masking():
    # The example of Asterisk's Login documentation: md5(challenge + secret), lower-case hex.
    import hashlib

    assert md5_key("911725589", "password") == hashlib.md5(b"911725589password").hexdigest()
    assert mask_number("+4930123456") == "+49******56" and mask_number(None) == "-"


def test_config_errors_name_the_key(tmp_path):
    base = {"host": "pbx", "username": "u", "secret": Secret("s3cr3t-value"), "recordings_dir": str(tmp_path)}
    AsteriskSettings.from_mapping(base)
    with pytest.raises(AsteriskConfigError, match="username"):
        AsteriskSettings.from_mapping({k: v for k, v in base.items() if k != "username"})
    with pytest.raises(AsteriskConfigError, match="not both"):
        AsteriskSettings.from_mapping({**base, "sftp_host": "pbx"})
    with pytest.raises(AsteriskConfigError, match="recordings_dir"):
        AsteriskSettings.from_mapping({k: v for k, v in base.items() if k != "recordings_dir"})
    with pytest.raises(AsteriskConfigError, match="sftp_known_hosts"):
        AsteriskSettings.from_mapping({**{k: v for k, v in base.items() if k != "recordings_dir"},
                                       "sftp_host": "pbx", "sftp_username": "a", "sftp_key": "/k"})
    with pytest.raises(AsteriskConfigError, match="absolute"):
        AsteriskSettings.from_mapping({**base, "monitor_dir": "relative/dir"})
    with pytest.raises(AsteriskConfigError, match=r"plugins\.pbx_asterisk\.port must be int, got str"):
        AsteriskSettings.from_mapping({**base, "port": "5038"})
    with pytest.raises(AsteriskConfigError, match=r"plugins\.pbx_asterisk\.prot is not an option"):
        AsteriskSettings.from_mapping({**base, "prot": 5038})
    with pytest.raises(AsteriskConfigError, match=r"plugins\.pbx_asterisk\.secret is a secret"):
        AsteriskSettings.from_mapping({**base, "secret": "in clear"})
    s = AsteriskSettings.from_mapping({**base, "advisors": {"PJSIP/100": "A100", "101": "A101"}})
    assert s.advisor_for("PJSIP/100-0000000a") == "A100" and s.advisor_for("SIP/101-00000001") == "A101"
    assert s.advisor_for("PJSIP/trunk-00000001") is None
    assert "s3cr3t-value" not in repr(s)


def test_plugin_without_host_returns_no_source(tmp_path):
    from datetime import UTC, datetime

    ctx = PluginContext(name="pbx_asterisk", config={}, clock=lambda: datetime.now(UTC), data_dir=tmp_path)
    (reg,) = cf_capture_sources()
    assert reg.name == "asterisk" and reg.create(AsteriskOptions(), ctx) == []


# ---------------------------------------------------------------------- against the simulator


async def _client(sim: AsteriskSim, events: list, **kw) -> tuple[AmiClient, asyncio.Task]:
    kw.setdefault("secret", sim.secret)
    client = AmiClient(host="127.0.0.1", port=sim.port, username=sim.username, backoff_min=0.05, backoff_max=0.3,
                       on_event=events.append, **kw)
    task = asyncio.create_task(client.run())
    return client, task


async def _close(client: AmiClient, task: asyncio.Task) -> None:
    await client.stop()
    await asyncio.wait_for(task, 5)


async def test_plain_login_events_and_actionid_correlation(tmp_path):
    async with AsteriskSim(monitor_root=tmp_path, secret="s3cret") as sim:
        events: list = []
        client, task = await _client(sim, events)
        await sim.wait_for(client.connected.is_set, what="login")
        assert "connected" in events and any(getattr(e, "event", None) == "FullyBooted" for e in events)
        # Twenty actions in flight at once: every response reaches its own caller.
        results = await asyncio.gather(*(client.action("Ping") for _ in range(20)))
        ids = {sim_id for a, f in sim.actions if a == "Ping" for sim_id in [f["ActionID"]]}
        assert len(ids) == 20 and all(r.get("Ping") == "Pong" for r in results)
        with pytest.raises(AmiError, match="Invalid/unknown command"):
            await client.action("NoSuchAction")
        _, items = await client.action_list("CoreShowChannels")
        assert items == []
        sim.inbound_call("+4930123456", "PJSIP/100")
        await sim.wait_for(lambda: any(getattr(e, "event", None) == "DialState" for e in events), what="events")
        names = [e.event for e in events if not isinstance(e, str)]
        # The order of FIELD-NOTES (up to ringing).
        assert names[:8] == ["FullyBooted", "Newchannel", "Newchannel", "NewCallerid", "NewConnectedLine",
                             "DialBegin", "Newstate", "NewConnectedLine"]
        login = next(f for a, f in sim.actions if a == "Login")
        assert login["Secret"] == "***" and "AuthType" not in login
        await _close(client, task)


async def test_md5_login_never_sends_the_secret(tmp_path):
    async with AsteriskSim(monitor_root=tmp_path, secret="s3cret") as sim:
        client, task = await _client(sim, [], md5=True)
        await sim.wait_for(client.connected.is_set, what="MD5 login")
        assert [a for a, _ in sim.actions][:2] == ["Challenge", "Login"]
        login = sim.actions[1][1]
        assert login["AuthType"] == "MD5" and "Secret" not in login and login["Key"] == "***"
        assert sim.logins_ok == 1
        await _close(client, task)


async def test_wrong_password_is_refused_and_reported(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with AsteriskSim(monitor_root=tmp_path, secret="right") as sim:
        for md5 in (False, True):
            client, task = await _client(sim, [], secret="wrong-secret-value", md5=md5)
            await sim.wait_for(lambda c=client: c.auth_failures >= 1, what="refused login")
            assert not client.connected.is_set()
            assert "login refused" in client.last_error and "check username and secret" in client.last_error
            await _close(client, task)
        assert sim.logins_failed >= 2 and sim.logins_ok == 0
    assert "wrong-secret-value" not in caplog.text


async def test_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    async with AsteriskSim(monitor_root=tmp_path / "spool", secret="s", ssl_context=server_ssl(cert, key)) as sim:
        trusting = ssl.create_default_context(cafile=str(cert))
        client, task = await _client(sim, [], ssl_context=trusting)
        await sim.wait_for(client.connected.is_set, what="login over TLS")
        assert (await client.action("Ping")).get("Ping") == "Pong"
        await _close(client, task)
        # Without the certificate in the trust store the client refuses the server.
        client, task = await _client(sim, [], ssl_context=ssl.create_default_context())
        await sim.wait_for(lambda: client.last_error is not None, what="TLS failure")
        assert "certificate verify failed" in client.last_error.lower() or "ssl" in client.last_error.lower()
        assert not client.connected.is_set() and sim.logins_ok == 1
        await _close(client, task)


async def test_keepalive_drops_a_silent_server_and_reconnects(tmp_path):
    async with AsteriskSim(monitor_root=tmp_path, secret="s") as sim:
        hang = asyncio.Event()

        async def stall(action, fields):
            if action == "Ping" and not hang.is_set():
                hang.set()
                await asyncio.sleep(30)  # this connection stops answering

        sim.before_action = stall
        client, task = await _client(sim, [], ping_interval=0.2, action_timeout=0.5)
        await sim.wait_for(lambda: client.connects >= 2 and client.connected.is_set(), timeout=15,
                           what="reconnect after the keep-alive failed")
        assert hang.is_set()
        await _close(client, task)


async def test_reconnect_with_backoff_while_the_pbx_refuses(tmp_path):
    async with AsteriskSim(monitor_root=tmp_path, secret="s") as sim:
        events: list = []
        client, task = await _client(sim, events)
        await sim.wait_for(client.connected.is_set, what="login")
        sim.refusing = True
        sim.drop_connections()
        await sim.wait_for(lambda: not client.connected.is_set(), what="drop noticed")
        await asyncio.sleep(0.5)
        assert client.last_error and not client.connected.is_set()
        sim.refusing = False
        await sim.wait_for(client.connected.is_set, what="reconnect")
        assert [e for e in events if isinstance(e, str)] == ["connected", "disconnected", "connected"]
        await _close(client, task)


# ---------------------------------------------------------------------- malformed input during a call



async def test_malformed_frames_and_oversized_messages_mid_call(harness, frozen_clock, caplog):
    caplog.set_level(logging.DEBUG)
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call("+4930123456", "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(4)
        h.sim.inject(b"this is not AMI at all\r\n\x00\x01\x02\r\n\r\n")
        h.sim.inject(b"Event: Bogus\r\nCallerIDNum: +4930123456\r\nPad: " + b"x" * (200 * 1024) + b"\r\n\r\n")
        h.sim.inject(b"Event: SomethingAsteriskAddsIn23\r\nChannel: PJSIP/100-00000001\r\n\r\n")
        h.sim.inject(b"Event: Newstate\r\nUniqueid: \r\nChannelState: up\r\n\r\n")  # broken fields
        await h.settle()
        parser = h.source.client.conn.parser
        assert parser.malformed == 1 and parser.oversized == 1
        assert h.source.client.connected.is_set()
        await h.trigger(anna, cid, "record_both")  # the session still works both ways
        frozen_clock.advance(4)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    assert_segments(h.app, rec_id, [(0.0, 4.0, "advisor_only"), (4.0, 8.0, "both")])
    cus = channel(h.app, rec_id, "customer")
    assert is_silent(cus, 0, 4) and has_tone(cus, 4, 8)
    # Neither the AMI secret nor a caller number in clear ever reached the log.
    assert h.sim.secret not in caplog.text
    assert "+4930123456" not in caplog.text and "4930123456" not in caplog.text
    assert leg_id(call) == cid


async def test_tls_and_md5_through_the_plugin_config(harness, tmp_path, frozen_clock):
    """The deployment's own settings (tls, tls_ca, md5) carry a whole call over TLS."""
    cert, key = self_signed(tmp_path)
    async with harness(sim_kwargs={"ssl_context": server_ssl(cert, key)},
                       plugin={"tls": True, "tls_ca": str(cert), "md5": True}) as h:
        assert h.source.client.ssl_context is not None
        assert [a for a, _ in h.sim.actions][:2] == ["Challenge", "Login"]
        call = h.sim.outbound_call("PJSIP/102", "+4940555777")
        cid = await h.answered(call)
        frozen_clock.advance(3)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    assert_segments(h.app, rec_id, [(0.0, 3.0, "advisor_only")])
    assert channel(h.app, rec_id, "customer") is None


async def test_missing_write_permission_is_refused_with_one_clear_line(tmp_path, deployment, make_app, frozen_clock,
                                                                       caplog):
    """Measured: with ``write = call`` Asterisk answers MixMonitor with "Permission denied" and
    nothing is ever recorded. The plugin probes at login (MixMonitor on a channel that cannot
    exist, CoreShowChannels), says so in one line, does not report itself connected, and picks the
    fix up by itself (it logs in again every reconnect_max)."""
    caplog.set_level(logging.INFO, logger="cf_pbx_asterisk")
    h = CaptureHarness(tmp_path=tmp_path, deployment=deployment, make_app=make_app, clock=frozen_clock,
                       sim_kwargs={"write_perms": ("call",)}, wait_connected=False)
    async with h:
        await h.sim.wait_for(lambda: h.source.client.permission_error is not None, what="the permission check")
        call = h.sim.inbound_call("+4930123456", "PJSIP/100")
        h.sim.answer(call)
        await h.sim.wait_for(lambda: h.sim.logins_ok >= 3, what="a few more logins")  # it keeps trying, quietly
        st = h.source.status()
        assert st["connected"] is False and st["ready"] is False
        assert st["permission_error"] == (f"user 'callfort' on 127.0.0.1:{h.sim.port}: the AMI user may not send "
                                          "MixMonitor (needs write = system in manager.conf); nothing is recorded")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [f"AMI {st['permission_error']}"]  # one line, once
        probes = [f for a, f in h.sim.actions if a == "MixMonitor"]
        assert probes and all(f["Channel"].startswith("CallFort/permission-probe-") for f in probes)
        assert h.sim.monitor_of(call) is None
        await h.runner._heartbeat()
        from cfcore.capture import controller

        (row,) = controller.runners(h.app)
        assert row["sources"][0]["permission_error"] == st["permission_error"] and not row["sources"][0]["ready"]
        # The administrator fixes manager.conf: the plugin logs in again and records the call.
        h.sim.write_perms.add("system")
        await h.sim.wait_for(lambda: h.source.status()["ready"], what="ready after the fix")
        await h.sim.wait_recording(call)
        assert h.source.status()["permission_error"] is None
        frozen_clock.advance(3)  # the advisor talks: MixMonitor writes (an empty recording is refused)
        h.sim.hangup(call)
        await h.archived(leg_id(call))

