"""Size and memory: model bytes on disk, and process RSS measured in a fresh process.

Each system is measured in its own subprocess (import + load models + one inference)
so that one system's libraries and models do not inflate the other's figure:

    python -m bench.compare.footprint SYSTEM --image IMG [--model encoder.tflite] [--yunet yunet.onnx]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import bench.compare  # noqa: F401  (pins one thread before numpy loads)

REPO_ROOT = Path(__file__).resolve().parents[2]
# command-line name -> name in the report
SYSTEMS = {"python-baseline": "baseline: python + numpy + OpenCV",
           "facegate": "facegate int8",
           "facegate-float": "facegate float",
           "face_recognition": "face_recognition (import + models)",
           "dlib-minimal": "dlib minimal: HOG + 5-point + ResNet",
           "sface": "YuNet + SFace (cv2 + onnxruntime)",
           "mbf": "YuNet + w600k_mbf (cv2 + onnxruntime)"}


def model_files(systems: list) -> dict[str, dict[str, int]]:
    """Bytes of the model files each system loads (its ``files``), by system; plus the
    face_recognition models that its import loads but its pipeline never uses."""
    sizes = {s.name: {Path(p).name: Path(p).stat().st_size for p in s.files.values()} for s in systems}
    if "face_recognition" in sizes:
        import face_recognition_models as frm

        unused = [frm.pose_predictor_model_location(), frm.cnn_face_detector_model_location()]
        sizes["face_recognition (loaded, unused)"] = {Path(p).name: Path(p).stat().st_size for p in unused}
    return sizes


def _rss_mb() -> tuple[float, float]:
    """Current and peak resident set size of this process, in MiB (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _measure(system: str, image_path: Path, model_path: Path | None, yunet: Path | None = None) -> dict:
    """Runs inside the subprocess: import, load, infer once, report RSS."""
    import cv2
    import numpy as np  # noqa: F401

    cv2.setNumThreads(1)
    from daemon.images import load_image

    image = load_image(image_path)
    found = None
    if system in ("facegate", "facegate-float"):
        from bench.compare.systems import FacegateSystem
        found = FacegateSystem.load(system, model_path, use_float=system == "facegate-float").embed_image(image) is not None
    elif system == "face_recognition":
        import face_recognition

        from bench.compare.systems import FaceRecognitionSystem
        found = FaceRecognitionSystem(face_recognition).embed_image(image) is not None
    elif system in ("sface", "mbf"):
        from bench.compare.peers import load_peer
        peer, reason = load_peer(system, yunet)
        if peer is None:
            raise SystemExit(reason)
        found = peer.embed_image(image) is not None
    elif system == "dlib-minimal":
        # Only what this pipeline needs: HOG detector, 5-point predictor, ResNet.
        import dlib
        import face_recognition_models as frm

        from bench.compare.systems import to_rgb
        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        rgb = to_rgb(image)
        boxes = detector(rgb, 1)
        if boxes:
            box = max(boxes, key=lambda b: b.area())
            np.array(encoder.compute_face_descriptor(rgb, predictor(rgb, box), 1))
        found = bool(boxes)
    rss, peak = _rss_mb()
    return {"system": system, "rss_mb": rss, "peak_rss_mb": peak, "face_found": found}


def measure_rss(system: str, image_path: Path, model_path: Path | None = None,
                yunet: Path | None = None, timeout: float = 300) -> dict:
    """RSS of a fresh Python process that imported, loaded and ran ``system`` once."""
    cmd = [sys.executable, "-m", "bench.compare.footprint", system, "--image", str(image_path)]
    if model_path is not None:
        cmd += ["--model", str(model_path)]
    if yunet is not None:
        cmd += ["--yunet", str(yunet)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"system": system, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=list(SYSTEMS))
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--yunet", type=Path, help="YuNet ONNX (the sface and mbf peers)")
    args = parser.parse_args(argv)
    print(json.dumps(_measure(args.system, args.image, args.model, args.yunet)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
