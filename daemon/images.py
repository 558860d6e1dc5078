"""Reading images from disk or bytes with clear errors instead of crashes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

# OpenCV reads this variable at import time; cap decoded size before anyone imports cv2.
MAX_PIXELS = 40_000_000  # a 40 MP photo is plenty for face enrolment
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

MAX_FILE_BYTES = 50 * 1024 * 1024


class ImageError(ValueError):
    """An image that cannot be used: missing, unreadable, corrupt, or too large."""


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG or JPEG header, read before decoding so that a
    decompression bomb (a tiny file declaring a huge canvas) is refused cheaply."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    return None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to uint8 grayscale (H, W) or BGR (H, W, 3)."""
    if len(data) == 0:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    size = _declared_size(data)
    if size and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{name}: declares {size[0]}x{size[1]} pixels, over the {MAX_PIXELS} pixel limit")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageError(f"{name}: cannot decode ({exc.msg.strip() if hasattr(exc, 'msg') else exc})") from exc
    if image is None:
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 8:
        raise ImageError(f"{name}: unusable image shape {image.shape}")
    return image


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 grayscale (H, W) or BGR (H, W, 3); ImageError if unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path}: {size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path}: is a directory, not an image") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, str(path))
