#!/usr/bin/env python3
"""tq_known_answers.py — known-answer TQ2_0 / TQ1_0 blocks for tests/test_tqpack.c, written from
ggml's definition of the two formats (llama.cpp ggml-quants.c: quantize_row_tq2_0_ref and
quantize_row_tq1_0_ref; block layouts in ggml-common.h), sharing no code with tern's packer.

  python3 scripts/tq_known_answers.py [OUTDIR]      (default tests/fixtures; standard library only)

Writes OUTDIR/tq_known.tq2 (N_BLOCKS x 66 bytes) and OUTDIR/tq_known.tq1 (N_BLOCKS x 54 bytes),
byte-identical on every run. The input, block b of 256 float weights x = w * d_b:
  b in [0, 256):    w = 0 except w[b] = +1            d_b = (b + 1) / 64
  b in [256, 512):  w = 0 except w[b - 256] = -1      d_b = (b - 255) / 32
  b in [512, 520):  w[i] = (s >> 33) % 3 - 1 with s the 64-bit LCG s = s * 6364136223846793005
                    + 1442695040888963407 (mod 2^64), s = b before the block, stepped before each
                    weight; d_b = (float)(0.0371 * (b - 511)), the product in double (not exact in
                    fp16: tests the rounding)
So every position of a block holds a lone +1 once and a lone -1 once, and the last blocks mix all
three values. As in ggml's reference quantizer: d = max|x| of the block, stored as IEEE fp16
(round to nearest even); each weight becomes lround(x / d) + 1 in {0, 1, 2}.
"""
import os
import struct
import sys

N_BLOCKS = 520


def lcg(s):
    return (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)


def block_input(b):
    """(w[256] in {-1,0,1}, d as a Python float)"""
    w = [0] * 256
    if b < 256:
        w[b] = 1
        d = (b + 1) / 64
    elif b < 512:
        w[b - 256] = -1
        d = (b - 255) / 32
    else:
        s = b
        for i in range(256):
            s = lcg(s)
            w[i] = (s >> 33) % 3 - 1
        d = 0.0371 * (b - 511)
    return w, d


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def lround(v):
    """C lroundf: halves away from zero"""
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


def codes(x):
    """ggml: d = max|x|, id = 1/d (float32), code = lround(x * id) + 1"""
    amax = max(abs(v) for v in x)
    d = f32(amax)
    inv = f32(1.0 / d) if d else 0.0
    return [lround(f32(f32(v) * inv)) + 1 for v in x], d


def tq2_block(x):
    c, d = codes(x)
    qs = bytearray(64)
    for j in range(2):                  # two halves of 128 weights, 32 bytes each
        for m in range(32):
            q = 0
            for n in range(4):          # byte m, bits 2n..2n+1: weight 128j + m + 32n
                q += (c[128 * j + m + 32 * n] & 3) << (2 * n)
            qs[32 * j + m] = q
    return bytes(qs) + struct.pack("<e", d)


def tq1_pack_trits(digits, shift_top):
    """base-3 number, first digit most significant, times 3 if shift_top; then ceil(v*256/243),
    all in uint8 arithmetic as ggml does it"""
    q = 0
    for t in digits:
        q = (q * 3 + t) & 0xFF
    if shift_top:
        q = (q * 3) & 0xFF
    return ((q * 256 + 242) // 243) & 0xFF


def tq1_block(x):
    c, d = codes(x)
    qs = bytearray(48)
    for m in range(32):                 # weights 0..159: byte m holds m + 32n, n = 0..4
        qs[m] = tq1_pack_trits([c[m + 32 * n] for n in range(5)], False)
    for m in range(16):                 # weights 160..239: byte 32 + m holds 160 + m + 16n
        qs[32 + m] = tq1_pack_trits([c[160 + m + 16 * n] for n in range(5)], False)
    qh = bytearray(4)
    for j in range(4):                  # weights 240..255: qh[j] holds 240 + j + 4n, n = 0..3
        qh[j] = tq1_pack_trits([c[240 + j + 4 * n] for n in range(4)], True)
    return bytes(qs) + bytes(qh) + struct.pack("<e", d)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    tq2, tq1 = bytearray(), bytearray()
    for b in range(N_BLOCKS):
        w, d = block_input(b)
        x = [f32(wi * f32(d)) for wi in w]
        tq2 += tq2_block(x)
        tq1 += tq1_block(x)
    assert len(tq2) == N_BLOCKS * 66 and len(tq1) == N_BLOCKS * 54
    with open(os.path.join(out, "tq_known.tq2"), "wb") as f:
        f.write(tq2)
    with open(os.path.join(out, "tq_known.tq1"), "wb") as f:
        f.write(tq1)
    print(f"wrote {N_BLOCKS} blocks: tq_known.tq2 ({len(tq2)} bytes), tq_known.tq1 ({len(tq1)} bytes) in {out}")


if __name__ == "__main__":
    main()
