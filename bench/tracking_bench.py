"""``python -m bench tracking``: do the door's cheaper searches change the crops?

The door searches a frame around the last frame's faces, and glances at an untracked
frame before searching around what it shows (daemon/faces/track.py), instead of the
whole frame. The crops must not drift from what the encoder was trained on. For held-out
LFW photos (pairs folds 7-8 by default) pasted into 640x480 frames at three sizes, it
compares four crops of each: the photo's own (as in training and evaluation), the
frame's whole-frame search, its tracked-region search, and the door's first sight of it
(a fresh tracker: glance, then region). It prints the mean embedding distance of each
frame crop to the photo's own crop, per face size.
"""

from __future__ import annotations

import cv2
import numpy as np

from bench.compare.dataset import held_out_parser, load_image_set
from bench.compare.speed import make_frame
from daemon.embeddings import load_encoder
from daemon.faces.align import prepare_faces
from daemon.faces.detect import FaceDetector
from daemon.faces.track import FaceTracker, region_around

SIDES = (150, 250, 400)  # pasted photo side: faces of about 60, 100 and 160 px


def main(argv: list[str] | None = None) -> int:
    p = held_out_parser("python -m bench tracking", __doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=240)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    detector, encoder = FaceDetector(), load_encoder()
    images, _ = load_image_set(args.data, args.pairs, args.folds)
    rng = np.random.default_rng(args.seed)
    rows: dict[int, list] = {}
    for i in rng.choice(len(images.paths), min(args.photos, len(images.paths)), replace=False):
        photo = cv2.imread(str(images.paths[i]))
        own = prepare_faces(photo, detector)
        side = int(rng.choice(SIDES))
        frame = make_frame(cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < 250
                                      else cv2.INTER_LINEAR), rng)  # bench compare's 640x480 frames
        whole = prepare_faces(frame, detector)
        region = region_around(whole.detected, frame.shape[:2])
        tracked = prepare_faces(frame, detector, region=region) if region else None
        first = FaceTracker().prepare(frame, detector)
        if not (own.crops and whole.crops and tracked and tracked.crops and first.crops):
            continue
        e_own, e_whole, e_tracked, e_first = encoder.embed(
            np.stack([own.crops[0], whole.crops[0], tracked.crops[0], first.crops[0]]))
        rows.setdefault(side, []).append((np.linalg.norm(e_whole - e_own), np.linalg.norm(e_tracked - e_own),
                                          np.linalg.norm(e_first - e_own), np.linalg.norm(e_whole - e_tracked)))
    print(f"model {encoder.info.model_id}, match threshold {encoder.info.threshold:.3f}")
    print("| pasted side (face px) | photos | whole frame vs own crop | tracked region vs own crop "
          "| first sight (glance + region) vs own crop | whole vs tracked |")
    print("|---|---|---|---|---|---|")
    for side, v in sorted(rows.items()):
        m = np.mean(v, axis=0)
        print(f"| {side} (~{round(side * 0.416)}) | {len(v)} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} |")
    return 0
