"""An asyncio client for the Asterisk Manager Interface (AMI), Asterisk 18 to 22.

The protocol, as Asterisk's documentation gives it: after the TCP (or TLS) connection the server
sends one banner line (``Asterisk Call Manager/11.0.0``); then both sides exchange messages of
``Key: Value`` lines separated by CRLF, each message ended by an empty line. The client sends
``Action:`` messages carrying an ``ActionID``; the server answers each with a ``Response:``
message carrying the same ``ActionID`` and sends ``Event:`` messages whenever something happens.
Actions that return lists (``CoreShowChannels``) answer ``Response: Success`` with
``EventList: start``, then events carrying the ``ActionID``, then a ``...Complete`` event with
``EventList: Complete``.

Robustness: unknown events are handed on (the caller ignores what it does not know); malformed
messages and messages over ``max_message`` bytes are logged (length only, never content) and
skipped; a connection that stops answering ``Ping`` is dropped and re-established with back-off.
Secrets (``Secret``, ``Key``) and caller numbers are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: The largest message we accept; Asterisk's own events are a few hundred bytes.
DEFAULT_MAX_MESSAGE = 64 * 1024

_TERMINATOR = re.compile(rb"\r?\n\r?\n")
_BANNER_PREFIX = "Asterisk Call Manager/"


class AmiError(Exception):
    """The server answered ``Response: Error`` (``message`` is its ``Message`` header)."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI action {action} failed: {message}")
        self.action = action
        self.message = message


class AmiAuthError(AmiError):
    """Login was refused: wrong username or secret, or the user may not log in from here."""


class AmiPermissionError(AmiError):
    """The AMI user lacks a write class CallFort needs (``system`` for MixMonitor)."""


#: What CallFort sends and the write classes Asterisk accepts for it (any one of them).
NEEDED_PERMISSIONS = {"MixMonitor": "system", "CoreShowChannels": "system or reporting"}


async def check_permissions(conn: AmiConnection) -> None:
    """Probe, harmlessly, that the user may send what recording needs: ``MixMonitor`` on a
    channel that cannot exist (Asterisk checks the write class first and answers ``Permission
    denied``; a permitted user gets ``No such channel`` and nothing happens) and
    ``CoreShowChannels`` (read-only)."""
    import secrets as _secrets

    probe = f"CallFort/permission-probe-{_secrets.token_hex(4)}"
    for action, fields in (("MixMonitor", {"Channel": probe, "Options": ""}), ("CoreShowChannels", {})):
        try:
            if action == "CoreShowChannels":
                await conn.send_list(action, fields)
            else:
                await conn.send(action, fields)
        except AmiError as exc:
            text = exc.message.lower()
            if "permission denied" in text:
                raise AmiPermissionError(action, f"the AMI user may not send {action} (needs write = "
                                                 f"{NEEDED_PERMISSIONS[action]} in manager.conf)") from None
            if "invalid/unknown command" in text:
                raise AmiPermissionError(action, f"Asterisk does not know the action {action} "
                                                 "(is app_mixmonitor loaded?)") from None
            # "No such channel" and the like: the action is permitted.


class AmiProtocolError(Exception):
    """The peer does not speak AMI (wrong banner) or broke the framing beyond repair."""


class AmiNotConnected(ConnectionError):
    """An action was sent while there is no logged-in connection."""


