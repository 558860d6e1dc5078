"""``python -m bench compare``: facegate vs face_recognition (dlib) in one run.

Embeds a folder-per-identity set with facegate (int8 and float) and face_recognition,
scores them with the same code, times them on 640x480 frames on one thread, and
writes results.json, report.md and PNG plots to --out (and optionally the
docs/benchmarks.md section).
"""

from __future__ import annotations

import bench.compare  # noqa: F401  (must come first: pins one thread before numpy loads)

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.compare import footprint, report, scoring, speed
from bench.compare.dataset import ImageSet, load_image_set
from bench.compare.systems import (
    FacegateSystem,
    FaceRecognitionSystem,
    float_model_path,
    import_face_recognition,
)
from daemon.embeddings import DEFAULT_MODEL, load_model_info
from daemon.images import ImageError, load_image
from daemon.runtime import ModelError
from model_build.evaluators.verification import _json_safe as json_safe  # numpy/inf -> JSON

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "docs" / "bench"
DEFAULT_DOCS = REPO_ROOT / "docs" / "benchmarks.md"
TARGETS = {"embedding": 20.0, "end_to_end": 10.0, "size": 20.0}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder-per-identity images (DIR/<person>/<image>)")
    p.add_argument("--pairs", type=Path, help="LFW-format pairs file: enables LFW-protocol accuracy "
                   "and limits the images to the people of --folds")
    p.add_argument("--folds", default="7,8", help="1-based folds of --pairs to evaluate, or 'all' "
                   "(default 7,8: the people the shipped model never saw)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="int8 encoder .tflite; encoder_float.tflite next to it is the float model")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/bench)")
    p.add_argument("--json", type=Path, help="also write the results JSON here ('-' for stdout)")
    p.add_argument("--docs", type=Path, nargs="?", const=DEFAULT_DOCS,
                   help="write/refresh the '## facegate vs face_recognition (dlib)' section of this "
                        "markdown file (default docs/benchmarks.md when given without a path)")
    p.add_argument("--max-people", type=int, help="evaluate at most N people (quick runs)")
    p.add_argument("--limit", type=int, help="evaluate at most about N images, whole people (quick runs)")
    p.add_argument("--no-face-recognition", action="store_true", help="benchmark facegate alone")
    p.add_argument("--seed", type=int, default=0, help="seeds people order, enrolment split and frames")
    p.add_argument("--speed-frames", type=int, default=200, help="640x480 frames for the latency run")
    p.add_argument("--e2e-gallery", type=int, default=100, help="people enrolled while timing whole frames")
    p.add_argument("--gallery-sizes", default=",".join(map(str, speed.GALLERY_SIZES)),
                   help="comma-separated gallery sizes for the matching-time curve")
    p.add_argument("--fr-upsample", type=int, default=1,
                   help="face_recognition HOG upsampling (its default 1 finds faces down to ~40 px)")
    p.add_argument("--no-memory", action="store_true", help="skip the RSS subprocesses")
    return p


