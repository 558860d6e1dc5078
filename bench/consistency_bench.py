"""``python -m bench consistency``: the enrollment consistency threshold of a model.

`facegate enroll` refuses a photo whose embedding is farther than
``PhotoGate.consistency_threshold`` (daemon/server/gate.py) from the median of the person's other photos
(``daemon.server.gate.find_outliers``). The right figure depends on the encoder's
distances, so it is re-measured whenever the model changes:

- people of the held-out pairs folds (none of them trained on) with at least ``--photos``
  images; the first ``--photos`` of each;
- genuine: each photo against the median of the person's other photos;
- impostor: one photo of the next person against the median of ``--photos - 1`` of this one.

For each threshold it prints the share of genuine photos refused and of impostors caught.
"""

from __future__ import annotations

import json

import numpy as np

from bench.compare.dataset import held_out_parser, load_image_set
from daemon.api import default_detector, embed_image
from daemon.embeddings import load_encoder
from daemon.server.gate import PhotoGate, find_outliers

THRESHOLDS = (1.0, 1.1, 1.15, 1.2, 1.25, 1.3)


def person_embeddings(image_set, photos: int, max_people: int, encoder, detector) -> list[np.ndarray]:
    """(photos, D) embeddings per person, people in the image set's order."""
    out = []
    for name in dict.fromkeys(image_set.labels):
        idx = np.flatnonzero(image_set.labels == name)
        if len(idx) < photos:
            continue
        emb = [embed_image(str(image_set.paths[i]), encoder, detector).embedding for i in idx]
        emb = [e for e in emb if e is not None][:photos]
        if len(emb) == photos:
            out.append(np.stack(emb))
        if len(out) == max_people:
            break
    return out


def distances(people: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) distances to the median of the other photos, as find_outliers
    measures them (a threshold below every distance reports them all)."""
    genuine, impostor = [], []
    for k, own in enumerate(people):
        genuine += list(find_outliers(own, -1.0).values())
        intruder = people[(k + 1) % len(people)][0]
        impostor.append(find_outliers(np.vstack([own[1:], intruder]), -1.0)[len(own) - 1])
    return np.array(genuine), np.array(impostor)


def main(argv: list[str] | None = None) -> int:
    p = held_out_parser("python -m bench consistency", __doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=4)
    p.add_argument("--people", type=int, default=80)
    p.add_argument("--model", help="encoder .tflite (default: the shipped one)")
    args = p.parse_args(argv)

    image_set, _ = load_image_set(args.data, args.pairs, args.folds)
    encoder = load_encoder(args.model)
    people = person_embeddings(image_set, args.photos, args.people, encoder, default_detector())
    genuine, impostor = distances(people)
    rows = [{"threshold": t, "genuine_refused": float(np.mean(genuine > t)),
             "impostor_caught": float(np.mean(impostor > t))} for t in THRESHOLDS]
    print(json.dumps({"model_id": encoder.info.model_id, "people": len(people), "photos": args.photos,
                      "genuine": len(genuine), "impostor": len(impostor),
                      "shipped_threshold": PhotoGate.consistency_threshold, "rows": rows}, indent=2))
    print(f"\n| threshold | genuine photos refused | other person's photo caught |\n|---|---|---|")
    for r in rows:
        print(f"| {r['threshold']:.2f} | {r['genuine_refused']:.1%} | {r['impostor_caught']:.1%} |")
    return 0
