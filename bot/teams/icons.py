"""The Teams app icons, drawn in code and written as PNG with zlib + struct (no imaging library).

* color: 192x192, opaque, a calendar page on clinicbot's teal with a medical cross.
* outline: 32x32, transparent background, the same calendar drawn in white only (Teams tints it).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

__all__ = ["ACCENT", "color_icon", "outline_icon", "png", "png_size", "write_icons"]

RGBA = tuple[int, int, int, int]
ACCENT = "#0F766E"
_TEAL: RGBA = (15, 118, 110, 255)
_WHITE: RGBA = (255, 255, 255, 255)
_CLEAR: RGBA = (0, 0, 0, 0)


def png(width: int, height: int, pixel: Callable[[int, int], RGBA]) -> bytes:
    """Encode an RGBA image given by `pixel(x, y)` as PNG."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows.extend(pixel(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int, int]:
    """(width, height, colour type) from a PNG's IHDR."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, colour


def _calendar(x: float, y: float) -> str:
    """Which part of the glyph (unit square coordinates) a point is in: 'line', 'cross' or ''."""
    left, right, top, bottom, ring = 0.16, 0.84, 0.22, 0.86, 0.06
    inside = left <= x <= right and top <= y <= bottom
    if inside and not (left + ring < x < right - ring and top + ring < y < bottom - ring):
        return "line"
    if inside and top + ring <= y <= top + 0.2:
        return "line"  # the header band
    for ring_x in (0.34, 0.66):  # binder rings above the page
        if abs(x - ring_x) <= 0.035 and 0.12 <= y <= 0.3:
            return "line"
    cx, cy, arm, half = 0.5, 0.63, 0.15, 0.05
    if (abs(x - cx) <= half and abs(y - cy) <= arm) or (abs(y - cy) <= half and abs(x - cx) <= arm):
        return "cross"
    return ""


def color_icon(size: int = 192) -> bytes:
    """The full-colour icon: white calendar with a teal cross on a teal rounded square."""
    radius = size * 0.18

    def pixel(x: int, y: int) -> RGBA:
        px, py = x + 0.5, y + 0.5
        dx = max(radius - px, 0.0, px - (size - radius))
        dy = max(radius - py, 0.0, py - (size - radius))
        if dx * dx + dy * dy > radius * radius:
            return _WHITE  # corners: the color icon must be opaque, so white rather than clear
        part = _calendar(px / size, py / size)
        if part == "line":
            return _WHITE
        if part == "cross":
            return (94, 234, 212, 255)
        inside_page = 0.16 <= px / size <= 0.84 and 0.22 <= py / size <= 0.86
        return (236, 253, 250, 255) if inside_page else _TEAL

    return png(size, size, pixel)


def outline_icon(size: int = 32) -> bytes:
    """The outline icon: white strokes on a transparent background."""

    def pixel(x: int, y: int) -> RGBA:
        return _WHITE if _calendar((x + 0.5) / size, (y + 0.5) / size) else _CLEAR

    return png(size, size, pixel)


def write_icons(folder: Path) -> tuple[Path, Path]:
    """Write color.png and outline.png into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    color, outline = folder / "color.png", folder / "outline.png"
    color.write_bytes(color_icon())
    outline.write_bytes(outline_icon())
    return color, outline
