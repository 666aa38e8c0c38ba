"""A 16-bit RGB PNG writer for tests: imageio's Pillow plugin cannot write one (and reads one as 8-bit)."""
import struct
import zlib

import numpy as np


def write_png16(path, image: np.ndarray) -> None:
    """Write ``image`` (uint16 ``[H, W, 3]``) as a 16-bit RGB PNG (colour type 2, no filtering, one IDAT).

    Written by hand after the PNG specification (big-endian samples, each row prefixed by filter 0).
    """
    image = np.asarray(image)
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint16 [H, W, 3], got {image.dtype} {image.shape}")
    height, width, _ = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + image[row].astype(">u2").tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                + chunk(b"IEND", b""))
