"""Encoder size and per-face latency on one core (issue targets: int8 <= 1.5 MB,
embedding <= 2 ms per face with ai-edge-litert).

    python -m bench model [--model daemon/models/encoder.tflite] [--runs 500] [--json]

Timings are taken here, never in tests: a loaded CI machine would make them flaky.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.compare.systems import float_model_path, load_float_encoder  # noqa: E402
from bench.machine import cpu_model  # noqa: E402

from daemon.embeddings import DEFAULT_MODEL, load_encoder  # noqa: E402
from daemon.faces.align import align_face, prepare_faces, to_gray  # noqa: E402
from daemon.faces.detect import DETECTOR_PATH, FaceDetector  # noqa: E402
from daemon.faces.track import region_around  # noqa: E402
from daemon.images import load_image  # noqa: E402

FACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "faces"


def _timed(fn, runs: int) -> dict:
    for _ in range(min(20, runs)):
        fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(float(np.median(samples)), 3),
            "p95_ms": round(float(np.percentile(samples, 95)), 3)}




def run(model: Path, runs: int) -> dict:
    cv2.setNumThreads(1)
    encoder = load_encoder(model, num_threads=1)
    detector = FaceDetector(num_threads=1)
    image = load_image(sorted(FACES.glob("*/*.jpg"))[0])
    frame = np.zeros((480, 640), np.uint8)
    frame[115:365, 195:445] = image  # one LFW face in a 640x480 frame
    aligned = prepare_faces(frame, detector, encoder.info.input_size, max_faces=1).aligned[0]
    face, crop = aligned.face, aligned.crop
    result = {
        "machine": {"cpu": cpu_model(), "cores_used": 1, "python": platform.python_version()},
        "model": str(model), "model_id": encoder.info.model_id,
        "int8_bytes": model.stat().st_size,
        "detector_bytes": DETECTOR_PATH.stat().st_size,
        "embed_int8": _timed(lambda: encoder.embed(crop), runs),
        "detect_640x480": _timed(lambda: detector.detect(frame), runs),
        # the door's steady state: the region around the face of the previous frame
        "detect_tracked": _timed(lambda: detector.detect(frame, region_around([face], frame.shape)), runs),
        "align": _timed(lambda: align_face(to_gray(frame), face, encoder.info.input_size), runs),
    }
    float_path = float_model_path(model)
    if float_path.is_file():
        float_encoder = load_float_encoder(model)
        result["float_bytes"] = float_path.stat().st_size
        result["embed_float"] = _timed(lambda: float_encoder.embed(crop), runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = run(args.model, args.runs)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"CPU: {r['machine']['cpu']} (1 thread)")
    print(f"int8 encoder: {r['int8_bytes'] / 1e6:.3f} MB, embed median {r['embed_int8']['median_ms']} ms "
          f"(p95 {r['embed_int8']['p95_ms']} ms)")
    if "embed_float" in r:
        print(f"float encoder: {r['float_bytes'] / 1e6:.3f} MB, embed median {r['embed_float']['median_ms']} ms")
    print(f"detector: {r['detector_bytes'] / 1e6:.3f} MB, 640x480 median {r['detect_640x480']['median_ms']} ms, "
          f"tracked region median {r['detect_tracked']['median_ms']} ms; align median {r['align']['median_ms']} ms")


if __name__ == "__main__":
    main()