class AmiMessage:
    """One AMI message: ordered ``Key: Value`` pairs; lookups ignore the case of keys."""

    __slots__ = ("_index", "headers")

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self.headers: list[tuple[str, str]] = list(headers)
        self._index: dict[str, str] | None = None  # built on the first lookup

    def _idx(self) -> dict[str, str]:
        if self._index is None:
            # Reversed, so that the first of repeated keys wins.
            self._index = {k.lower(): v for k, v in reversed(self.headers)}
        return self._index

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._idx().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return self._idx()[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._idx()

    def _first(self, key: str) -> str | None:
        # Asterisk puts Event/Response first: answer without building the index.
        if self.headers and self.headers[0][0] == key:
            return self.headers[0][1]
        return self.get(key)

    @property
    def event(self) -> str | None:
        return self._first("Event")

    @property
    def response(self) -> str | None:
        return self._first("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def keys(self) -> list[str]:
        """Header names only: safe to log (values may hold caller numbers)."""
        return [k for k, _ in self.headers]

    def __repr__(self) -> str:
        kind = f"Event={self.event}" if self.event else f"Response={self.response}"
        return f"AmiMessage({kind}, keys={len(self.headers)})"


def encode_action(action: str, fields: Mapping[str, Any], action_id: str) -> bytes:
    """Frame an action. Values with CR or LF are refused: they would inject headers."""
    lines = [("Action", action), ("ActionID", action_id)]
    lines += [(k, "" if v is None else str(v)) for k, v in fields.items()]
    out = []
    for key, value in lines:
        if any(c in key for c in "\r\n:") or any(c in value for c in "\r\n"):
            raise ValueError(f"AMI field {key!r} holds a line break or colon")
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def md5_key(challenge: str, secret: str) -> str:
    """The ``Key`` of an MD5 login: hex MD5 over the challenge followed by the secret."""
    return hashlib.md5((challenge + secret).encode("utf-8"), usedforsecurity=False).hexdigest()


class FrameParser:
    """Splits the byte stream into messages. Never raises on bad input.

    ``malformed`` counts messages without a single valid ``Key: Value`` line or without an
    ``Event``/``Response`` header; ``oversized`` counts messages over ``max_message`` bytes.
    """

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._discarding = False
        self.malformed = 0
        self.oversized = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buf += data
        out: list[AmiMessage] = []
        pos = 0
        buf = self._buf
        while True:
            m = _TERMINATOR.search(buf, pos)
            if m is None:
                break
            start, pos = pos, m.end()
            if self._discarding:
                self._discarding = False  # the rest of the oversized message ends here
                continue
            size = m.start() - start
            if size > self.max_message:
                self.oversized += 1
                log.warning("AMI message of %d bytes skipped (limit %d)", size, self.max_message)
                continue
            raw = bytes(buf[start:m.start()])
            if not raw.strip():
                continue  # stray empty lines between messages
            msg = self._parse(raw)
            if msg is not None:
                out.append(msg)
        del buf[:pos]  # once per read, not once per message
        if len(buf) > self.max_message:
            if not self._discarding:
                self.oversized += 1
                log.warning("AMI message over %d bytes skipped", self.max_message)
            self._discarding = True
            # Keep the tail: a terminator may straddle two reads.
            del buf[:-3]
        return out

    def _parse(self, raw: bytes) -> AmiMessage | None:
        text = raw.decode("utf-8", errors="replace")
        headers: list[tuple[str, str]] = []
        bad_lines = 0
        for line in text.split("\n"):
            i = line.find(":")
            key = line[:i]
            if i <= 0 or " " in key or "\t" in key:
                key = key.strip()
                if i <= 0 or not key or " " in key or "\t" in key:
                    bad_lines += bool(line.strip())
                    continue
            headers.append((key, line[i + 1:].strip()))
        msg = AmiMessage(headers)
        if not headers or not (msg.event or msg.response):
            self.malformed += 1
            log.warning("malformed AMI message skipped (%d bytes, %d lines without a header)",
                        len(raw), bad_lines)
            return None
        if bad_lines:
            log.debug("AMI %r: %d lines without a header ignored", msg, bad_lines)
        return msg


EventHandler = Callable[[AmiMessage], None]


class AmiConnection:
    """One logged-in AMI session. Use ``AmiClient`` for reconnects and keep-alive."""

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 on_event: EventHandler, max_message: int = DEFAULT_MAX_MESSAGE,
                 action_timeout: float = 10.0) -> None:
        self.reader = reader
        self.writer = writer
        self.on_event = on_event
        self.parser = FrameParser(max_message)
        self.action_timeout = action_timeout
        self.banner = ""
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._lists: dict[str, list[AmiMessage]] = {}
        self._list_done: dict[str, asyncio.Future[list[AmiMessage]]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                   server_hostname: str | None = None, connect_timeout: float = 10.0,
                   **kwargs: Any) -> AmiConnection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context,
                                    server_hostname=(server_hostname or host) if ssl_context else None,
                                    limit=kwargs.get("max_message", DEFAULT_MAX_MESSAGE) * 2),
            connect_timeout)
        conn = cls(reader, writer, **kwargs)
        try:
            line = await asyncio.wait_for(reader.readline(), connect_timeout)
        except (TimeoutError, ValueError) as exc:
            writer.close()
            raise AmiProtocolError("no AMI banner from the server") from exc
        banner = line.decode("utf-8", errors="replace").strip()
        if not banner.startswith(_BANNER_PREFIX):
            writer.close()
            raise AmiProtocolError(f"not an Asterisk manager interface (banner {banner[:40]!r})")
        conn.banner = banner
        conn._reader_task = asyncio.create_task(conn._read_loop(), name="ami-reader")
        return conn

    # ------------------------------------------------------------------ reading
    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for msg in self.parser.feed(data):
                    self._dispatch(msg)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("AMI connection lost: %s", type(exc).__name__)
        finally:
            self._fail_pending(AmiNotConnected("AMI connection closed"))
            self.closed.set()

    def _dispatch(self, msg: AmiMessage) -> None:
        aid = msg.action_id
        if aid is not None and aid in self._lists and msg.event:
            if (msg.get("EventList") or "").lower() == "complete":
                done = self._list_done.pop(aid, None)
                items = self._lists.pop(aid, [])
                if done is not None and not done.done():
                    done.set_result(items)
            else:
                self._lists[aid].append(msg)
            return
        if msg.response is not None and aid is not None and aid in self._pending:
            fut = self._pending.pop(aid)
            if not fut.done():
                fut.set_result(msg)
            return
        if msg.event:
            try:
                self.on_event(msg)
            except Exception:  # a bug in a handler must not stop the reader
                log.exception("AMI event handler failed on %r", msg)
        # A response nobody waits for (timed out before) is dropped.

    def _fail_pending(self, exc: Exception) -> None:
        for fut in list(self._pending.values()) + list(self._list_done.values()):
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        self._list_done.clear()
        self._lists.clear()

    # ------------------------------------------------------------------ writing
    async def send(self, action: str, fields: Mapping[str, Any] | None = None, *,
                   timeout: float | None = None, expect_list: bool = False) -> AmiMessage:
        """Send an action and wait for its response; ``AmiError`` on ``Response: Error``."""
        msg, _ = await self._send(action, fields or {}, timeout=timeout, expect_list=expect_list)
        return msg

    async def send_list(self, action: str, fields: Mapping[str, Any] | None = None, *,
                        timeout: float | None = None) -> tuple[AmiMessage, list[AmiMessage]]:
        """Send a list action; returns the response and the events of the list."""
        return await self._send(action, fields or {}, timeout=timeout, expect_list=True)

    async def _send(self, action: str, fields: Mapping[str, Any], *, timeout: float | None,
                    expect_list: bool) -> tuple[AmiMessage, list[AmiMessage]]:
        if self.closed.is_set():
            raise AmiNotConnected("AMI connection closed")
        aid = f"cf-{next(self._ids)}"
        data = encode_action(action, fields, aid)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[AmiMessage] = loop.create_future()
        self._pending[aid] = fut
        list_fut: asyncio.Future[list[AmiMessage]] | None = None
        if expect_list:
            list_fut = loop.create_future()
            self._lists[aid] = []
            self._list_done[aid] = list_fut
        try:
            async with self._write_lock:
                self.writer.write(data)
                await self.writer.drain()
            resp = await asyncio.wait_for(fut, timeout or self.action_timeout)
            if (resp.response or "").lower() == "error":
                raise AmiError(action, resp.get("Message") or "error")
            items: list[AmiMessage] = []
            if list_fut is not None:
                if (resp.get("EventList") or "").lower() == "start":
                    items = await asyncio.wait_for(list_fut, timeout or self.action_timeout)
                else:
                    self._lists.pop(aid, None)
                    self._list_done.pop(aid, None)
            return resp, items
        except (ConnectionError, OSError) as exc:
            raise AmiNotConnected(f"AMI connection lost during {action}") from exc
        finally:
            self._pending.pop(aid, None)
            self._lists.pop(aid, None)
            self._list_done.pop(aid, None)
            for f in (fut, list_fut):
                _settle(f)

    async def login(self, username: str, secret: str, *, md5: bool = False) -> None:
        """Log in with the plain secret or an MD5 challenge; ``AmiAuthError`` when refused."""
        try:
            if md5:
                ch = await self.send("Challenge", {"AuthType": "MD5"})
                challenge = ch.get("Challenge")
                if not challenge:
                    raise AmiProtocolError("Challenge response without a challenge")
                await self.send("Login", {"Username": username, "AuthType": "MD5",
                                          "Key": md5_key(challenge, secret), "Events": "on"})
            else:
                await self.send("Login", {"Username": username, "Secret": secret, "Events": "on"})
        except AmiError as exc:
            raise AmiAuthError("Login", exc.message) from None

    async def close(self) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("Logoff", timeout=1.0), 1.5)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        self.closed.set()

    def abort(self) -> None:
        """Drop the connection at once (a keep-alive failed)."""
        transport = self.writer.transport
        if transport is not None:
            transport.abort()


