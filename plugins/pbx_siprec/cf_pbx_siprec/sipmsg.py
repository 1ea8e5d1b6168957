"""SIP messages (RFC 3261): parsing with limits, building responses, multipart bodies."""

from __future__ import annotations

import re

import attrs

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "l": "content-length", "c": "content-type",
           "k": "supported", "m": "contact", "s": "subject", "x": "session-expires", "e": "content-encoding",
           "o": "event", "r": "refer-to", "u": "allow-events"}
MAX_HEADERS = 200


class SipParseError(ValueError):
    """The bytes are not a SIP message we can handle; ``status`` is the response to send, if any."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@attrs.define
class SipMessage:
    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    method: str | None = None
    uri: str | None = None
    status: int | None = None

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        n = name.lower()
        for k, v in self.headers:
            if k == n:
                return v
        return default

    def all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k == n]

    def tokens(self, name: str) -> set[str]:
        return {t.strip().lower() for v in self.all(name) for t in v.split(",") if t.strip()}

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        raw = (self.get("cseq") or "").split()
        try:
            return int(raw[0]), raw[1].upper()
        except (IndexError, ValueError):
            raise SipParseError("bad CSeq") from None

    def tag(self, header: str) -> str | None:
        m = re.search(r";\s*tag=([^;>\s,]+)", self.get(header) or "", re.I)
        return m.group(1) if m else None

    @property
    def branch(self) -> str:
        m = re.search(r";\s*branch=([^;\s,]+)", self.get("via") or "", re.I)
        return m.group(1) if m else ""


def head_length(buf: bytes | bytearray) -> int:
    """Length of the start line and headers including the blank line, or -1 when incomplete."""
    i = buf.find(b"\r\n\r\n")
    return -1 if i < 0 else i + 4


def parse(data: bytes, max_body: int = 65536, stream: bool = False) -> SipMessage:
    """Parse one message. ``stream``: Content-Length is mandatory (TCP)."""
    hl = head_length(data)
    if hl < 0:
        # a UDP message may end its headers with a single CRLF pair only when it has no body
        if data.endswith(b"\r\n") and not stream:
            hl = len(data)
        else:
            raise SipParseError("no end of headers", 0)
    try:
        head = data[:hl].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8", 400) from None
    lines = head.split("\r\n")
    start = lines[0].strip()
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # folded continuation
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
            continue
        if ":" not in line:
            raise SipParseError(f"malformed header line {line[:40]!r}")
        k, v = line.split(":", 1)
        k = k.strip().lower()
        headers.append((COMPACT.get(k, k), v.strip()))
        if len(headers) > MAX_HEADERS:
            raise SipParseError("too many headers", 400)
    msg = SipMessage(start=start, headers=headers)
    parts = start.split(" ", 2)
    if start.startswith("SIP/2.0 "):
        try:
            msg.status = int(parts[1])
        except (IndexError, ValueError):
            raise SipParseError("bad status line", 0) from None
    elif len(parts) == 3 and parts[2] == "SIP/2.0" and re.fullmatch(r"[A-Z]+", parts[0]):
        msg.method, msg.uri = parts[0], parts[1]
    else:
        raise SipParseError("bad start line", 0)
    cl = msg.get("content-length")
    if cl is None:
        if stream:
            raise SipParseError("Content-Length missing on a stream transport", 400)
        length = len(data) - hl
    else:
        try:
            length = int(cl)
        except ValueError:
            raise SipParseError("bad Content-Length") from None
        if length < 0:
            raise SipParseError("bad Content-Length")
    if length > max_body:
        raise SipParseError(f"body of {length} bytes is larger than {max_body}", 413)
    if not stream and len(data) - hl < length:
        raise SipParseError("body shorter than Content-Length", 400)
    msg.body = bytes(data[hl:hl + length])
    for must in ("call-id", "cseq", "from", "to", "via"):
        if msg.get(must) is None:
            raise SipParseError(f"{must} missing", 400 if msg.get("via") else 0)
    return msg


def response(req: SipMessage, status: int, reason: str, *, to_tag: str | None = None,
             headers: list[tuple[str, str]] | None = None, body: bytes = b"", content_type: str | None = None
             ) -> bytes:
    out = [f"SIP/2.0 {status} {reason}"]
    for v in req.all("via"):
        out.append(f"Via: {v}")
    out.append(f"From: {req.get('from')}")
    to = req.get("to") or ""
    if to_tag and status > 100 and not re.search(r";\s*tag=", to, re.I):
        to += f";tag={to_tag}"
    out.append(f"To: {to}")
    out.append(f"Call-ID: {req.call_id}")
    out.append(f"CSeq: {req.get('cseq')}")
    for k, v in headers or []:
        out.append(f"{k}: {v}")
    out.append("Server: CallFort-SRS")
    if body:
        out.append(f"Content-Type: {content_type or 'application/sdp'}")
    out.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(out) + "\r\n\r\n").encode() + body


def content_type(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    parts = value.split(";")
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].strip().lower(), params


def body_parts(msg: SipMessage) -> dict[str, bytes]:
    """Body parts by content type (``application/sdp``, ``application/rs-metadata+xml``), any
    order, extra parts ignored; a single non-multipart body is one part."""
    ctype, params = content_type(msg.get("content-type"))
    if not msg.body:
        return {}
    if not ctype.startswith("multipart/"):
        return {ctype: msg.body}
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 200:
        raise SipParseError("multipart body without a boundary", 400)
    delim = b"--" + boundary.encode()
    out: dict[str, bytes] = {}
    chunks = msg.body.split(delim)
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        hl = head_length(chunk)
        if hl < 0:
            if chunk.startswith(b"\r\n"):
                hl = 2
            else:
                raise SipParseError("multipart part without headers", 400)
        ptype = "text/plain"
        for line in chunk[:hl].decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-type:"):
                ptype = content_type(line.split(":", 1)[1])[0]
        payload = chunk[hl:]
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        out.setdefault(ptype, payload)
    if not closed:
        raise SipParseError("multipart body is not terminated", 400)
    return out
