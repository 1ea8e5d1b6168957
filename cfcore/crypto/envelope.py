"""The encrypted media object: a header and independently authenticated AES-256-GCM segments.

Layout (all integers big-endian; see docs/archive.md)::

    header   magic "CFAE" | version u8 = 1 | algorithm u8 = 1 (AES-256-GCM) | header length u16 |
             segment size u32 | nonce prefix 8 bytes | len u8 + recording id | len u8 + channel
    segment  ciphertext (segment size bytes, the last one 0..segment size) | GCM tag 16 bytes

Segment ``i`` uses nonce ``prefix || u32(i)`` and additional data ``header || u32(i) || u8(last)``.
So the format version, recording id and channel (all in the header), the segment's position and
whether it is the last one are authenticated: a changed byte, a reordered, dropped, swapped or
truncated segment, or an object swapped between channels or recordings, fails to decrypt.

The data key is fresh per recording and shared by its channel objects; each object has its own
random nonce prefix, so no nonce repeats under one key.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from typing import Final

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError

MAGIC: Final = b"CFAE"
VERSION: Final = 1
ALG_AES256_GCM: Final = 1
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32
PREFIX_SIZE: Final = 8
DEFAULT_SEGMENT_SIZE: Final = 64 * 1024
MIN_SEGMENT_SIZE: Final = 16
MAX_SEGMENT_SIZE: Final = 16 * 1024 * 1024
#: Longest possible header: fixed part plus two length-prefixed strings of at most 255 bytes.
MAX_HEADER_SIZE: Final = 20 + 1 + 255 + 1 + 255
_FIXED = struct.Struct(">4sBBHI8s")  # magic, version, alg, header length, segment size, prefix
_SEG_AAD = struct.Struct(">IB")
_MAX_SEGMENTS = 2**32


def new_data_key() -> bytes:
    """A fresh 256-bit data key (one per recording)."""
    return AESGCM.generate_key(bit_length=256)


@attrs.frozen(kw_only=True)
class Header:
    recording_id: str
    channel: str
    segment_size: int = DEFAULT_SEGMENT_SIZE
    nonce_prefix: bytes = attrs.field(factory=lambda: os.urandom(PREFIX_SIZE))
    version: int = VERSION

    def to_bytes(self) -> bytes:
        rid, ch = self.recording_id.encode("ascii"), self.channel.encode("ascii")
        if not 1 <= len(rid) <= 255 or not 1 <= len(ch) <= 255:
            raise ValueError("recording id and channel must be 1..255 ASCII bytes")
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE}")
        if len(self.nonce_prefix) != PREFIX_SIZE:
            raise ValueError("nonce prefix must be 8 bytes")
        length = _FIXED.size + 2 + len(rid) + len(ch)
        return (_FIXED.pack(MAGIC, self.version, ALG_AES256_GCM, length, self.segment_size, self.nonce_prefix)
                + bytes([len(rid)]) + rid + bytes([len(ch)]) + ch)

    @classmethod
    def parse(cls, buf: bytes) -> Header:
        """Parse the header at the start of ``buf`` (which may hold more). IntegrityError when it
        is not a CallFort envelope."""
        if len(buf) < _FIXED.size + 2:
            raise IntegrityError("encrypted object is shorter than its header (truncated?)")
        magic, version, alg, length, seg, prefix = _FIXED.unpack_from(buf)
        if magic != MAGIC:
            raise IntegrityError("object is not a CallFort encrypted object (bad magic)")
        if version != VERSION or alg != ALG_AES256_GCM:
            raise IntegrityError(f"unsupported envelope version {version} / algorithm {alg}",
                                 hint="upgrade CallFort to read this object")
        if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE or length > len(buf) or length > MAX_HEADER_SIZE:
            raise IntegrityError("envelope header is corrupt (segment size or header length)")
        pos = _FIXED.size
        fields = []
        for _ in range(2):
            n = buf[pos]
            raw = bytes(buf[pos + 1:pos + 1 + n])
            if len(raw) != n or n == 0:
                raise IntegrityError("envelope header is corrupt (truncated field)")
            try:
                fields.append(raw.decode("ascii"))
            except UnicodeDecodeError:
                raise IntegrityError("envelope header is corrupt (non-ASCII field)") from None
            pos += 1 + n
        if pos != length:
            raise IntegrityError("envelope header is corrupt (length mismatch)")
        return cls(recording_id=fields[0], channel=fields[1], segment_size=seg, nonce_prefix=prefix,
                   version=version)

    @property
    def size(self) -> int:
        return _FIXED.size + 2 + len(self.recording_id) + len(self.channel)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(header_bytes: bytes, index: int, last: bool) -> bytes:
    return header_bytes + _SEG_AAD.pack(index, 1 if last else 0)


def ciphertext_size(plain_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE, header_size: int = 0) -> int:
    """Size of the segments (plus ``header_size``) for ``plain_size`` bytes of plaintext."""
    segments = max(1, -(-plain_size // segment_size))
    return header_size + plain_size + segments * TAG_SIZE


@attrs.frozen
class Layout:
    """Where the segments of an object of ``object_size`` bytes are."""

    header: Header
    header_bytes: bytes
    object_size: int

    @property
    def stride(self) -> int:
        return self.header.segment_size + TAG_SIZE

    @property
    def segments(self) -> int:
        body = self.object_size - len(self.header_bytes)
        n = -(-body // self.stride)
        last = body - (n - 1) * self.stride
        if body < TAG_SIZE or last < TAG_SIZE or n > _MAX_SEGMENTS:
            raise IntegrityError("encrypted object has an impossible size (truncated or padded)")
        return n

    @property
    def plain_size(self) -> int:
        return self.object_size - len(self.header_bytes) - self.segments * TAG_SIZE

    def segment_span(self, index: int) -> tuple[int, int]:
        """Byte range ``[start, end)`` of segment ``index`` in the object."""
        start = len(self.header_bytes) + index * self.stride
        return start, min(start + self.stride, self.object_size)


class SegmentWriter:
    """Encrypts a stream segment by segment: ``write`` plaintext, ``close`` at the end.

    Each finished segment goes to ``sink`` (bytes); the header goes first. The last segment is
    held back until ``close`` so that it can be marked as last. Use it for a spool that must never
    hold a whole call in memory.
    """

    def __init__(self, data_key: bytes, recording_id: str, channel: str, sink: Callable[[bytes], object], *,
                 segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        if len(data_key) != KEY_SIZE:
            raise ValueError("data key must be 32 bytes (AES-256)")
        self.header = Header(recording_id=recording_id, channel=channel, segment_size=segment_size)
        self._hb = self.header.to_bytes()
        self._aead = AESGCM(data_key)
        self._sink = sink
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        self.plain_size = 0
        sink(self._hb)

    def _emit(self, chunk: bytes, last: bool) -> None:
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("too many segments for one object")
        ct = self._aead.encrypt(_nonce(self.header.nonce_prefix, self._index), chunk,
                                _aad(self._hb, self._index, last))
        self._sink(ct)
        self._index += 1

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self.plain_size += len(data)
        self._buf += data
        seg = self.header.segment_size
        # keep at least one byte back: the final segment is only known at close()
        if len(self._buf) > seg:
            full = (len(self._buf) - 1) // seg
            mv = memoryview(self._buf)
            for i in range(full):
                self._emit(bytes(mv[i * seg:(i + 1) * seg]), False)
            mv.release()
            del self._buf[:full * seg]

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buf), True)
            self._buf.clear()
            self._closed = True


class StreamSealer:
    """Encrypts a stream into an object of exactly this format (the bytes ``encrypt`` makes for the
    same plaintext, header and nonce prefix), for ingest: ``feed`` and ``finish`` return the
    finished pieces (the header first), which the caller hashes and stores as they pass.

    Faster than ``SegmentWriter`` on long inputs: full segments are encrypted straight from the
    caller's buffer into a fresh output (``update_into``), and only one segment is held back (the
    last one must be marked as such, and only ``finish`` knows which it is).
    """

    def __init__(self, data_key: bytes, recording_id: str, channel: str, *,
                 segment_size: int = DEFAULT_SEGMENT_SIZE, nonce_prefix: bytes | None = None) -> None:
        if len(data_key) != KEY_SIZE:
            raise ValueError("data key must be 32 bytes (AES-256)")
        self.header = Header(recording_id=recording_id, channel=channel, segment_size=segment_size,
                             nonce_prefix=os.urandom(PREFIX_SIZE) if nonce_prefix is None else nonce_prefix)
        self._hb = self.header.to_bytes()
        self._alg = algorithms.AES(data_key)
        self._pending = bytearray()
        self._index = 0
        self._started = False
        self._closed = False

    def _seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> bytearray:
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("too many segments for one object")
        enc = Cipher(self._alg, modes.GCM(_nonce(self.header.nonce_prefix, self._index))).encryptor()
        enc.authenticate_additional_data(_aad(self._hb, self._index, last))
        n = len(chunk)
        out = bytearray(n + TAG_SIZE + 15)  # update_into wants room for a block more
        done = enc.update_into(chunk, out)
        enc.finalize()
        out[done:done + TAG_SIZE] = enc.tag
        del out[done + TAG_SIZE:]
        self._index += 1
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes | bytearray]:
        if self._closed:
            raise ValueError("sealer is closed")
        out: list[bytes | bytearray] = []
        if not self._started:
            out.append(self._hb)
            self._started = True
        mv = memoryview(data).cast("B")
        seg = self.header.segment_size
        if self._pending:
            take = min(seg - len(self._pending), len(mv))
            self._pending += mv[:take]
            mv = mv[take:]
            if not mv:
                return out  # a full pending segment may still be the last one
            out.append(self._seal(self._pending, False))
            self._pending.clear()
        while len(mv) > seg:
            out.append(self._seal(mv[:seg], False))
            mv = mv[seg:]
        self._pending += mv
        return out

    def finish(self) -> list[bytes | bytearray]:
        out = self.feed(b"")
        out.append(self._seal(self._pending, True))
        self._pending.clear()
        self._closed = True
        return out


def encrypt_iter(data_key: bytes, recording_id: str, channel: str, plaintext: bytes | memoryview, *,
                 segment_size: int = DEFAULT_SEGMENT_SIZE) -> Iterator[bytes]:
    """The encrypted object for ``plaintext`` as a sequence of chunks (header, then segments)."""
    if len(data_key) != KEY_SIZE:
        raise ValueError("data key must be 32 bytes (AES-256)")
    header = Header(recording_id=recording_id, channel=channel, segment_size=segment_size)
    hb = header.to_bytes()
    yield hb
    aead = AESGCM(data_key)
    mv = memoryview(plaintext)
    n = max(1, -(-len(mv) // segment_size))
    if n > _MAX_SEGMENTS:
        raise ValueError("plaintext too large for one object")
    for i in range(n):
        last = i == n - 1
        yield aead.encrypt(_nonce(header.nonce_prefix, i), mv[i * segment_size:(i + 1) * segment_size],
                           _aad(hb, i, last))


def encrypt(data_key: bytes, recording_id: str, channel: str, plaintext: bytes | memoryview, *,
            segment_size: int = DEFAULT_SEGMENT_SIZE) -> bytes:
    """The whole encrypted object for ``plaintext``."""
    return b"".join(encrypt_iter(data_key, recording_id, channel, plaintext, segment_size=segment_size))


def _check_identity(header: Header, recording_id: str, channel: str) -> None:
    if header.recording_id != recording_id or header.channel != channel:
        raise IntegrityError(f"encrypted object belongs to {header.recording_id}/{header.channel}, "
                             f"expected {recording_id}/{channel} (swapped object?)")


class Reader:
    """Random-access decryption of one object through ``fetch(start, end) -> bytes``.

    Every segment read is authenticated; any change raises ``IntegrityError``.
    """

    def __init__(self, data_key: bytes, recording_id: str, channel: str,
                 fetch: Callable[[int, int], bytes], object_size: int) -> None:
        self._aead = AESGCM(data_key)
        self._fetch = fetch
        head = fetch(0, min(object_size, MAX_HEADER_SIZE))
        header = Header.parse(head)
        _check_identity(header, recording_id, channel)
        self.layout = Layout(header, bytes(head[:header.size]), object_size)
        self._n = self.layout.segments

    @property
    def plain_size(self) -> int:
        return self.layout.plain_size

    def _open(self, index: int, ct: bytes | memoryview) -> bytes:
        last = index == self._n - 1
        try:
            return self._aead.decrypt(_nonce(self.layout.header.nonce_prefix, index), ct,
                                      _aad(self.layout.header_bytes, index, last))
        except InvalidTag:
            raise IntegrityError(f"segment {index} of {self.layout.header.recording_id}/"
                                 f"{self.layout.header.channel} failed authentication "
                                 "(changed, truncated or reordered)") from None

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Plaintext bytes ``[start, end)``, decrypting only the segments that hold them."""
        size = self.plain_size
        end = size if end is None else min(end, size)
        start = max(0, start)
        if start >= end:
            if size == 0:
                self._open(0, self._fetch(*self.layout.segment_span(0)))  # still authenticate
            return b""
        seg = self.layout.header.segment_size
        first, last = start // seg, (end - 1) // seg
        lo = self.layout.segment_span(first)[0]
        hi = self.layout.segment_span(last)[1]
        blob = memoryview(self._fetch(lo, hi))
        if len(blob) != hi - lo:
            raise IntegrityError("encrypted object is shorter than recorded (truncated)")
        stride = self.layout.stride
        parts = [self._open(i, blob[(i - first) * stride:(i - first + 1) * stride]) for i in range(first, last + 1)]
        out = b"".join(parts)
        off = first * seg
        return out[start - off:end - off]


