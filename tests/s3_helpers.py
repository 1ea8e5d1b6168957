"""Test helpers for S3: a moto server on loopback, locked buckets, and a fault-injecting proxy.

The fixtures (``moto_s3``, ``s3_bucket``, ``s3_env``, ``fault_proxy``) live in
``tests/conftest_s3.py``.

``FaultProxy`` sits between boto3 and moto and speaks just enough HTTP/1.1 to see request
boundaries. Each request is matched against queued rules; a rule's action is one of

- ``error``: answer ``500 InternalError`` without forwarding,
- ``stall``: swallow the request and never answer (the client's read timeout fires),
- ``stall_after_forward``: forward it, let the server act, but never relay the answer
  (a lost response: the server did the work, the client does not know),
- ``cut``: forward the head and half of the body, then drop both connections
  (a connection lost in the middle of an upload),
- ``refuse``: close the client connection at once, before reading the request,
- ``truncate``: forward it, but relay only the first half of the answer, then close
  (a response body cut short).

Everything else passes through unchanged (one request per connection).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from datetime import UTC, datetime
from typing import Any

import attrs
import boto3
from botocore.config import Config as BotoConfig

from cfcore.testing import free_tcp_port
from hookspecs import Secret

REGION = "us-east-1"
ACCESS_KEY = "AKIATESTCALLFORT0001"
SECRET_KEY = "s3cr3t-T3st-K3y-never-in-logs"


# --------------------------------------------------------------------------- moto


class MotoS3:
    """moto's S3 in server mode on 127.0.0.1, reached over real HTTP."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_tcp_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self, endpoint: str | None = None, **config: Any) -> Any:
        cfg = BotoConfig(s3={"addressing_style": "path"}, retries={"total_max_attempts": 2, "mode": "standard"},
                         **config)
        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, config=cfg)

    def make_bucket(self, *, lock: bool = True, versioning: bool = False) -> str:
        name = f"cf-{secrets.token_hex(6)}"
        c = self.client()
        if lock:
            c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            c.create_bucket(Bucket=name)
            if versioning:
                c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def versions(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every version and delete marker of ``key``: what is really in the bucket."""
        page = self.client().list_object_versions(Bucket=bucket, Prefix=key)
        return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]

    def pending_uploads(self, bucket: str) -> list[dict[str, Any]]:
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def store_options(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"bucket": bucket, "endpoint_url": endpoint, "region": REGION,
                            "access_key": Secret(ACCESS_KEY), "secret_key": Secret(SECRET_KEY), "retries": 2,
                            "connect_timeout": 2, "read_timeout": 10}
    opts.update(extra)
    return opts


def make_store(endpoint: str, bucket: str, *, name: str = "cloud", clock: Any = None, **extra: Any) -> Any:
    """Build an S3 store exactly as the core does from a ``[stores.<name>]`` section: the
    registration's options class built with ``hookspecs.parse_options``, then ``create``."""
    from cf_store_s3 import cf_media_stores

    from hookspecs import parse_options
    from hookspecs.types import PluginContext

    (stype,) = cf_media_stores()
    ctx = PluginContext(name=name, config={}, clock=clock or (lambda: datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
                        data_dir="/nonexistent")
    return stype.create(parse_options(stype.options, store_options(endpoint, bucket, **extra), where=f"stores.{name}"),
                        ctx)


def s3_toml(name: str, endpoint: str, bucket: str, **extra: Any) -> str:
    """A ``[stores.<name>]`` section for a deployment (credentials from the environment)."""
    lines = [f"[stores.{name}]", 'type = "s3"', f'bucket = "{bucket}"', f'endpoint_url = "{endpoint}"',
             f'region = "{REGION}"', 'access_key = { env = "CF_TEST_S3_ACCESS" }',
             'secret_key = { env = "CF_TEST_S3_SECRET" }', "retries = 1", "connect_timeout = 2", "read_timeout = 5"]
    for k, v in extra.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


S3_ENV = {"CF_TEST_S3_ACCESS": ACCESS_KEY, "CF_TEST_S3_SECRET": SECRET_KEY}


# --------------------------------------------------------------------------- fault proxy


@attrs.define
class Rule:
    action: str
    method: str | None = None
    query: str | None = None
    times: int = 1


@attrs.frozen
class Seen:
    method: str
    target: str
    action: str


class _Closed(Exception):
    pass


def _recv_until(sock: socket.socket, buf: bytearray, marker: bytes) -> int:
    while (i := buf.find(marker)) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed
        buf += chunk
    return i


def _recv_exact(sock: socket.socket, buf: bytearray, n: int) -> None:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _Closed
        buf += chunk


class FaultProxy:
    """A TCP proxy to ``upstream`` that injects faults per HTTP request (see module doc)."""

    ACTIONS = ("pass", "error", "stall", "stall_after_forward", "cut", "refuse", "truncate")

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, action: str, *, method: str | None = None, query: str | None = None, times: int = 1) -> None:
        """Queue a fault for the next ``times`` requests matching ``method`` and a substring
        ``query`` of the request target (e.g. ``"partNumber=2"``, ``"uploadId"``)."""
        if action not in self.ACTIONS:
            raise ValueError(action)
        with self._lock:
            self.rules.append(Rule(action=action, method=method, query=query, times=times))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def injected(self, action: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.action != "pass" and (action is None or s.action == action)]

    def _choose(self, method: str, target: str) -> str:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and (rule.method in (None, method)) and (rule.query is None or rule.query in target):
                    rule.times -= 1
                    return rule.action
        return "pass"

    # -------------------------------------------------------------- running
    def start(self) -> FaultProxy:
        t = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        for t in self._threads:
            t.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, client: socket.socket) -> None:
        try:
            self._handle(client)
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
            with contextlib.suppress(OSError):
                client.close()

    def _handle(self, client: socket.socket) -> None:
        buf = bytearray()
        end = _recv_until(client, buf, b"\r\n\r\n")
        head = bytes(buf[:end]).decode("latin-1")
        rest = bytearray(buf[end + 4:])
        request_line, *header_lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        action = self._choose(method, target)
        with self._lock:
            self.seen.append(Seen(method=method, target=target, action=action))
        if action == "refuse":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        headers = []
        length: int | None = None
        chunked = expect = False
        for line in header_lines:
            name, _, value = line.partition(":")
            low = name.strip().lower()
            if low == "content-length":
                length = int(value.strip())
            elif low == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif low == "expect":
                expect = True
                continue
            elif low == "connection":
                continue
            headers.append(line)
        headers.append("Connection: close")
        if expect:
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body(client, rest, length, chunked)
        raw = (request_line + "\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body
        if action == "error":
            payload = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>"
                       b"<Message>injected fault</Message></Error>")
            client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
                           b"Content-Length: " + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n" + payload)
            return
        if action == "stall":
            self._hold(client)
            return
        upstream = socket.create_connection(self.upstream, timeout=30)
        try:
            if action == "cut":
                head_len = len(raw) - len(body)
                upstream.sendall(raw[: head_len + len(body) // 2])
                for s in (upstream, client):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            upstream.sendall(raw)
            answer = bytearray()
            while chunk := upstream.recv(65536):
                answer += chunk
        finally:
            upstream.close()
        if action == "stall_after_forward":
            self._hold(client)
            return
        if action == "truncate":
            client.sendall(answer[: len(answer) - (len(answer) - answer.find(b"\r\n\r\n")) // 2])
            return
        client.sendall(answer)

    @staticmethod
    def _read_body(client: socket.socket, rest: bytearray, length: int | None, chunked: bool) -> bytes:
        if chunked:
            pos = 0
            while True:
                while (i := rest.find(b"\r\n", pos)) < 0:
                    _recv_exact(client, rest, len(rest) + 1)
                size = int(bytes(rest[pos:i]).split(b";")[0], 16)
                if size == 0:  # last chunk, then trailers up to an empty line
                    while (j := rest.find(b"\r\n\r\n", i)) < 0:
                        _recv_exact(client, rest, len(rest) + 1)
                    return bytes(rest[:j + 4])
                pos = i + 2 + size + 2
                _recv_exact(client, rest, pos)
        if length:
            _recv_exact(client, rest, length)
            return bytes(rest[:length])
        return b""

    def _hold(self, client: socket.socket) -> None:
        """Never answer: wait until the client gives up (closes) or the proxy stops."""
        client.settimeout(0.2)
        while not self._stop.is_set():
            try:
                if not client.recv(65536):
                    return
            except TimeoutError:
                continue
