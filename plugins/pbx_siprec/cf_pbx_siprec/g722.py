"""G.722 (ITU-T, 64 kbit/s mode) sub-band ADPCM decoder, written from the Recommendation's block
descriptions (lower sub-band: INVQAL/INVQBL, LOGSCL, SCALEL; higher sub-band: INVQAH, LOGSCH,
SCALEH; both: block 4 RECONS/PARREC/UPPOL1/UPPOL2/UPZERO/DELAYA/FILTEP/FILTEZ/PREDIC; receive QMF).

``decode`` gives the 16 kHz wide-band signal. The archive records at 8 kHz: ``decode_low`` gives the
lower sub-band's reconstructed signal (0-4 kHz, already at 8 kHz), which is what a narrow-band
recording of the call keeps, at half the work and without a resampler.
"""

from __future__ import annotations

import struct

QM2 = (-7408, -1616, 7408, 1616)
QM4 = (0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0)
QM6 = (-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360,
       -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688,
       -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192,
       6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432,
       -136)
WL = (-60, -30, 58, 172, 334, 538, 1198, 3042)
RL42 = (0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0)
ILB = (2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960,
       3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008)
WH = (0, -214, 798)
RH2 = (2, 1, 2, 1)
QMF = (3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11)


def _sat(v: int) -> int:
    return 32767 if v > 32767 else (-32768 if v < -32768 else v)


class _Band:
    __slots__ = ("s", "sp", "sz", "r", "a", "ap", "p", "d", "b", "bp", "sg", "nb", "det")

    def __init__(self, det: int) -> None:
        self.s = self.sp = self.sz = 0
        self.r = [0, 0, 0]
        self.a = [0, 0, 0]
        self.ap = [0, 0, 0]
        self.p = [0, 0, 0]
        self.d = [0] * 7
        self.b = [0] * 7
        self.bp = [0] * 7
        self.sg = [0] * 7
        self.nb = 0
        self.det = det

    def block4(self, d: int) -> None:
        """Adaptive predictor update with the (4-bit / 2-bit) quantised difference ``d``."""
        r, a, ap, p, dd, b, bp, sg = self.r, self.a, self.ap, self.p, self.d, self.b, self.bp, self.sg
        dd[0] = d
        r[0] = _sat(self.s + d)
        p[0] = _sat(self.sz + d)
        # UPPOL2
        for i in range(3):
            sg[i] = p[i] >> 15
        wd1 = _sat(a[1] * 4)
        wd2 = -wd1 if sg[0] == sg[1] else wd1
        if wd2 > 32767:
            wd2 = 32767
        wd3 = (wd2 >> 7) + (128 if sg[0] == sg[2] else -128)
        wd3 += (a[2] * 32512) >> 15
        ap[2] = max(-12288, min(12288, wd3))
        # UPPOL1
        sg[0] = p[0] >> 15
        sg[1] = p[1] >> 15
        wd1 = 192 if sg[0] == sg[1] else -192
        wd2 = (a[1] * 32640) >> 15
        ap[1] = _sat(wd1 + wd2)
        wd3 = _sat(15360 - ap[2])
        if ap[1] > wd3:
            ap[1] = wd3
        elif ap[1] < -wd3:
            ap[1] = -wd3
        # UPZERO
        wd1 = 0 if d == 0 else 128
        sg[0] = d >> 15
        for i in range(1, 7):
            sg[i] = dd[i] >> 15
            wd2 = wd1 if sg[i] == sg[0] else -wd1
            wd3 = (b[i] * 32640) >> 15
            bp[i] = _sat(wd2 + wd3)
        # DELAYA
        for i in range(6, 0, -1):
            dd[i] = dd[i - 1]
            b[i] = bp[i]
        for i in range(2, 0, -1):
            r[i] = r[i - 1]
            p[i] = p[i - 1]
            a[i] = ap[i]
        # FILTEP
        wd1 = (a[1] * _sat(r[1] + r[1])) >> 15
        wd2 = (a[2] * _sat(r[2] + r[2])) >> 15
        self.sp = _sat(wd1 + wd2)
        # FILTEZ
        sz = 0
        for i in range(6, 0, -1):
            sz += (b[i] * _sat(dd[i] + dd[i])) >> 15
        self.sz = _sat(sz)
        # PREDIC
        self.s = _sat(self.sp + self.sz)


class G722Decoder:
    """One stream's decoder state (64 kbit/s: 6 bits lower band, 2 bits higher band per byte)."""

    def __init__(self) -> None:
        self.low = _Band(32)
        self.high = _Band(8)
        self.x = [0] * 24

    def _low(self, code: int) -> int:
        band = self.low
        wd1 = code & 0x3F
        ilr4 = wd1 >> 2
        rlow = band.s + ((band.det * QM6[wd1]) >> 15)
        rlow = 16383 if rlow > 16383 else (-16384 if rlow < -16384 else rlow)
        dlowt = (band.det * QM4[ilr4]) >> 15
        nb = ((band.nb * 127) >> 7) + WL[RL42[ilr4]]
        band.nb = nb = 0 if nb < 0 else (18432 if nb > 18432 else nb)
        wd1 = (nb >> 6) & 31
        wd2 = 8 - (nb >> 11)
        band.det = ((ILB[wd1] << -wd2) if wd2 < 0 else (ILB[wd1] >> wd2)) << 2
        band.block4(dlowt)
        return rlow

    def _high(self, code: int) -> int:
        band = self.high
        ih = (code >> 6) & 3
        dhigh = (band.det * QM2[ih]) >> 15
        rhigh = dhigh + band.s
        rhigh = 16383 if rhigh > 16383 else (-16384 if rhigh < -16384 else rhigh)
        nb = ((band.nb * 127) >> 7) + WH[RH2[ih]]
        band.nb = nb = 0 if nb < 0 else (22528 if nb > 22528 else nb)
        wd1 = (nb >> 6) & 31
        wd2 = 10 - (nb >> 11)
        band.det = ((ILB[wd1] << -wd2) if wd2 < 0 else (ILB[wd1] >> wd2)) << 2
        band.block4(dhigh)
        return rhigh

    def decode(self, data: bytes) -> bytes:
        """16 kHz PCM16 little-endian, two samples per byte."""
        out: list[int] = []
        x = self.x
        for code in data:
            rlow = self._low(code)
            rhigh = self._high(code)
            del x[:2]
            x.append(rlow + rhigh)
            x.append(rlow - rhigh)
            xout1 = xout2 = 0
            for i in range(12):
                xout2 += x[2 * i] * QMF[i]
                xout1 += x[2 * i + 1] * QMF[11 - i]
            out.append(_sat(xout1 >> 11))
            out.append(_sat(xout2 >> 11))
        return struct.pack(f"<{len(out)}h", *out)

    def decode_low(self, data: bytes) -> bytes:
        """8 kHz PCM16 little-endian of the lower sub-band, one sample per byte (the higher band is
        not decoded: do not mix with ``decode`` on the same decoder)."""
        low = self._low
        out = [_sat(low(code) << 1) for code in data]
        return struct.pack(f"<{len(out)}h", *out)
