"""Regenerate the embedded demo (``demo/gallery`` and ``demo/replay``) from LFW.

    python demo/make_demo.py [--lfw ../shared/data/lfw]

All people here are from LFW pairs folds 7-8, which the shipped encoder never saw
in training. Replay frames are 640x480: an LFW photo placed on a plain background
enlarged and at a slowly drifting position, as a person standing at a door camera would be.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
GALLERY = {"Kofi_Annan": [1, 2, 3], "Arnold_Schwarzenegger": [1, 2, 3],
           "Gloria_Macapagal_Arroyo": [1, 2, 3]}
# (person, photo numbers): a stranger walks past, then Kofi Annan comes to the door.
REPLAY = [("", [0, 0]), ("Luiz_Inacio_Lula_da_Silva", [1, 2, 3, 4]), ("", [0]),
          ("Kofi_Annan", [4, 5, 6, 7, 8, 9]), ("", [0, 0])]


def frame_with(photo: np.ndarray | None, k: int) -> np.ndarray:
    ys, xs = np.mgrid[0:480, 0:640]
    frame = (90 + 40 * np.sin(xs / 90.0) + 20 * np.cos(ys / 70.0)).astype(np.uint8)
    if photo is not None:
        # ~1.4x: the face then spans ~160 px, as at a door camera about 1 m away
        photo = cv2.resize(photo, (350, 350), interpolation=cv2.INTER_LINEAR)
        x, y = 120 + 8 * k, 60 + 4 * (k % 3)
        frame[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
    return frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lfw", type=Path, default=HERE.parent.parent / "shared" / "data" / "lfw")
    args = parser.parse_args()
    for sub in ("gallery", "replay"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    for person, numbers in GALLERY.items():
        (HERE / "gallery" / person).mkdir(parents=True)
        for n in numbers:
            name = f"{person}_{n:04d}.jpg"
            shutil.copy(args.lfw / person / name, HERE / "gallery" / person / name)
    (HERE / "replay").mkdir()
    k = 0
    for person, numbers in REPLAY:
        for n in numbers:
            photo = None
            if person:
                photo = cv2.imread(str(args.lfw / person / f"{person}_{n:04d}.jpg"), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(HERE / "replay" / f"frame_{k:03d}.jpg"), frame_with(photo, k),
                        [cv2.IMWRITE_JPEG_QUALITY, 85])
            k += 1


if __name__ == "__main__":
    main()
