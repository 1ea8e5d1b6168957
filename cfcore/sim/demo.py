"""The ``cf demo`` scenario: a simulated Asterisk with three advisors making calls through the
pbx_asterisk plugin into a real deployment, so a newcomer sees recordings arrive.

**Demo code, not production code.** It seeds demo users straight into the catalog (bypassing the
four-eyes role grant) and is refused on a deployment that ``cf demo`` did not create.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hookspecs.options import Secret
from hookspecs.types import PluginContext, RequestContext

from ..authority import system_context
from ..errors import AccessDenied, PluginError
from ..states import CallState
from .asterisk import AsteriskSim, SimCall

if TYPE_CHECKING:
    from ..app import App

MARKER = ".cf-demo"
PASSWORD_FILE = "demo-password"  # noqa: S105 - a file name, not a password
ADVISORS = {"PJSIP/100": "A100", "PJSIP/101": "A101", "PJSIP/102": "A102"}
USERS = [("anna", "advisor", "A100"), ("bert", "advisor", "A101"), ("carla", "advisor", "A102"),
         ("dora", "advisor", "A103"), ("sam", "supervisor", None), ("dirk", "dpo", None)]
DORA_MOBILE = "+491701234567"  # dora works from her mobile: the dial-in (plugin mobile_ons)


def seed_users(app: App, directory: Path) -> str:
    """Create the demo users (once) with one password kept in ``demo-password`` (0600)."""
    from ..access.users import hash_password
    from ..crypto.keyfiles import write_private
    from ..db.models_access import User, UserRole

    pw_file = directory / PASSWORD_FILE
    if pw_file.exists():
        password = pw_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(12)
        write_private(pw_file, password.encode() + b"\n")
    now = app.clock.now()
    with app.catalog.session() as s:
        existing = set(s.scalars(select(User.username)))
        added = []
        for name, role, advisor_id in USERS:
            if name in existing:
                continue
            user = User(id=secrets.token_hex(16), username=name, display_name=f"Demo {name}",
                        password_hash=hash_password(app, password), advisor_id=advisor_id, disabled=False,
                        failed_logins=0, created_at=now, created_by="cf demo")
            user.roles.append(UserRole(role=role, granted_at=now))
            s.add(user)
            added.append(name)
        if added:
            app.audit.append(s, system_context("demo"), "demo.seed_users", "user", None, "ok",
                             {"users": added, "note": "demo deployment: roles granted without four-eyes"})
    return password


def _user_ctx(app: App, username: str) -> RequestContext:
    from ..access.users import actor_for
    from ..db.models_access import User

    with app.catalog.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        _ = user.roles
        actor = actor_for(user)
    return RequestContext(actor=actor, host="demo-pc", ip="127.0.0.1", function="demo.desktop")


def pbx_source(app: App, sim: AsteriskSim, spool: Path) -> Any:
    """The pbx_asterisk plugin's source, configured for the simulator (not written to the config)."""
    types = app.pm.capture_source_types()
    reg = next((r for n, r in types.items() if app.pm.registered_by("cf_capture_sources", n) == "pbx_asterisk"), None)
    if reg is None:
        raise PluginError("the pbx_asterisk plugin is not installed or is disabled",
                          hint="pip install -e plugins/pbx_asterisk (scripts/setup does it)")
    config = {"name": "asterisk-demo", "host": "127.0.0.1", "port": sim.port, "username": sim.username,
              "secret": Secret(sim.secret), "md5": True, "monitor_dir": str(spool), "recordings_dir": str(spool),
              "settle_seconds": 0.2, "pickup_timeout": 10, "retry_seconds": 0.5, "reconnect_min": 0.1,
              "advisors": ADVISORS}
    ctx = PluginContext(name="pbx_asterisk", config=config, clock=app.clock.now,
                        data_dir=app.data_dir / "plugins" / "pbx_asterisk-demo")
    try:
        sources = reg.create(app.plugin_options(reg, config, "plugins.pbx_asterisk"), ctx)
    except Exception as exc:
        raise PluginError(f"pbx_asterisk cannot start: {exc}") from exc
    return sources[0]


#: Name of the demo's dial-in source; ``cf demo`` trusts it to witness consent in its config.
MOBILE_SOURCE = "mobile-demo"


