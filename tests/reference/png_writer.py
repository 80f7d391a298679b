"""A PNG encoder for test files that PIL cannot write: every colour type and bit depth of the
PNG specification (https://www.w3.org/TR/png/), tRNS chunks, Adam7 interlacing. Filter type 0
(none) on every row; zlib does the compression.
"""
import struct
import zlib

import numpy as np

GREY, RGB, PALETTE, GREY_ALPHA, RGBA = 0, 2, 3, 4, 6
CHANNELS = {GREY: 1, RGB: 3, PALETTE: 1, GREY_ALPHA: 2, RGBA: 4}
# Adam7 passes as (x0, y0, dx, dy), PNG specification section 8.2.
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _scanlines(samples, depth):
    """samples (h, w, c) -> filter byte 0 + packed samples, per row."""
    out = []
    for row in samples:
        flat = row.reshape(-1).astype(np.int64)
        if depth == 16:
            data = flat.astype(">u2").tobytes()
        elif depth == 8:
            data = flat.astype(np.uint8).tobytes()
        else:  # 1, 2, 4 bits: leftmost sample in the high bits, the last byte zero-padded
            per_byte = 8 // depth
            flat = np.concatenate([flat, np.zeros(-len(flat) % per_byte, np.int64)])
            shifts = np.array([8 - depth * (i + 1) for i in range(per_byte)])
            data = (flat.reshape(-1, per_byte) << shifts).sum(axis=1).astype(np.uint8).tobytes()
        out.append(b"\x00" + data)
    return b"".join(out)


def encode(samples, color_type, depth, palette=None, trns=None, interlace=False):
    """samples: int array (H, W, channels) of raw sample values (palette indices for PALETTE).
    palette: list of (r, g, b); trns: the tRNS chunk's payload as bytes."""
    height, width, channels = samples.shape
    assert channels == CHANNELS[color_type]
    assert samples.min() >= 0 and samples.max() < (1 << depth)
    if interlace:
        raw = b"".join(_scanlines(samples[y0::dy, x0::dx], depth) for x0, y0, dx, dy in ADAM7
                       if samples[y0::dy, x0::dx].size > 0)
    else:
        raw = _scanlines(samples, depth)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        png += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    return png + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
