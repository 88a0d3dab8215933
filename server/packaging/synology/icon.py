"""Writes the package icon as a PNG of the given size: a white cloud on a
blue rounded square, drawn from circles (no image library needed)."""
import struct
import sys
import zlib


def pixel(x, y, n):
    u, v = (x + 0.5) / n, (y + 0.5) / n
    # Rounded square background.
    r = 0.18
    cx, cy = min(max(u, r), 1 - r), min(max(v, r), 1 - r)
    if (u - cx) ** 2 + (v - cy) ** 2 > r * r:
        return (0, 0, 0, 0)
    cloud = [(0.36, 0.56, 0.16), (0.52, 0.46, 0.2), (0.68, 0.57, 0.14)]
    inside = any((u - a) ** 2 + (v - b) ** 2 <= c * c for a, b, c in cloud)
    inside = inside or (0.36 <= u <= 0.68 and 0.56 <= v <= 0.71)
    return (255, 255, 255, 255) if inside else (37, 99, 235, 255)


def png(n):
    rows = b"".join(
        b"\0" + b"".join(bytes(pixel(x, y, n)) for x in range(n)) for y in range(n)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", n, n, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    with open(sys.argv[2], "wb") as out:
        out.write(png(int(sys.argv[1])))