def mobile_source(app: App, sim: Any, pin: str) -> Any:
    """The mobile_ons plugin's dial-in source, configured for the ARI simulator (None if absent)."""
    import hashlib

    types = app.pm.capture_source_types()
    reg = next((r for n, r in types.items() if app.pm.registered_by("cf_capture_sources", n) == "mobile_ons"), None)
    if reg is None:
        return None
    from argon2 import PasswordHasher

    config = {"name": MOBILE_SOURCE, "ari_url": sim.url, "ari_username": sim.username, "ari_password": Secret(sim.password),
              "dial_endpoint": "PJSIP/{number}@carrier", "caller_id": "+4930999000",
              "announcement": {"id": "mobile-consent", "version": "1", "media": "sound:callfort/consent-v1",
                               "sha256": hashlib.sha256(b"demo announcement v1").hexdigest()},
              "advisors": {"A103": {"mobile": DORA_MOBILE,
                                    "pin_hash": PasswordHasher(time_cost=2, memory_cost=19 * 1024,
                                                               parallelism=1).hash(pin)}},
              "optin_timeout": 10, "finish_timeout": 5}
    ctx = PluginContext(name="mobile_ons", config=config, clock=app.clock.now,
                        data_dir=app.data_dir / "plugins" / "mobile_ons-demo")
    try:
        return reg.create(app.plugin_options(reg, config, "plugins.mobile_ons"), ctx)[0]
    except Exception as exc:
        raise PluginError(f"mobile_ons cannot start: {exc}") from exc


