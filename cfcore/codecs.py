"""Storage codecs of the audio payload inside the encrypted media objects.

``pcm`` (default): raw PCM16 little-endian mono, as before. ``flac``: lossless, an export is
bit-exact to the PCM ingest. ``opus``: lossy Ogg/Opus at speech quality (a few kbit/s) for classes
that need no fidelity. FLAC and Opus go through libsndfile (the ``soundfile`` wheel bundles it).

The envelope (``cfcore.crypto.envelope``) is the same for every codec: it encrypts the payload
bytes; the catalog's media row names the codec (``pcm_s16le``, ``flac``, ``opus``), and
``plain_size`` / ``plain_sha256`` are those of the payload (the encoded bytes). Reads decode
transparently: ``pcm_access`` gives every codec the PCM16 byte view the read paths use.

Encoding streams: ``Encoder.feed`` takes int16 blocks and returns the payload bytes produced so
far, so an ingest never holds a whole call. libFLAC rewrites its STREAMINFO at the end (total
samples, MD5, frame sizes); the total is known before encoding, so the header is written with
it up front and the late rewrite (MD5 and frame sizes, both optional) is dropped: the payload
can be encrypted and stored as it is produced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from .errors import ConfigError, IntegrityError

#: config name -> catalog name
CODECS = {"pcm": "pcm_s16le", "flac": "flac", "opus": "opus"}
PCM = "pcm_s16le"
#: Opus: libsndfile's compression level 1.0 is its lowest bit rate (about 6 kbit/s per channel at
#: 8 kHz: 5-6 MB per stereo call-hour); speech stays intelligible.
OPUS_LEVEL = 1.0
#: FLAC: libsndfile's level 0..1 maps to libFLAC 0..8; the low levels are several times faster
#: for a few per cent more bytes on telephone audio.
FLAC_LEVEL = 0.0
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def catalog_codec(name: str) -> str:
    """The catalog name of a configured codec; ConfigError naming the choices otherwise."""
    if name not in CODECS:
        raise ConfigError(f"archive codec '{name}' is not available", hint="choose one of: " + ", ".join(CODECS))
    if name != "pcm":
        _soundfile()
    return CODECS[name]


def _soundfile() -> Any:
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # the wheel bundles libsndfile; a broken install says so
        raise ConfigError(f"FLAC/Opus storage needs the soundfile package with libsndfile ({exc})",
                          hint="pip install soundfile, or use codec = \"pcm\"") from None
    return soundfile


# ---------------------------------------------------------------------- encoding


class Encoder(Protocol):
    def feed(self, block: Any) -> bytes | memoryview:
        """Payload bytes for an int16 block (may be empty: the codec buffers)."""

    def finish(self) -> bytes:
        """The rest of the payload."""


class PcmEncoder:
    """Identity: the payload is the PCM16 little-endian samples."""

    def feed(self, block: Any) -> memoryview:
        return memoryview(block).cast("B")

    def finish(self) -> bytes:
        return b""


class _Sink:
    """A write-only file for libsndfile that hands on what it gets. The first ``hold`` bytes (the
    FLAC STREAMINFO) are patched by ``patch`` before they go out; later writes into them (libFLAC's
    rewrite at close) are dropped; any other seek backwards is a bug and raises."""

    def __init__(self, hold: int = 0, patch: Callable[[bytearray], None] | None = None) -> None:
        self._hold, self._patch = hold, patch
        self._head = bytearray()
        self._out: list[bytes] = []
        self.pos = 0
        self.size = 0

    def write(self, data: Any) -> int:
        data = bytes(data)
        n = len(data)
        if self.pos < self.size:  # a rewrite of what went out already
            if self.pos + n > self._hold:
                raise OSError("the encoder rewrote payload that was already stored")
            self.pos += n
            return n
        if self.size < self._hold:
            self._head += data
            if len(self._head) >= self._hold:
                if self._patch is not None:
                    self._patch(self._head)
                self._out.append(bytes(self._head))
                self._head = bytearray()
        else:
            self._out.append(data)
        self.pos += n
        self.size = self.pos
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        return b""

    def take(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def flush_head(self) -> None:
        if self._head:
            if self._patch is not None and len(self._head) >= self._hold:
                self._patch(self._head)
            self._out.append(bytes(self._head))
            self._head = bytearray()


def _flac_total_patch(frames: int) -> Callable[[bytearray], None]:
    """Write the total number of samples into STREAMINFO (36 bits ending at byte 26)."""
    def patch(head: bytearray) -> None:
        if head[:4] != b"fLaC" or (head[4] & 0x7F) != 0:
            raise OSError("libsndfile wrote no FLAC STREAMINFO first")
        head[21] = (head[21] & 0xF0) | ((frames >> 32) & 0x0F)
        head[22:26] = (frames & 0xFFFFFFFF).to_bytes(4, "big")
    return patch


class SndfileEncoder:
    def __init__(self, codec: str, sample_rate: int, frames: int) -> None:
        sf = _soundfile()
        if codec == "flac":
            self._sink = _Sink(42, _flac_total_patch(frames))  # "fLaC" + block header + 34 bytes
            self._file = sf.SoundFile(self._sink, "w", samplerate=sample_rate, channels=1, format="FLAC",
                                      subtype="PCM_16", compression_level=FLAC_LEVEL)
        elif codec == "opus":
            if sample_rate not in _OPUS_RATES:
                raise ConfigError(f"Opus stores {', '.join(map(str, _OPUS_RATES))} Hz audio, not {sample_rate} Hz",
                                  hint="use codec = \"flac\" for this source")
            self._sink = _Sink()
            self._file = sf.SoundFile(self._sink, "w", samplerate=sample_rate, channels=1, format="OGG",
                                      subtype="OPUS", compression_level=OPUS_LEVEL)
        else:
            raise ConfigError(f"no encoder for codec {codec!r}")

    def feed(self, block: Any) -> bytes:
        if len(block):
            self._file.write(block)
        return self._sink.take()

    def finish(self) -> bytes:
        self._file.close()
        self._sink.flush_head()
        return self._sink.take()


def encoder(codec: str, sample_rate: int, frames: int) -> Encoder:
    """An encoder for a catalog codec name (``pcm_s16le``, ``flac``, ``opus``)."""
    if codec == PCM:
        return PcmEncoder()
    return SndfileEncoder(codec, sample_rate, frames)


# ---------------------------------------------------------------------- decoding


class PayloadReader(Protocol):
    """Random access to a channel's decrypted payload (``archive._FailoverReader``)."""

    @property
    def plain_size(self) -> int: ...

    def read(self, start: int, end: int) -> bytes: ...