def decrypt(data_key: bytes, recording_id: str, channel: str, blob: bytes) -> bytes:
    """Decrypt and authenticate a whole object (every segment, the last-segment mark included)."""
    mv = memoryview(blob)

    def fetch(a: int, b: int) -> bytes:
        return mv[a:b]  # type: ignore[return-value]

    return Reader(data_key, recording_id, channel, fetch, len(blob)).read()


def decrypt_range(data_key: bytes, recording_id: str, channel: str, fetch: Callable[[int, int], bytes],
                  object_size: int, start: int, end: int | None = None) -> bytes:
    """Plaintext bytes ``[start, end)`` of an object read through ``fetch`` (e.g. a store's ranged get)."""
    return Reader(data_key, recording_id, channel, fetch, object_size).read(start, end)


def recover_unterminated(data_key: bytes, recording_id: str, channel: str, blob: bytes) -> bytes:
    """The plaintext of every complete segment of an object whose writer crashed before ``close``
    (no segment is marked last). Stops at the first segment that does not authenticate as a
    non-last segment. Used to finalise a crashed spool as an ``incomplete`` recording."""
    header = Header.parse(blob)
    _check_identity(header, recording_id, channel)
    hb = bytes(blob[:header.size])
    aead = AESGCM(data_key)
    stride = header.segment_size + TAG_SIZE
    out = []
    pos, i = header.size, 0
    while pos + stride <= len(blob):
        try:
            out.append(aead.decrypt(_nonce(header.nonce_prefix, i), blob[pos:pos + stride], _aad(hb, i, False)))
        except InvalidTag:
            break
        pos += stride
        i += 1
    return b"".join(out)