async def run_demo(app: App, directory: Path, say: Callable[[str], None], *, pace: float = 1.0) -> dict[str, Any]:
    """Run the scenario; returns what was archived. ``pace`` scales every pause (tests: smaller)."""
    from ..capture import controller
    from ..capture.runner import CaptureRunner
    from ..db.models_capture import LiveCall
    from .ari import AriSim

    spool = (directory / "pbx-spool").resolve()
    sim = AsteriskSim(monitor_root=spool, clock=app.clock.now)
    await sim.start()
    source = pbx_source(app, sim, spool)
    ari = AriSim((directory / "ari-recordings").resolve(), playback_seconds=0.3 * pace)
    ari.answer_after = 0.3 * pace
    await ari.start()
    pin = "".join(secrets.choice("0123456789") for _ in range(6))
    mobile = mobile_source(app, ari, pin)
    runner = CaptureRunner(app, [source] + ([mobile] if mobile is not None else []), poll_interval=0.05)
    task = asyncio.create_task(runner.run())
    ctx = {name: await asyncio.to_thread(_user_ctx, app, name) for name, _, _ in USERS}
    notes: list[str] = []
    legs: list[str] = []

    async def pause(seconds: float) -> None:
        await asyncio.sleep(seconds * pace)

    def leg_state(cid: str) -> str | None:
        with app.catalog.session() as s:
            row = s.get(LiveCall, cid)
            return row.state if row is not None else None

    async def answered(call: SimCall) -> str:
        sim.answer(call)
        await sim.wait_recording(call)
        cid = f"{call.customer.linkedid}_{call.advisor.uniqueid}"
        legs.append(cid)
        # the PBX recording runs; the buttons work once the capture runner has the leg as answered
        # (on a loaded machine that can take a moment after the PBX's event)
        for _ in range(500):
            if await asyncio.to_thread(leg_state, cid) not in (None, "ringing"):
                break
            await asyncio.sleep(0.02)
        return cid

    async def control(who: str, cid: str, action: str) -> None:
        try:
            req = await asyncio.to_thread(controller.trigger, app, ctx[who], cid, action, "api", 10.0)
            say(f"  [{who}] {action.replace('_', '-')}: {req.mode} (PBX confirmed)")
        except AccessDenied:
            say(f"  [{who}] {action.replace('_', '-')} on a colleague's call: refused and audited / abgelehnt und protokolliert")
            notes.append(f"{who} was refused {action} on {cid}")

    async def anna() -> None:
        call = sim.inbound_call("+49301234567", "PJSIP/100")
        say("  [anna] inbound call from +49******67 ringing / eingehender Anruf")
        await pause(0.5)
        cid = await answered(call)
        say(f"  [anna] answered; call {cid} records the advisor only / nur Beraterin wird aufgezeichnet")
        await pause(2.0)
        await control("bert", cid, "record_both")
        await control("anna", cid, "record_both")
        await pause(1.5)
        await control("anna", cid, "pause")
        await pause(1.0)
        await control("anna", cid, "resume")
        await pause(1.0)
        sim.hangup(call)
        say("  [anna] customer hung up / Kunde hat aufgelegt")

    async def bert() -> None:
        await pause(0.3)
        call = sim.outbound_call("PJSIP/101", "+49405557777")
        say("  [bert] dials +49******77 / wählt")
        await pause(0.7)
        cid = await answered(call)
        say(f"  [bert] connected; call {cid}, no consent asked: advisor only")
        await pause(3.0)
        sim.hangup(call, by="advisor")
        say("  [bert] hung up / aufgelegt")

    async def carla() -> None:
        await pause(0.6)
        call = sim.inbound_call("+4989111222", "PJSIP/102")
        say("  [carla] inbound call ringing ...")
        await pause(1.2)
        sim.hangup(call)
        say("  [carla] caller gave up before answer: nothing recorded / vor Annahme aufgelegt: keine Aufnahme")
        second = sim.inbound_call("+4969333444", "PJSIP/102")
        await pause(0.4)
        cid = await answered(second)
        say(f"  [carla] second call {cid} answered")
        await pause(1.5)
        to_bert = sim.blind_transfer(second, "PJSIP/101")
        say("  [carla] transfers the customer to bert / verbindet weiter an bert")
        await pause(0.6)
        cid2 = await answered(to_bert)
        say(f"  [bert] took the transferred call: new leg {cid2}, advisor-only again")
        await pause(1.0)
        await control("bert", cid2, "record_both")
        await pause(1.5)
        sim.hangup(to_bert)
        say("  [bert] transferred call ended / weitergeleitetes Gespräch beendet")

    async def until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        for _ in range(int(timeout / 0.02)):
            if cond():
                return
            await asyncio.sleep(0.02)
        raise PluginError(f"demo: timed out waiting for {what}")

    def played(suffix: str) -> int:
        return sum(1 for _, m in ari.plays if m.endswith(suffix))

    async def dora_call(n: int, answer: str) -> None:
        adv = await ari.incoming(DORA_MOBILE)
        await until(lambda: played("enter-pin") >= n, "the PIN prompt")
        await ari.dtmf(adv, pin + "#")
        await until(lambda: played("enter-number") >= n, "the number prompt")
        number = "0301112223" if n == 1 else "0405556667"
        await ari.dtmf(adv, number + "#")
        await until(lambda: played("confirm-number") >= n, "the read-back")
        await ari.dtmf(adv, "1")
        say(f"  [dora] mobile dial-in: PIN ok, customer +49******{number[-2:]} keyed, read back, confirmed / "
            "PIN ok, Kundennummer bestätigt")
        await until(lambda: sum(1 for e in ari.events_sent if e["type"] == "PlaybackFinished"
                                and "announcement" in e["playback"]["id"]) >= n, "the announcement")
        cus = ari.customer_channel()
        assert cus is not None
        if answer == "1":
            await ari.dtmf(cus, "1")
            say("  [customer] heard announcement mobile-consent v1, pressed 1: recording both legs / "
                "Ansage gehört, 1 gedrückt: Aufnahme")
            await until(lambda: len([r for r in ari.live.values() if r.state == "recording"]) == 2, "the recording")
            await pause(2.0)
            await ari.hangup(cus)
            say("  [dora] call ended; consent proof stored encrypted with the recording")
        else:
            await ari.dtmf(cus, "2")
            say("  [customer] pressed 2 (declined): nothing recorded, call ended, FIS alert / abgelehnt: "
                "keine Aufnahme, Alarm")
            await until(lambda: adv not in ari.channels, "the end of the declined call")

    async def dora() -> None:
        if mobile is None:
            say("  [dora] mobile_ons is not installed: no mobile dial-in in this demo")
            return
        await until(lambda: mobile.client.connected.is_set(), "the dial-in's ARI connection")
        await pause(0.2)
        await dora_call(1, "1")
        await until(lambda: len(mobile.archived) == 1, "the mobile recording archived", 30)
        await dora_call(2, "2")

    try:
        await sim.wait_for(lambda: source.client.connected.is_set() and source.resyncs > 0, 10,
                           "the plugin logging in to the simulated PBX")
        say(f"simulated Asterisk on 127.0.0.1:{sim.port}; pbx_asterisk logged in (MD5) / angemeldet")
        if mobile is not None:
            say(f"simulated Asterisk ARI on 127.0.0.1:{ari.port}; mobile_ons Stasis app connected")
        await asyncio.gather(anna(), bert(), carla(), dora())

        def pending() -> list[str]:
            with app.catalog.session() as s:
                rows = s.scalars(select(LiveCall).where(LiveCall.call_id.in_(legs))).all()
                return [r.call_id for r in rows if r.state != CallState.ARCHIVED]

        def settled() -> bool:
            # archived, and the PBX files removed: the source removes them just after the archive
            # confirmed a leg, so stopping at "archived" could leave them for the next start
            return not pending() and not any(spool.glob("*.wav"))

        for _ in range(300):
            if await asyncio.to_thread(settled):
                break
            await asyncio.sleep(0.1)
        with app.catalog.session() as s:
            rows = s.scalars(select(LiveCall).where(LiveCall.call_id.in_(legs)).order_by(LiveCall.started_at)).all()
            archived = [{"call_id": r.call_id, "advisor_id": r.advisor_id, "recording_id": r.recording_id,
                         "state": r.state} for r in rows]
        for rid in (mobile.archived if mobile is not None else []):
            archived.append({"call_id": "mobile dial-in", "advisor_id": "A103", "recording_id": rid,
                             "state": "archived"})
    finally:
        await runner.stop()
        await asyncio.wait_for(task, 20)
        await sim.stop()
        await ari.stop()
    return {"legs": archived, "notes": notes}