def log(msg: str) -> None:
    print(f"[bench compare] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- steps


def load_systems(args) -> tuple[list, FaceRecognitionSystem | None, list[str]]:
    """facegate int8 (+ float when exported) and the optional face_recognition peer."""
    notes = []
    systems = [FacegateSystem.load("facegate int8", args.model)]
    if float_model_path(args.model).is_file():
        systems.append(FacegateSystem.load("facegate float", args.model, use_float=True))
    else:
        notes.append(f"no float model at {float_model_path(args.model)}: facegate float skipped")
    peer = None
    if args.no_face_recognition:
        notes.append("face_recognition skipped (--no-face-recognition): facegate alone")
    else:
        module, reason = import_face_recognition()
        if module is None:
            log(reason + " -- benchmarking facegate alone")
            notes.append(reason + "; facegate benchmarked alone")
        else:
            peer = FaceRecognitionSystem(module, upsample=args.fr_upsample)
            systems.append(peer)
    return systems, peer, notes


def embed_all(systems: list, images: ImageSet) -> tuple[dict[str, np.ndarray], int]:
    """One embedding per image and system (NaN rows where no face was found)."""
    embeddings: dict[str, np.ndarray | None] = {s.name: None for s in systems}
    unreadable, start = 0, time.perf_counter()
    for i, path in enumerate(images.paths):
        try:
            image = load_image(path)
        except ImageError as exc:
            log(f"unreadable image counts as a failure for every system: {exc}")
            unreadable += 1
            image = None
        for system in systems:
            vector = system.embed_image(image) if image is not None else None
            if vector is not None:
                if embeddings[system.name] is None:
                    embeddings[system.name] = np.full((len(images.paths), len(vector)), np.nan)
                embeddings[system.name][i] = vector
        if (i + 1) % 200 == 0 or i + 1 == len(images.paths):
            log(f"embedded {i + 1}/{len(images.paths)} images ({time.perf_counter() - start:.0f} s)")
    for name, emb in embeddings.items():
        if emb is None:  # no face anywhere: every image failed
            embeddings[name] = np.full((len(images.paths), 128), np.nan)
    return embeddings, unreadable


def score_system(emb: np.ndarray, images: ImageSet, split: scoring.OpenSetSplit,
                 pair_subset: np.ndarray) -> tuple[dict, scoring.AllPairs]:
    """Every accuracy figure of one system."""
    failed = int(np.sum(~np.isfinite(emb).all(axis=1)))
    result = {"n_images": len(images.paths), "n_failed": failed, "lfw": None}
    pairs = images.pairs
    if pairs is not None and len(pairs.same):
        result["lfw"] = scoring.lfw_accuracy(emb, pairs.idx_a, pairs.idx_b, pairs.same, pairs.folds)
    all_pairs = scoring.all_pairs_verification(emb[pair_subset], images.labels[pair_subset])
    result["all_pairs"] = all_pairs.summary
    result["open_set"] = scoring.open_set_identification(emb, images.labels, split)
    return result, all_pairs


def speed_frames(images: ImageSet, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    picks = rng.choice(len(images.paths), size=min(n, len(images.paths)), replace=False)
    frames = []
    for i in picks:
        try:
            frames.append(speed.make_frame(load_image(images.paths[i]), rng))
        except ImageError:
            continue
    return frames


def ratio(peer: float | None, ours: float | None) -> float | None:
    return peer / ours if peer and ours else None


def check_targets(results: dict) -> list[dict]:
    """The issue's targets, facegate int8 vs face_recognition, from this run's figures."""
    sp, sizes = results["speed"], results["size"]["files"]
    fg, fr = sp.get("facegate int8"), sp.get("face_recognition")
    emb = ratio(fr and fr["per_face_embedding"]["median_ms"], fg and fg["per_face_embedding"]["median_ms"])
    e2e = ratio(fr and fr["end_to_end"]["median_ms"], fg and fg["end_to_end"]["median_ms"])
    size = ratio(sum(sizes["face_recognition"].values()) if "face_recognition" in sizes else None,
                 sum(sizes["facegate int8"].values()))

    def row(name, target, value, detail=""):
        measured = f"{value:.1f}×{detail}" if value else "n/a (no face_recognition)"
        return {"name": name, "target": f"≥ {target:g}×", "measured": measured, "ratio": value,
                "met": None if value is None else bool(value >= target)}

    rows = [row("per-face embedding faster (median)", TARGETS["embedding"], emb,
                f" ({fr['per_face_embedding']['median_ms']:.1f} vs {fg['per_face_embedding']['median_ms']:.2f} ms)"
                if emb else ""),
            row("end-to-end per frame faster (median)", TARGETS["end_to_end"], e2e,
                f" ({fr['end_to_end']['median_ms']:.1f} vs {fg['end_to_end']['median_ms']:.2f} ms)" if e2e else ""),
            row("model smaller on disk", TARGETS["size"], size)]
    acc = results["accuracy"]
    if "face_recognition" in acc and acc["facegate int8"].get("lfw") and acc["face_recognition"].get("lfw"):
        ours, theirs = acc["facegate int8"]["lfw"]["accuracy_mean"], acc["face_recognition"]["lfw"]["accuracy_mean"]
        rows.append({"name": "LFW-protocol accuracy gap (as close as possible)", "target": "≈ 0",
                     "measured": f"{100 * (ours - theirs):+.2f} points ({ours:.4f} vs {theirs:.4f})",
                     "ratio": None, "met": None})
    return rows


# ----------------------------------------------------------------- main


def score_accuracy(systems: list, embeddings: dict, images: ImageSet,
                   rng: np.random.Generator) -> tuple[dict, dict, dict, list[str]]:
    """Accuracy of every system on the same open-set split and pair subset.

    Returns (figures by system, ROC curves, ROC operating points, notes)."""
    notes = []
    split = scoring.split_open_set(images.labels, rng)
    pair_subset = scoring.subsample_for_all_pairs(len(images.paths), rng)
    if len(pair_subset) < len(images.paths):
        notes.append(f"all-vs-all pairs scored on a seeded subsample of {len(pair_subset)} images")
    accuracy, curves, points = {}, {}, {}
    for system in systems:
        accuracy[system.name], all_pairs = score_system(embeddings[system.name], images, split, pair_subset)
        if all_pairs.far is not None:
            curves[system.name] = (all_pairs.far, all_pairs.tar)
            points[system.name] = [(r["achieved_far"], r["tar"], f"FAR {report.fmt_far(r['far'])}")
                                   for r in all_pairs.summary["tar_at_far"]]
    return accuracy, curves, points, notes


def measure_memory(systems: list, peer, image: Path, model: Path) -> dict:
    """RSS of each system, each in a fresh process."""
    names = ["python-baseline", "facegate"]
    names += ["facegate-float"] if any(s.name == "facegate float" for s in systems) else []
    names += ["face_recognition", "dlib-minimal"] if peer is not None else []
    return {footprint.SYSTEMS[name]: footprint.measure_rss(name, image, model) for name in names}


def method_notes(args, info, peer) -> list[str]:
    """How each system was run, for the reader of the report."""
    notes = [f"facegate: BlazeFace short-range detector, similarity alignment on 4 landmarks "
             f"to a {info.input_size}×{info.input_size} grayscale crop, the int8 (or float) "
             "encoder via LiteRT, the daemon's Matcher. Both systems pick the largest face.",
             "Speed frames: an image of the set pasted at a random spot of a 640×480 random "
             "background, one face each; everything on one thread."]
    if peer is not None:
        notes += [f"face_recognition with its defaults: HOG detector upsampled {args.fr_upsample}×, "
                  "5-point landmarks, 1 jitter, match tolerance 0.6.",
                  "dlib's HOG detector is compiled into dlib (no model file). `import "
                  "face_recognition` also loads the 68-point predictor and the CNN detector, "
                  "which this pipeline never uses; 'dlib minimal' is a process that loads only "
                  "the three parts used."]
    if info.metadata.get("note"):
        notes.append(f"model note: {info.metadata['note']}")
    return notes


def run(args) -> tuple[dict, dict, dict]:
    """Measure everything; returns (results, ROC curves, ROC operating points)."""
    cv2.setNumThreads(1)
    machine = report.machine()  # before the run, so the load average is the background load
    info = load_model_info(args.model)
    images, folds = load_image_set(args.data, args.pairs, args.folds, args.max_people, args.limit, args.seed)
    if len(images.paths) < 2:
        raise ValueError(f"{args.data}: need at least 2 images to benchmark, found {len(images.paths)}")
    log(f"{len(images.paths)} images of {images.n_people} people"
        + (f", {len(images.pairs.same)} pairs in folds {folds}" if images.pairs else ""))
    systems, peer, notes = load_systems(args)
    if images.pairs is not None and images.pairs.n_dropped:
        notes.append(f"{images.pairs.n_dropped} pairs of folds {folds} skipped: their images are "
                     "not evaluated (--max-people/--limit) or missing")
    rng = np.random.default_rng(args.seed)

    embeddings, unreadable = embed_all(systems, images)
    if unreadable:
        notes.append(f"{unreadable} unreadable images count as failures for every system")
    accuracy, curves, points, accuracy_notes = score_accuracy(systems, embeddings, images, rng)

    log(f"timing {args.speed_frames} frames of 640x480 per system")
    frames = speed_frames(images, args.speed_frames, rng)
    gallery = speed.random_unit_vectors(args.e2e_gallery, info.embedding_size, rng)
    speed_results = {s.name: speed.time_frames(s, frames, gallery) for s in systems}
    sizes = [int(x) for x in args.gallery_sizes.split(",") if x.strip()]
    log(f"timing matching against galleries of {sizes}")
    matching = speed.time_matching(systems[0], peer, sizes, rng, info.embedding_size)
    memory = {}
    if not args.no_memory:
        log("measuring RSS in fresh processes")
        memory = measure_memory(systems, peer, images.paths[0], args.model)

    results = {
        "meta": {
            "date": report.now_utc(),
            "command": "python -m bench compare " + shlex.join(args.argv),
            "machine": machine,
            "versions": report.versions(),
            "data": {"root": str(args.data), "pairs": str(args.pairs) if args.pairs else None,
                     "folds": folds, "n_images": len(images.paths), "n_people": images.n_people,
                     "seed": args.seed},
            "model": {"path": str(args.model), "model_id": info.model_id, "threshold": info.threshold},
            "speed": {"frames": len(frames), "frame_size": list(speed.FRAME_SIZE),
                      "e2e_gallery_size": args.e2e_gallery},
        },
        "notes": notes + accuracy_notes + method_notes(args, info, peer),
        "accuracy": accuracy,
        "speed": speed_results,
        "matching": matching,
        "size": {"files": footprint.model_files(args.model, with_peer=peer is not None)},
        "memory": memory,
    }
    results["targets"] = check_targets(results)
    return results, curves, points


def write_outputs(args, results: dict, curves: dict, points: dict) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if curves:
        report.plot_roc(curves, points, out / "roc.png")
    report.plot_latency(results["speed"], out / "latency.png")
    report.plot_matching(results["matching"], out / "matching.png")
    text = json.dumps(json_safe(results), indent=2, allow_nan=False) + "\n"
    (out / "results.json").write_text(text, encoding="utf-8")
    (out / "report.md").write_text(report.render_section(results, "") + "\n", encoding="utf-8")
    if args.json:
        if str(args.json) == "-":
            sys.stdout.write(text)
        else:
            args.json.write_text(text, encoding="utf-8")
    if args.docs:
        rel = os.path.relpath(out.resolve(), args.docs.resolve().parent)
        report.write_docs_section(args.docs, report.render_section(results, Path(rel).as_posix()))
        log(f"updated the '{report.SECTION_TITLE}' section of {args.docs}")
    log(f"wrote {out}/results.json, report.md and plots")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        results, curves, points = run(args)
    except (ModelError, ValueError, FileNotFoundError) as exc:
        log(f"error: {exc}")
        return 2
    write_outputs(args, results, curves, points)
    for row in results["targets"]:
        log(f"target {row['name']}: {row['measured']} (wanted {row['target'].strip()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