class _PayloadFile:
    """The payload as a read-only file for libsndfile, decrypting a window of it at a time."""

    WINDOW = 256 * 1024

    def __init__(self, reader: PayloadReader) -> None:
        self._r = reader
        self._size = reader.plain_size
        self._pos = 0
        self._win_start = -1
        self._win = b""

    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        out = bytearray()
        while self._pos < end:
            if not self._win_start <= self._pos < self._win_start + len(self._win):
                start = self._pos - self._pos % self.WINDOW
                self._win = self._r.read(start, min(self._size, start + self.WINDOW))
                self._win_start = start
                if not self._win:
                    break
            a = self._pos - self._win_start
            b = min(len(self._win), end - self._win_start)
            out += self._win[a:b]
            self._pos += b - a
        return bytes(out)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else (self._pos + offset if whence == 1 else self._size + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes) -> int:
        raise OSError("read-only")


class DecodedChannel:
    """A coded channel seen as PCM16 bytes: ``plain_size`` and ``read(start, end)`` in bytes of
    PCM16 mono, like a PCM payload (the read paths need not know the codec)."""

    decoded = True

    def __init__(self, codec: str, reader: PayloadReader, name: str = "") -> None:
        sf = _soundfile()
        self.codec, self._reader, self._name = codec, reader, name
        try:
            self._file = sf.SoundFile(_PayloadFile(reader))
        except sf.LibsndfileError as exc:
            raise IntegrityError(f"the {codec} audio of {name} cannot be decoded ({exc})") from None
        self.frames = self._file.frames
        self.sample_rate = self._file.samplerate
        self._at = 0

    @property
    def plain_size(self) -> int:
        return 2 * self.frames

    def read(self, start: int, end: int) -> bytes:
        f0, f1 = max(0, start) // 2, min(self.frames, -(-end // 2))
        if f1 <= f0:
            return b""
        if f0 != self._at:
            self._file.seek(f0)
        data = self._file.read(f1 - f0, dtype="int16")
        self._at = f0 + len(data)
        if len(data) != f1 - f0:
            raise IntegrityError(f"the {self.codec} audio of {self._name} ends early")
        out = data.astype("<i2", copy=False).tobytes()
        return out[start - 2 * f0:end - 2 * f0]

    def verify(self, plain_size: int, plain_sha256: str, chunk: int = 1 << 20) -> None:
        """Read the whole payload once and compare its size and SHA-256 with the catalog."""
        h = hashlib.sha256()
        size = self._reader.plain_size
        for a in range(0, size, chunk):
            h.update(self._reader.read(a, min(size, a + chunk)))
        if size != plain_size or h.hexdigest() != plain_sha256:
            raise IntegrityError(f"decrypted {self._name} audio does not match its SHA-256")


def pcm_access(codec: str, reader: Any, name: str = "") -> Any:
    """The PCM16 view of a channel's payload reader: the reader itself for PCM."""
    if codec in (PCM, "", None):
        return reader
    if codec not in CODECS.values():
        raise IntegrityError(f"{name}: unknown storage codec {codec!r}", hint="upgrade CallFort to read it")
    return DecodedChannel(codec, reader, name)


def decode_all(codec: str, payload: bytes, name: str = "") -> bytes:
    """A whole payload to PCM16 mono."""
    if codec in (PCM, "", None):
        return payload

    class _Whole:
        plain_size = len(payload)

        @staticmethod
        def read(start: int, end: int) -> bytes:
            return payload[start:end]

    ch = DecodedChannel(codec, _Whole(), name)
    return ch.read(0, ch.plain_size)
