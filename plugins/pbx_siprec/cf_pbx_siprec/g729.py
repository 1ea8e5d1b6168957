"""G.729 (Annex A, with Annex B SID frames) decoding through Debian's ``libbcg729`` (ctypes).

G.729 is patent-free since 2017 but its reference code is not a Python package; bcg729 is the
codec library of Debian (``apt-get install libbcg729-0``). Without it, G.729-only m-lines keep
port 0 as before. Frames of 10 bytes give 80 samples (10 ms); a 2-byte SID frame (Annex B) gives
80 samples of comfort noise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

_LIB: Any = None
_LOCK = threading.Lock()
_TRIED = False


def library() -> Any:
    """The loaded libbcg729, or None when it is not installed."""
    global _LIB, _TRIED
    with _LOCK:
        if not _TRIED:
            _TRIED = True
            for name in (ctypes.util.find_library("bcg729"), "libbcg729.so.0"):
                if not name:
                    continue
                try:
                    lib = ctypes.CDLL(name)
                except OSError:
                    continue
                lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
                lib.initBcg729DecoderChannel.argtypes = []
                lib.closeBcg729DecoderChannel.argtypes = [ctypes.c_void_p]
                lib.bcg729Decoder.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint8, ctypes.c_uint8,
                                              ctypes.c_uint8, ctypes.c_uint8, ctypes.POINTER(ctypes.c_int16)]
                lib.bcg729Decoder.restype = None
                _LIB = lib
                break
    return _LIB


def available() -> bool:
    return library() is not None


class G729Decoder:
    """One stream's decoder state; ``decode(payload)`` -> PCM16 little-endian at 8 kHz."""

    def __init__(self) -> None:
        lib = library()
        if lib is None:
            raise RuntimeError("libbcg729 is not installed (apt-get install libbcg729-0)")
        self._lib = lib
        self._ctx = lib.initBcg729DecoderChannel()
        self._out = (ctypes.c_int16 * 80)()

    def decode(self, payload: bytes) -> bytes:
        out = bytearray()
        lib, ctx, buf = self._lib, self._ctx, self._out
        i = 0
        n = len(payload)
        while n - i >= 10:
            lib.bcg729Decoder(ctx, payload[i:i + 10], 10, 0, 0, 0, buf)
            out += bytes(buf)
            i += 10
        if n - i == 2:  # Annex B SID frame: comfort noise
            lib.bcg729Decoder(ctx, payload[i:i + 2], 2, 0, 1, 0, buf)
            out += bytes(buf)
        return bytes(out)

    def close(self) -> None:
        if self._ctx:
            self._lib.closeBcg729DecoderChannel(self._ctx)
            self._ctx = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: S110 - interpreter shutdown
            pass
