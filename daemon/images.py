"""Reading images from disk or bytes with clear errors instead of crashes.

Images come from people (enrollment photos) and from folders anyone may drop files in,
so every file is treated as hostile: only regular files up to MAX_FILE_BYTES are read,
only JPEG, PNG, BMP, WebP, TIFF and PNM are handed to OpenCV (the codecs a camera or a
phone produces; OpenCV's rarer decoders are never reached), and the canvas size each
format declares in its header is checked against MAX_PIXELS *before* decoding, so a
decompression bomb (a tiny file declaring a huge canvas) costs a header read, not
gigabytes of memory. A truncated JPEG, which libjpeg would happily "decode" into grey,
is refused too.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

# OpenCV reads this variable when cv2 is first imported (a second line of defence: cv2
# may already be imported by then, which is why the header checks below exist).
MAX_PIXELS = 40_000_000  # a 40 MP photo is plenty for face enrolment
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

MAX_FILE_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8
FORMATS = "JPEG, PNG, BMP, WebP, TIFF or PNM"
# The file names a folder of images (replay, gallery photos, data sets) is read by.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"})


class ImageError(ValueError):
    """An image that cannot be used: missing, unreadable, corrupt, too large, or not an image."""


# ---------------------------------------------------------------- header parsing
# Each returns (width, height) from the header, or raises ImageError for a header that
# is cut short or inconsistent. Pure functions of the bytes.

def _u16(data: bytes, at: int, order: str = ">") -> int:
    return struct.unpack_from(order + "H", data, at)[0]


def _u32(data: bytes, at: int, order: str = ">") -> int:
    return struct.unpack_from(order + "I", data, at)[0]


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("PNG header is cut short or has no IHDR chunk")
    return _u32(data, 16), _u32(data, 20)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the marker segments to the frame header (SOFn), then make sure the file has
    an end-of-image marker after its scan data: a truncated JPEG has none."""
    i, size = 2, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:  # stray bytes between segments: libjpeg skips them too
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = _u16(data, i + 2)
        if length < 2:
            raise ImageError("JPEG is corrupt (bad segment length)")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            h, w = struct.unpack_from(">HH", data, i + 5)
            size = (w, h)
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise ImageError("JPEG has no frame header before its image data")
            # In scan data 0xFF is always followed by 0x00 or a restart marker, so the
            # first FF D9 after the scan starts is the real end of the image.
            if data.find(b"\xff\xd9", i + 2 + length) < 0:
                raise ImageError("JPEG is truncated (no end-of-image marker)")
            return size
        i += 2 + length
    raise ImageError("JPEG is truncated (the header ends before the image data)")


def _bmp_size(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise ImageError("BMP header is cut short")
    if _u32(data, 14, "<") == 12:  # OS/2 BITMAPCOREHEADER
        return _u16(data, 18, "<"), _u16(data, 20, "<")
    w, h = struct.unpack_from("<ii", data, 18)
    return abs(w), abs(h)  # a negative height means top-down rows


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    raise ImageError("WebP header is cut short or of an unknown kind")


def _tiff_size(data: bytes) -> tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) from the first IFD (the page OpenCV decodes)."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        offset = _u32(data, 4, order)
        count = _u16(data, offset, order)
        tags = {}
        for n in range(min(count, 4096)):
            at = offset + 2 + 12 * n
            tag, kind = _u16(data, at, order), _u16(data, at + 2, order)
            if tag in (256, 257):
                tags[tag] = _u16(data, at + 8, order) if kind == 3 else _u32(data, at + 8, order)
    except struct.error:
        raise ImageError("TIFF header is cut short") from None
    if 256 not in tags or 257 not in tags:
        raise ImageError("TIFF has no image width or height")
    return tags[256], tags[257]


_PNM_HEADER = re.compile(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d{1,9})(?:\s+|#[^\n]*\n)+(\d{1,9})")


def _pnm_size(data: bytes) -> tuple[int, int]:
    match = _PNM_HEADER.match(data[:1024])
    if match is None:
        raise ImageError("PNM header is cut short or malformed")
    return int(match.group(1)), int(match.group(2))


def image_kind(data: bytes) -> str | None:
    """The format from the file's first bytes (never from its name), or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PNM"
    return None


_SIZE_OF = {"PNG": _png_size, "JPEG": _jpeg_size, "BMP": _bmp_size, "WebP": _webp_size,
            "TIFF": _tiff_size, "PNM": _pnm_size}


def _describe_unknown(data: bytes) -> str:
    head = data[:512]
    try:
        head.decode("utf-8")
        looks = "text"
    except UnicodeDecodeError as exc:
        looks = "text" if exc.start > 0 and len(head) - exc.start < 4 else "an unknown binary format"
    return f"not a readable image: the content is {looks}, not {FORMATS}"


def declared_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header; ImageError for anything we do not decode."""
    kind = image_kind(data)
    if kind is None:
        raise ImageError(_describe_unknown(data))
    try:
        width, height = _SIZE_OF[kind](data)
    except (struct.error, IndexError):
        raise ImageError(f"{kind} header is cut short") from None
    return kind, width, height


# ---------------------------------------------------------------- decoding

def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to uint8 grayscale (H, W) or BGR (H, W, 3)."""
    if len(data) == 0:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    try:
        kind, width, height = declared_size(data)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {kind} declares {width}x{height} pixels, over the {MAX_PIXELS} pixel "
                         "limit (a decompression bomb, or a photo far larger than enrollment needs)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name}: {kind} declares {width}x{height} pixels, too small to hold a face")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageError(f"{name}: cannot decode ({exc.msg.strip() if hasattr(exc, 'msg') else exc})") from exc
    if image is None:
        raise ImageError(f"{name}: not a readable image (corrupt {kind}: the decoder gave up)")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or min(image.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{name}: unusable image shape {image.shape}")
    return image


def read_image_bytes(path: str | Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES; ImageError otherwise.
    (A FIFO or a device named .jpg would block or never end: only regular files are read.)"""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: {info.st_size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{path}: larger than the {MAX_FILE_BYTES} byte limit")
    return data


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 grayscale (H, W) or BGR (H, W, 3); ImageError if unusable."""
    return decode_image(read_image_bytes(path), str(path))