class AmiClient:
    """Keeps one AMI session alive: connect, log in, ping, reconnect with back-off.

    Events and connection changes go to ``on_event`` in order: AMI messages, and the strings
    ``"connected"`` / ``"disconnected"`` so that the consumer can resynchronise in sequence.
    """

    def __init__(self, *, host: str, port: int, username: str, secret: str, md5: bool = False,
                 ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 connect_timeout: float = 10.0, action_timeout: float = 10.0,
                 ping_interval: float = 20.0, max_message: int = DEFAULT_MAX_MESSAGE,
                 backoff_min: float = 0.5, backoff_max: float = 30.0,
                 on_event: Callable[[AmiMessage | str], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.host, self.port = host, port
        self.username = username
        self._secret = secret
        self.md5 = md5
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.max_message = max_message
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.on_event = on_event or (lambda m: None)
        self._sleep = sleep
        self.conn: AmiConnection | None = None
        self.connected = asyncio.Event()
        self.last_error: str | None = None
        self.connects = 0
        self.auth_failures = 0
        #: set while the user lacks a permission recording needs (the client does not report itself
        #: connected then; it logs in again every ``backoff_max`` so that a fix is picked up)
        self.permission_error: str | None = None
        self._stopping = False

    def __repr__(self) -> str:  # never the secret
        return f"AmiClient({self.username}@{self.host}:{self.port}, tls={self.ssl_context is not None})"

    @property
    def malformed(self) -> int:
        return self.conn.parser.malformed if self.conn else 0

    async def run(self) -> None:
        """Connect and stay connected until ``stop()``."""
        delay = self.backoff_min
        while not self._stopping:
            try:
                conn = await AmiConnection.open(
                    self.host, self.port, ssl_context=self.ssl_context,
                    server_hostname=self.server_hostname, connect_timeout=self.connect_timeout,
                    on_event=self.on_event, max_message=self.max_message,
                    action_timeout=self.action_timeout)
            except (OSError, TimeoutError, AmiProtocolError, ssl.SSLError) as exc:
                self.last_error = f"cannot connect to {self.host}:{self.port}: {_describe(exc)}"
                log.warning("AMI %s; retrying in %.1fs", self.last_error, delay)
                await self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            try:
                await conn.login(self.username, self._secret, md5=self.md5)
            except AmiAuthError as exc:
                self.auth_failures += 1
                self.last_error = f"login refused for user {self.username!r}: {exc.message} (check username and secret)"
                log.error("AMI %s", self.last_error)
                await conn.close()
                # Hammering a PBX with wrong credentials locks accounts: wait the longest.
                await self._sleep(self.backoff_max)
                continue
            except (AmiNotConnected, AmiProtocolError, TimeoutError, OSError) as exc:
                self.last_error = f"login failed: {_describe(exc)}"
                log.warning("AMI %s; retrying in %.1fs", self.last_error, delay)
                await conn.close()
                await self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            try:
                await check_permissions(conn)
            except AmiPermissionError as exc:
                text = f"user {self.username!r} on {self.host}:{self.port}: {exc.message}; nothing is recorded"
                if self.permission_error != text:
                    log.error("AMI %s", text)  # once, not at every retry
                self.permission_error = self.last_error = text
                await conn.close()
                await self._sleep(self.backoff_max)
                continue
            except (AmiNotConnected, AmiError, TimeoutError, OSError) as exc:
                self.last_error = f"permission check failed: {_describe(exc)}"
                log.warning("AMI %s; retrying in %.1fs", self.last_error, delay)
                await conn.close()
                await self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.conn = conn
            self.connects += 1
            self.last_error = self.permission_error = None
            delay = self.backoff_min
            log.info("AMI connected to %s:%s (%s)", self.host, self.port, conn.banner)
            self.connected.set()
            self.on_event("connected")
            try:
                await self._keepalive(conn)
            finally:
                self.connected.clear()
                self.conn = None
                self.on_event("disconnected")
                await conn.close()
            if not self._stopping:
                log.warning("AMI connection to %s:%s lost; reconnecting", self.host, self.port)
                await self._sleep(delay)

    async def _keepalive(self, conn: AmiConnection) -> None:
        while not self._stopping:
            closed = asyncio.create_task(conn.closed.wait())
            try:
                done, _ = await asyncio.wait({closed}, timeout=self.ping_interval)
            finally:
                closed.cancel()
            if done or conn.closed.is_set():
                return
            try:
                await conn.send("Ping", timeout=min(self.action_timeout, self.ping_interval))
            except (TimeoutError, AmiNotConnected, AmiError):
                log.warning("AMI keep-alive failed; dropping the connection")
                conn.abort()
                return

    async def action(self, name: str, fields: Mapping[str, Any] | None = None, *,
                     timeout: float | None = None) -> AmiMessage:
        conn = self.conn
        if conn is None or conn.closed.is_set():
            raise AmiNotConnected("not connected to the Asterisk manager interface")
        return await conn.send(name, fields, timeout=timeout)

    async def action_list(self, name: str, fields: Mapping[str, Any] | None = None, *,
                          timeout: float | None = None) -> tuple[AmiMessage, list[AmiMessage]]:
        conn = self.conn
        if conn is None or conn.closed.is_set():
            raise AmiNotConnected("not connected to the Asterisk manager interface")
        return await conn.send_list(name, fields, timeout=timeout)

    async def stop(self) -> None:
        self._stopping = True
        if self.conn is not None:
            await self.conn.close()

    def drop(self) -> None:
        """Abort the current connection (tests, and the keep-alive)."""
        if self.conn is not None:
            self.conn.abort()


def _settle(fut: asyncio.Future[Any] | None) -> None:
    """Cancel a future nobody waits for any more, or mark its exception as seen (the connection
    can fail it while the write that preceded the wait is failing too)."""
    if fut is None:
        return
    if not fut.done():
        fut.cancel()
    elif not fut.cancelled():
        fut.exception()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def mask_number(number: str | None) -> str:
    """A caller number fit for logs: ``+4930123456`` → ``+49******56``."""
    if not number:
        return "-"
    n = str(number)
    if len(n) <= 4:
        return "*" * len(n)
    return n[:3] + "*" * (len(n) - 5) + n[-2:]
