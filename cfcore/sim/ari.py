"""A simulated Asterisk REST Interface (ARI): REST over HTTP and the Stasis event WebSocket.

**A simulator for ``cf demo`` and the tests, not production code; not yet run against a real
Asterisk.** Written from Asterisk's ARI documentation (``rest-api/api-docs/channels.json``,
``bridges.json``, ``recordings.json``, ``events.json``): the resources, parameters, status codes
and event fields used by ``mobile_ons``. Where it differs from a real Asterisk, the real one is
right.

What it does:

- HTTP Basic auth on every request and on the WebSocket (401 otherwise);
- ``GET /ari/events?app=`` (WebSocket): ``StasisStart`` (``args``), ``StasisEnd``,
  ``ChannelStateChange``, ``ChannelDtmfReceived`` (``digit``, ``duration_ms``),
  ``ChannelHangupRequest``, ``ChannelDestroyed`` (``cause``, ``cause_txt``), ``PlaybackStarted``
  / ``PlaybackFinished``, ``RecordingStarted`` / ``RecordingFinished`` / ``RecordingFailed``;
  events of a moment without a connected WebSocket are lost, as with Asterisk;
- channels: ``GET /channels``, ``POST /channels`` (originate into the app; the callee answers,
  is busy or does not answer as the test says; ``StasisStart`` on answer), ``answer``, ``play``
  (``sound:`` and ``digits:`` media; ``playbackId``), ``snoop`` (``spy``, ``snoopId``, ``appArgs``),
  ``record`` (409 while the channel is bridged, ``ifExists``), ``DELETE`` (hang up);
- bridges: ``POST /bridges``, ``addChannel`` (400/404/422 as documented), ``DELETE``;
- recordings: ``POST /recordings/live/{name}/stop``, ``GET /recordings/stored/{name}/file``,
  ``DELETE /recordings/stored/{name}``. A recording of a snoop channel with ``spy=in`` holds the
  snooped channel's own voice: a tone per party (advisor 440 Hz, customer 660 Hz), as long as the
  recording ran (8 kHz mono PCM16 WAV).

Every request is logged in ``requests`` (method, path, query) so that tests can check what the
plugin sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import socket
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .asterisk import tone_table

RATE = 8000
TONES = {"advisor": 440, "customer": 660}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Chan:
    id: str
    name: str
    caller: str
    party: str  # advisor | customer | snoop
    state: str = "Down"
    app_args: list[str] = field(default_factory=list)
    in_stasis: bool = False
    bridge: str | None = None
    snoop_of: str | None = None
    spy: str = "none"
    created: datetime = field(default_factory=_now)
    gone: bool = False


@dataclass
class LiveRec:
    name: str
    channel: str
    party: str
    started: float
    state: str = "recording"


class AriSim:
    def __init__(self, storage: Path, *, username: str = "callfort", password: str | None = None,
                 clock: Callable[[], datetime] = _now, playback_seconds: float = 0.05) -> None:
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password or secrets.token_urlsafe(16)
        self.clock = clock
        self.playback_seconds = playback_seconds
        self.channels: dict[str, Chan] = {}
        self.bridges: dict[str, list[str]] = {}
        self.live: dict[str, LiveRec] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.events_sent: list[dict[str, Any]] = []
        self.plays: list[tuple[str, str]] = []
        #: number dialled → "answer" | "busy" | "noanswer" (default: answer)
        self.callee: dict[str, str] = {}
        self.answer_after = 0.05
        self.fail_recording = False
        self.refuse_ws = False
        self._ws: list[Any] = []
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self.port = 0

    # ------------------------------------------------------------------ server
    async def start(self) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route, WebSocketRoute

        app = Starlette(routes=[WebSocketRoute("/ari/events", self._ws_events),
                                Route("/ari/{path:path}", self._http, methods=["GET", "POST", "DELETE", "PUT"])])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(200):
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("ARI simulator did not start")

    async def stop(self) -> None:
        await self.drop_websockets()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _authorized(self, headers: Any) -> bool:
        auth = headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(pw, self.password)

    async def _ws_events(self, ws: Any) -> None:
        if not self._authorized(ws.headers) or self.refuse_ws or not ws.query_params.get("app"):
            await ws.close(code=1008)
            return
        await ws.accept()
        self._ws.append(ws)
        try:
            while True:
                await ws.receive_text()
        except Exception:  # noqa: S110 - the client went away
            pass
        finally:
            if ws in self._ws:
                self._ws.remove(ws)

    async def drop_websockets(self) -> None:
        """Cut every event connection (the plugin must reconnect and reconcile)."""
        for ws in list(self._ws):
            self._ws.remove(ws)
            with contextlib.suppress(Exception):
                await ws.close(code=1011)

    @property
    def ws_connected(self) -> int:
        return len(self._ws)

    async def emit(self, kind: str, **fields: Any) -> None:
        msg = {"type": kind, "application": "callfort-mobile", "timestamp": self.clock().isoformat(timespec="milliseconds"),
               "asterisk_id": "02:42:ac:11:00:02", **fields}
        self.events_sent.append(msg)
        for ws in list(self._ws):
            with contextlib.suppress(Exception):
                await ws.send_text(json.dumps(msg))

    def _json(self, c: Chan) -> dict[str, Any]:
        return {"id": c.id, "protocol_id": "", "name": c.name, "state": c.state,
                "caller": {"name": "", "number": c.caller}, "connected": {"name": "", "number": ""},
                "accountcode": "", "dialplan": {"context": "callfort-mobile", "exten": "s", "priority": 1,
                                                "app_name": "Stasis", "app_data": "callfort-mobile"},
                "creationtime": c.created.isoformat(timespec="milliseconds"), "language": "en"}

    # ------------------------------------------------------------------ test driver
    async def incoming(self, caller: str, endpoint: str = "PJSIP/mobile-gw") -> str:
        """An advisor's mobile calls the dial-in number; the dialplan sends it to Stasis."""
        self._seq += 1
        cid = f"{1796000000 + self._seq}.{self._seq}"
        c = Chan(id=cid, name=f"{endpoint}-{self._seq:08x}", caller=caller, party="advisor", state="Ring",
                 in_stasis=True)
        self.channels[cid] = c
        await self.emit("StasisStart", args=[], channel=self._json(c))
        return cid

    async def dtmf(self, cid: str, digits: str) -> None:
        for d in digits:
            c = self.channels.get(cid)
            if c is None or c.gone:
                return
            await self.emit("ChannelDtmfReceived", digit=d, duration_ms=100, channel=self._json(c))

    async def hangup(self, cid: str, cause: int = 16) -> None:
        c = self.channels.get(cid)
        if c is None or c.gone:
            return
        c.gone = True
        for snoop in [s for s in self.channels.values() if s.snoop_of == cid and not s.gone]:
            await self.hangup(snoop.id)
        for rec in [r for r in self.live.values() if r.channel == cid and r.state == "recording"]:
            await self._finish_recording(rec)
        await self.emit("ChannelHangupRequest", cause=cause, channel=self._json(c))
        if c.bridge and c.bridge in self.bridges:
            self.bridges[c.bridge].remove(cid)
            c.bridge = None
        if c.in_stasis:
            await self.emit("StasisEnd", channel=self._json(c))
        await self.emit("ChannelDestroyed", cause=cause, cause_txt="Normal Clearing", channel=self._json(c))
        del self.channels[cid]

    def customer_channel(self) -> str | None:
        return next((c.id for c in self.channels.values() if c.party == "customer" and not c.gone), None)

    # ------------------------------------------------------------------ HTTP
    async def _http(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response

        path = "/" + request.path_params["path"]
        query = dict(request.query_params)
        self.requests.append((request.method, path, query))
        if not self._authorized(request.headers):
            return JSONResponse({"message": "Authentication required"}, status_code=401)
        parts = [p for p in path.split("/") if p]
        try:
            result = await self._route(request.method, parts, query)
        except _Err as e:
            return JSONResponse({"message": e.message}, status_code=e.status)
        if result is None:
            return Response(status_code=204)
        if isinstance(result, bytes):
            return Response(result, media_type="audio/wav")
        return JSONResponse(result)

    async def _route(self, method: str, p: list[str], q: dict[str, str]) -> Any:
        if p == ["channels"] and method == "GET":
            return [self._json(c) for c in self.channels.values() if not c.gone]
        if p == ["channels"] and method == "POST":
            return await self._originate(q)
        if len(p) >= 2 and p[0] == "channels":
            c = self.channels.get(p[1])
            if c is None or c.gone:
                raise _Err(404, "Channel not found")
            if len(p) == 2 and method == "DELETE":
                if q.get("reason") and q["reason"] not in ("normal", "busy", "congestion", "no_answer", "timeout",
                                                            "rejected", "unallocated", "normal_unspecified",
                                                            "number_incomplete", "codec_mismatch", "interworking",
                                                            "failure", "answered_elsewhere"):
                    raise _Err(400, "Invalid reason for hangup provided")
                asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.hangup(c.id)))
                return None
            if len(p) == 2 and method == "GET":
                return self._json(c)
            action = p[2] if len(p) > 2 else ""
            if not c.in_stasis:
                raise _Err(409, "Channel not in a Stasis application")
            if action == "answer":
                if c.state != "Up":
                    c.state = "Up"
                    await self.emit("ChannelStateChange", channel=self._json(c))
                return None
            if action == "play":
                return await self._play(c, q)
            if action == "snoop":
                return await self._snoop(c, q)
            if action == "record":
                return await self._record(c, q)
            raise _Err(404, "Resource not found")
        if p == ["bridges"] and method == "POST":
            bid = q.get("bridgeId") or secrets.token_hex(8)
            if bid in self.bridges:
                raise _Err(409, "Bridge with the same bridgeId already exists")
            self.bridges[bid] = []
            return {"id": bid, "technology": "simple_bridge", "bridge_type": q.get("type", "mixing"),
                    "bridge_class": "stasis", "creator": "Stasis", "name": "", "channels": []}
        if len(p) >= 2 and p[0] == "bridges":
            if p[1] not in self.bridges:
                raise _Err(404, "Bridge not found")
            if len(p) == 2 and method == "DELETE":
                for cid in self.bridges.pop(p[1]):
                    if cid in self.channels:
                        self.channels[cid].bridge = None
                return None
            if len(p) == 3 and p[2] == "addChannel":
                ids = [x for x in (q.get("channel") or "").split(",") if x]
                if not ids or any(i not in self.channels for i in ids):
                    raise _Err(400, "Channel not found")
                if any(not self.channels[i].in_stasis for i in ids):
                    raise _Err(422, "Channel not in Stasis application")
                for i in ids:
                    self.channels[i].bridge = p[1]
                    self.bridges[p[1]].append(i)
                return None
        if len(p) == 4 and p[:2] == ["recordings", "live"] and p[3] == "stop" and method == "POST":
            rec = self.live.get(p[2])
            if rec is None or rec.state != "recording":
                raise _Err(404, "Recording not found")
            await self._finish_recording(rec)
            return None
        if len(p) >= 3 and p[:2] == ["recordings", "stored"]:
            name = p[2]
            f = self.storage / f"{name}.wav"
            if "/" in name or name.startswith(".") or not f.exists():
                raise _Err(404, "Recording not found")
            if len(p) == 4 and p[3] == "file" and method == "GET":
                return f.read_bytes()
            if len(p) == 3 and method == "DELETE":
                f.unlink()
                return None
            if len(p) == 3 and method == "GET":
                return {"name": name, "format": "wav"}
        raise _Err(404, "Resource not found")

    async def _originate(self, q: dict[str, str]) -> Any:
        endpoint = q.get("endpoint")
        if not endpoint or not q.get("app"):
            raise _Err(400, "Invalid parameters for originating a channel.")
        cid = q.get("channelId") or f"{1796100000 + len(self.channels)}.{len(self.channels)}"
        if cid in self.channels:
            raise _Err(409, "Channel with given unique ID already exists.")
        number = endpoint.split("/", 1)[-1].split("@", 1)[0]
        self._seq += 1
        c = Chan(id=cid, name=f"{endpoint.split('@')[0]}-{self._seq:08x}", caller=number, party="customer",
                 app_args=(q.get("appArgs") or "").split(",") if q.get("appArgs") else [])
        self.channels[cid] = c
        asyncio.get_running_loop().call_later(self.answer_after, lambda: asyncio.ensure_future(self._callee(c, number)))
        return self._json(c)

    async def _callee(self, c: Chan, number: str) -> None:
        if c.gone:
            return
        what = self.callee.get(number, "answer")
        if what == "answer":
            c.state, c.in_stasis = "Up", True
            await self.emit("ChannelStateChange", channel=self._json(c))
            await self.emit("StasisStart", args=c.app_args, channel=self._json(c))
        else:
            await self.hangup(c.id, cause=17 if what == "busy" else 19)

    async def _play(self, c: Chan, q: dict[str, str]) -> Any:
        media = q.get("media") or ""
        if not (media.startswith("sound:") or media.startswith("digits:")):
            raise _Err(400, "Invalid media")
        pid = q.get("playbackId") or secrets.token_hex(8)
        pb = {"id": pid, "media_uri": media, "target_uri": f"channel:{c.id}", "language": "en", "state": "playing"}
        self.plays.append((c.id, media))
        await self.emit("PlaybackStarted", playback=pb)

        async def done() -> None:
            await asyncio.sleep(self.playback_seconds)
            if c.id in self.channels and not c.gone:
                await self.emit("PlaybackFinished", playback={**pb, "state": "done"})

        asyncio.ensure_future(done())
        return pb

    async def _snoop(self, c: Chan, q: dict[str, str]) -> Any:
        if not q.get("app"):
            raise _Err(400, "Invalid parameters")
        spy = q.get("spy", "none")
        if spy not in ("none", "both", "out", "in"):
            raise _Err(400, "Invalid parameters")
        sid = q.get("snoopId") or secrets.token_hex(8)
        self._seq += 1
        s = Chan(id=sid, name=f"Snoop/{c.id}-{self._seq:08x}", caller="", party="snoop", state="Up",
                 app_args=(q.get("appArgs") or "").split(",") if q.get("appArgs") else [], in_stasis=True,
                 snoop_of=c.id, spy=spy)
        self.channels[sid] = s
        await self.emit("StasisStart", args=s.app_args, channel=self._json(s))
        return self._json(s)

    async def _record(self, c: Chan, q: dict[str, str]) -> Any:
        name, fmt = q.get("name") or "", q.get("format") or ""
        if not name or not fmt or "/" in name or name.startswith("."):
            raise _Err(400, "Invalid parameters")
        if fmt != "wav":
            raise _Err(422, "The format specified is unknown on this system")
        if c.bridge:
            raise _Err(409, "Channel is currently bridged with other channels")
        if name in self.live and self.live[name].state == "recording":
            raise _Err(409, "A recording with the same name is in progress")
        if (self.storage / f"{name}.wav").exists() and q.get("ifExists", "fail") == "fail":
            raise _Err(409, "A recording with the same name already exists on the system")
        target = self.channels.get(c.snoop_of or "") if c.snoop_of else c
        party = target.party if target is not None and c.spy == "in" else "mixed"
        rec = LiveRec(name=name, channel=c.id, party=party, started=asyncio.get_running_loop().time())
        self.live[name] = rec
        info = {"name": name, "format": "wav", "target_uri": f"channel:{c.id}", "state": "recording"}
        await self.emit("RecordingStarted", recording=info)
        if self.fail_recording:
            rec.state = "failed"
            await self.emit("RecordingFailed", recording={**info, "state": "failed", "cause": "simulated"})
        return {**info, "state": "queued"}

    async def _finish_recording(self, rec: LiveRec) -> None:
        if rec.state != "recording":
            return
        rec.state = "done"
        seconds = max(0.0, asyncio.get_running_loop().time() - rec.started)
        n = int(seconds * RATE)
        table = tone_table(TONES.get(rec.party, 300))
        pcm = (table * (n // RATE + 1))[: n * 2]
        with wave.open(str(self.storage / f"{rec.name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm)
        await self.emit("RecordingFinished", recording={"name": rec.name, "format": "wav",
                                                        "target_uri": f"channel:{rec.channel}", "state": "done",
                                                        "duration": int(seconds)})


class _Err(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message
