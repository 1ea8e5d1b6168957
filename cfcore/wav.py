"""A strict RIFF/WAVE reader: PCM16, G.711 µ-law (format 7) and A-law (format 6), mono or stereo.

G.711 is decoded to PCM16 (ITU-T G.711 tables). Every header field is checked against the real
file size before anything is read, so a lying header never makes us read or allocate more than
the file holds. Anything malformed, truncated or unsupported raises ``InputError`` with a message
that says what is wrong. Also writes PCM16 WAV headers for export.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import attrs

from .errors import InputError

FORMAT_PCM = 1
FORMAT_ALAW = 6
FORMAT_MULAW = 7
FORMAT_EXTENSIBLE = 0xFFFE
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_CODEC = {FORMAT_PCM: "pcm_s16le", FORMAT_ALAW: "pcma", FORMAT_MULAW: "pcmu"}

MIN_RATE, MAX_RATE = 8000, 48000
#: Metadata chunks (LIST, fact, ...) larger than this are refused rather than skipped blindly.
MAX_META_CHUNK = 1 << 20
#: RIFF cannot describe more than 4 GiB.
MAX_FILE = (1 << 32) + 8


@attrs.frozen(kw_only=True)
class Audio:
    """Decoded audio: one PCM16 little-endian mono buffer per channel (0 = advisor, 1 = customer)."""

    sample_rate: int
    channels: tuple[bytes, ...]
    source_codec: str

    @property
    def frames(self) -> int:
        return len(self.channels[0]) // 2

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _ulaw_table() -> list[int]:
    out = []
    for b in range(256):
        u = ~b & 0xFF
        t = ((u & 0x0F) << 3) + 0x84
        t <<= (u & 0x70) >> 4
        out.append((0x84 - t) if u & 0x80 else (t - 0x84))
    return out


def _alaw_table() -> list[int]:
    out = []
    for b in range(256):
        a = b ^ 0x55
        t = (a & 0x0F) << 4
        seg = (a & 0x70) >> 4
        if seg == 0:
            t += 8
        elif seg == 1:
            t += 0x108
        else:
            t = (t + 0x108) << (seg - 1)
        out.append(t if a & 0x80 else -t)
    return out


def _split_table(values: list[int]) -> tuple[bytes, bytes]:
    raw = struct.pack("<256h", *values)
    return raw[0::2], raw[1::2]


_ULAW_LO, _ULAW_HI = _split_table(_ulaw_table())
_ALAW_LO, _ALAW_HI = _split_table(_alaw_table())


def g711_decode(data: bytes, law: str) -> bytes:
    """G.711 bytes (``"ulaw"`` or ``"alaw"``) to PCM16 little-endian, one sample per byte."""
    lo_t, hi_t = (_ULAW_LO, _ULAW_HI) if law == "ulaw" else (_ALAW_LO, _ALAW_HI)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(lo_t)
    out[1::2] = data.translate(hi_t)
    return bytes(out)


def deinterleave(data: bytes, channels: int, width: int) -> tuple[bytes, ...]:
    if channels == 1:
        return (bytes(data),)
    if width == 1:
        return tuple(data[i::channels] for i in range(channels))
    # byte-wise strided slices run in C and beat a strided memoryview copy about twice
    frame = 2 * channels
    out = []
    for i in range(channels):
        ch = bytearray(len(data) // channels)
        ch[0::2] = data[2 * i::frame]
        ch[1::2] = data[2 * i + 1::frame]
        out.append(bytes(ch))
    return tuple(out)


def interleave(channels: list[bytes] | tuple[bytes, ...]) -> bytes:
    """PCM16 mono buffers of equal length to one interleaved buffer."""
    if len(channels) == 1:
        return bytes(channels[0])
    n = len(channels)
    frame = 2 * n
    out = bytearray(sum(len(c) for c in channels))
    for i, c in enumerate(channels):
        out[2 * i::frame] = c[0::2]
        out[2 * i + 1::frame] = c[1::2]
    return bytes(out)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise InputError(f"WAV file is truncated in {what} (wanted {n} bytes, got {len(data)})")
    return data


def _parse_fmt(body: bytes) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise InputError(f"WAV fmt chunk is too short ({len(body)} bytes, need 16)")
    fmt, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if fmt == FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise InputError("WAV fmt chunk of WAVE_FORMAT_EXTENSIBLE is too short")
        sub = body[24:40]
        if sub[2:] != _GUID_TAIL:
            raise InputError("WAV sub-format is not PCM, A-law or µ-law")
        fmt = struct.unpack_from("<H", sub)[0]
    if fmt not in _CODEC:
        raise InputError(f"WAV format {fmt} is not supported",
                         hint="use PCM 16 bit, G.711 A-law (6) or µ-law (7)")
    want_bits = 16 if fmt == FORMAT_PCM else 8
    if bits != want_bits:
        raise InputError(f"WAV {_CODEC[fmt]} with {bits} bits per sample is not supported (need {want_bits})")
    if channels not in (1, 2):
        raise InputError(f"WAV has {channels} channels; CallFort takes 1 (advisor) or 2 (advisor, customer)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"WAV sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    if block_align != channels * bits // 8 or byte_rate != rate * block_align:
        raise InputError("WAV fmt chunk is inconsistent (block align or byte rate do not match)")
    return fmt, channels, rate, block_align


def _open(path: str | os.PathLike[str]) -> tuple[BinaryIO, int, str]:
    p = Path(path)
    try:
        f = p.open("rb")
    except FileNotFoundError:
        raise InputError(f"no such file: {p}") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a directory, not a WAV file") from None
    except PermissionError:
        raise InputError(f"cannot read {p}: permission denied") from None
    size = os.fstat(f.fileno()).st_size
    if size > MAX_FILE:
        f.close()
        raise InputError(f"{p} is larger than a WAV file can be (4 GiB)")
    return f, size, str(p)


def read_wav(path: str | os.PathLike[str]) -> Audio:
    """Read and decode a WAV file. InputError for anything malformed, truncated or unsupported."""
    f, size, name = _open(path)
    with f:
        return parse_wav(f, size, name)


@attrs.frozen(kw_only=True)
class WavInfo:
    """Where the samples of a checked WAV file are: ``data_size`` bytes from ``data_offset``."""

    path: str
    code: int
    channels: int
    sample_rate: int
    data_offset: int
    data_size: int

    @property
    def source_codec(self) -> str:
        return _CODEC[self.code]

    @property
    def width(self) -> int:
        """Bytes per sample in the file (2 for PCM16, 1 for G.711)."""
        return 2 if self.code == FORMAT_PCM else 1

    @property
    def frames(self) -> int:
        return self.data_size // (self.width * self.channels)


def wav_info(path: str | os.PathLike[str]) -> WavInfo:
    """Check a WAV file's header (every check of ``read_wav``) without reading its samples: for
    ingest, which streams the samples block by block."""
    f, size, name = _open(path)
    with f:
        fmt, offset, data_size = _parse_header(f, size, name)
    code, channels, rate, _ = fmt
    return WavInfo(path=name, code=code, channels=channels, sample_rate=rate, data_offset=offset,
                   data_size=data_size)


def parse_wav(f: BinaryIO, size: int, name: str = "WAV") -> Audio:
    (code, channels, rate, _), _, csize = _parse_header(f, size, name)
    raw = _read_exact(f, csize, "data chunk")
    width = 2 if code == FORMAT_PCM else 1
    parts = deinterleave(raw, channels, width)
    if code == FORMAT_MULAW:
        parts = tuple(g711_decode(x, "ulaw") for x in parts)
    elif code == FORMAT_ALAW:
        parts = tuple(g711_decode(x, "alaw") for x in parts)
    return Audio(sample_rate=rate, channels=parts, source_codec=_CODEC[code])


def _parse_header(f: BinaryIO, size: int, name: str) -> tuple[tuple[int, int, int, int], int, int]:
    """``(fmt, data offset, data size)``; ``f`` is left at the start of the samples."""
    if size < 12:
        raise InputError(f"{name} is not a WAV file (only {size} bytes)")
    riff, riff_size, wave = struct.unpack("<4sI4s", _read_exact(f, 12, "RIFF header"))
    if riff != b"RIFF" or wave != b"WAVE":
        raise InputError(f"{name} is not a RIFF/WAVE file", hint="convert it to WAV (PCM16 or G.711)")
    if riff_size + 8 > size:
        raise InputError(f"{name} is truncated: RIFF header says {riff_size + 8} bytes, the file has {size}")
    end = riff_size + 8
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= end:
        cid, csize = struct.unpack("<4sI", _read_exact(f, 8, "chunk header"))
        pos += 8
        if csize > end - pos:
            raise InputError(f"{name} is truncated: chunk {cid!r} says {csize} bytes, {end - pos} remain")
        if cid == b"fmt ":
            if fmt is not None:
                raise InputError(f"{name} has two fmt chunks")
            if csize > 64:
                raise InputError(f"{name}: fmt chunk is implausibly large ({csize} bytes)")
            fmt = _parse_fmt(_read_exact(f, csize, "fmt chunk"))
        elif cid == b"data":
            if fmt is None:
                raise InputError(f"{name}: data chunk comes before the fmt chunk")
            if csize % fmt[3]:
                raise InputError(f"{name} is truncated: data ends inside a sample frame")
            return fmt, pos, csize
        else:
            if csize > MAX_META_CHUNK:
                raise InputError(f"{name}: chunk {cid!r} of {csize} bytes is too large to skip safely")
            f.seek(csize, os.SEEK_CUR)
        pos += csize
        if csize % 2:
            f.seek(1, os.SEEK_CUR)
            pos += 1
    if fmt is None:
        raise InputError(f"{name} has no fmt chunk")
    raise InputError(f"{name} has no data chunk (truncated?)")


def wav_header(data_bytes: int, channels: int, sample_rate: int) -> bytes:
    """The 44-byte header of a PCM16 WAV file with ``data_bytes`` of samples."""
    block = 2 * channels
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, FORMAT_PCM, channels,
                       sample_rate, sample_rate * block, block, 16, b"data", data_bytes)


def write_wav(path: str | os.PathLike[str], channels: list[bytes] | tuple[bytes, ...], sample_rate: int) -> None:
    """Write PCM16 mono buffers (equal length) as one WAV file."""
    data = interleave(channels)
    with open(path, "wb") as f:
        f.write(wav_header(len(data), len(channels), sample_rate))
        f.write(data)
