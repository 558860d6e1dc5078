"""Liveness benchmarks (issue 11). Figures in docs/security.md and docs/benchmarks.md.

    python -m bench liveness --data ../shared/data/liveness --pad-folds 'runs/pad-loso-{subject}' \\
        --cross runs/pad-nuaa-to-msu runs/pad-msu-to-nuaa --json docs/bench/liveness.json

1. eyes: eye aspect ratio of still faces with open and closed eyes (where the blink
   thresholds come from): ROC AUC and the threshold at 1 % false "closed" on open eyes,
   for the iris-refined EAR (mean of both eyes, and "both eyes closed") and the plain mesh.
2. passive, frame level: the PAD network on every NUAA frame, each subject scored by the
   model trained without that subject (``--pad-folds``), plus the cross-dataset runs.
3. presentation level: every NUAA sequence (real / print attack) played through each
   mode's cues with the daemon's own judges and window: does the cue ever pass?
   APCER, BPCER, ACER per cue and combined; matching plays no part here.
4. door level: the real Service, with the shipped encoder, replays every NUAA sequence
   with all seven subjects enrolled (one real frame each): unlock rate of real and
   print-attack sequences, TUR, and the seconds liveness adds to an unlock.
5. cost: milliseconds per face of each cue, end-to-end fps with liveness on
   (bench.daemon_bench's pipeline), and `facegate run`'s READY time and memory per mode
   (``memory``), pinned to one core.
6. rigidity (the optional geometric cue, not shipped): how far consecutive face-mesh
   point sets are from one homography (a moved flat print should be close, a real head
   not), real vs print.
7. window: the door-level replay again with other liveness windows (``--windows``).

NUAA frames are timed by their picture number at 20 fps (the capture rate in Tan et al.).
Timings are taken here, never in tests.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.machine import cpu_model, report  # noqa: E402
from daemon.frames import Frame  # noqa: E402

NUAA_FPS = 20.0
MODES = ("off", "blink", "passive", "both")
# Soukupová & Čech's six points on the plain 468-point mesh: (p1, p2, p3, p4, p5, p6) per eye.
MESH_EAR_POINTS = ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380))


# ---------------------------------------------------------------- replaying a timed sequence

class SequenceClock:
    """A monotonic clock that a replay moves to each frame's capture time."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class TimedFrames:
    """A FrameSource playing (seconds, image) pairs; read() moves the clock to the frame's time,
    so the daemon sees the sequence's real timing however fast it is processed."""

    def __init__(self, frames: list[tuple[float, np.ndarray]], clock: SequenceClock, name: str = "sequence"):
        self.frames, self.clock, self.name, self._i = list(frames), clock, name, 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self._i >= len(self.frames):
            return None
        t, image = self.frames[self._i]
        self._i += 1
        self.clock.t = t
        return Frame(image=image, index=self._i, timestamp=t, source=self.name)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- the data

def nuaa_sequences(root: Path) -> dict[tuple[bool, str], list]:
    """(live, sequence) -> samples in picture order."""
    from model_build.liveness.data import list_samples
    seqs = defaultdict(list)
    for s in list_samples(root, ("nuaa",)):
        seqs[(s.live, s.sequence)].append(s)
    return {k: sorted(v, key=lambda s: s.frame) for k, v in sorted(seqs.items())}


def largest_face(detector, image):
    faces = detector.detect(image)
    return max(faces, key=lambda f: f.width * f.height) if faces else None


# ---------------------------------------------------------------- 1. eyes

def mesh_ear(mesh: np.ndarray) -> float:
    ears = []
    for p1, p2, p3, p4, p5, p6 in MESH_EAR_POINTS:
        m = mesh
        ears.append((np.linalg.norm(m[p2] - m[p6]) + np.linalg.norm(m[p3] - m[p5]))
                    / (2 * max(np.linalg.norm(m[p1] - m[p4]), 1e-6)))
    return float(np.mean(ears))


def _auc(higher, lower) -> float:
    from model_build.evaluators.verification import roc_auc, roc_curve
    values = np.concatenate([higher, lower])
    positive = np.concatenate([np.ones(len(higher), bool), np.zeros(len(lower), bool)])
    return roc_auc(*roc_curve(-values, positive)[:2])


def eyes_section(root: Path, detector, closed_ear: float) -> dict:
    from daemon.liveness.blink import eye_value
    from daemon.liveness.eyes import EyeLandmarker
    landmarker = EyeLandmarker()
    values = {}
    for kind in ("open", "closed"):
        rows = []
        for path in sorted((root / "eyes" / kind).glob("*.jpg")):
            image = cv2.imread(str(path))
            pad = max(image.shape[:2]) // 2  # these are tight crops: give the detector a margin
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
            face = largest_face(detector, image)
            if face is None:
                continue
            r = landmarker.read(image, face.box, face.landmarks[0], face.landmarks[1])
            rows.append((r.ear, eye_value(r.ear_right, r.ear_left), mesh_ear(r.mesh)))
        values[kind] = np.array(rows)
    out = {"images": {k: int(len(v)) for k, v in values.items()}}
    for i, name in enumerate(("iris_mean_of_both_eyes", "iris_both_eyes_closed", "plain_mesh")):
        o, c = values["open"][:, i], values["closed"][:, i]
        t = float(np.percentile(o, 1))
        out[name] = {"auc": round(_auc(o, c), 4), "threshold_at_1pct_open_flagged": round(t, 4),
                     "closed_caught_at_that_threshold": round(float(np.mean(c < t)), 4)}
    o, c = values["open"][:, 1], values["closed"][:, 1]
    out["configured"] = {"closed_ear": closed_ear, "open_flagged_closed": round(float(np.mean(o <= closed_ear)), 4),
                         "closed_caught": round(float(np.mean(c <= closed_ear)), 4)}
    return out


# ---------------------------------------------------------------- 2./3. per-frame readings and presentations

def nuaa_readings(root: Path, seqs, detector, fold_model) -> dict:
    """Per frame of every sequence: time, blink value, live probability (the subject's fold model)."""
    from daemon.config import LivenessConfig
    from daemon.liveness.blink import BlinkCue, BlinkThresholds
    from daemon.liveness.cue import FacePoints
    from daemon.liveness.passive import PadModel, PassiveCue
    from model_build.liveness.data import load_frame
    defaults = LivenessConfig()
    blink = BlinkCue(BlinkThresholds.from_config(defaults))
    passive = {}
    out = {}
    for key, samples in seqs.items():
        subject = samples[0].subject
        if subject not in passive:
            passive[subject] = PassiveCue(PadModel(fold_model(subject)), min_frames=defaults.passive_min_frames)
        rows = []
        for s in samples:
            image = load_frame(root, s)
            face = largest_face(detector, image)
            if face is None:
                rows.append((s.frame / NUAA_FPS, None, None))
                continue
            points = FacePoints.of(face)
            rows.append((s.frame / NUAA_FPS, blink.measure(image, points), passive[subject].measure(image, points)))
        out[key] = rows
    return out


def ever_passes(rows, cues: tuple[str, ...], window_s: float, settings) -> bool:
    """Would the daemon's judges pass this presentation at some frame? (No matching involved.)"""
    from daemon.liveness.blink import find_blink
    from daemon.liveness.cue import Reading
    from daemon.liveness.passive import judge_live_probabilities
    for i, (now, _, _) in enumerate(rows):
        window = [r for r in rows[: i + 1] if r[0] >= now - window_s]
        ok = True
        if "blink" in cues:
            ok &= find_blink([Reading(t, b) for t, b, _ in window if b is not None], settings["blink"]).passed
        if "passive" in cues:
            ok &= judge_live_probabilities([Reading(t, p) for t, _, p in window if p is not None],
                                           settings["passive_threshold"], settings["passive_min_frames"]).passed
        if ok:
            return True
    return False


def operating_points(readings: dict, window_s: float, settings, target_apcer: float = 0.01) -> dict:
    """BPCER at APCER <= target for each single cue, sweeping its threshold (presentation level)."""
    from dataclasses import replace

    from model_build.evaluators.pad import pad_errors
    live = np.array([k[0] for k in readings])
    sweeps = {"blink": ("blink_closed_ear", np.round(np.arange(0.08, 0.205, 0.005), 3),
                        lambda t: {**settings, "blink": replace(settings["blink"], closed_ear=float(t))}),
              "passive": ("passive_threshold", np.round(np.arange(0.05, 0.96, 0.05), 2),
                          lambda t: {**settings, "passive_threshold": float(t)})}
    out = {}
    for cue, (key, thresholds, with_threshold) in sweeps.items():
        rows = []
        for t in thresholds:
            passed = np.array([ever_passes(r, (cue,), window_s, with_threshold(t)) for r in readings.values()])
            e = pad_errors(passed.astype(float), live, 0.5)
            rows.append({key: float(t), "apcer": round(e.apcer, 4), "bpcer": round(e.bpcer, 4)})
        ok = [r for r in rows if r["apcer"] <= target_apcer]
        out[cue] = {"target_apcer": target_apcer, "best": min(ok, key=lambda r: r["bpcer"]) if ok else None,
                    "sweep": rows}
    return out


def presentation_section(readings: dict, window_s: float, settings) -> dict:
    from daemon.liveness.policy import MODES as CUES
    from model_build.evaluators.pad import pad_errors
    closed = settings["blink"].closed_ear
    out = {"frames_read_closed": {
        name: {"closed": sum(b is not None and b <= closed for k, rows in readings.items() if k[0] == live
                             for _, b, _ in rows),
               "frames": sum(b is not None for k, rows in readings.items() if k[0] == live for _, b, _ in rows)}
        for live, name in ((True, "real"), (False, "print_attack"))}}
    for mode in ("blink", "passive", "both"):
        passed = np.array([ever_passes(rows, CUES[mode], window_s, settings) for rows in readings.values()])
        live = np.array([k[0] for k in readings])
        e = pad_errors(passed.astype(float), live, 0.5, np.where(live, "", "print").astype(object))
        out[mode] = {**e.to_dict(), "bona_fide_sequences_passed": int(passed[live].sum()),
                     "attack_sequences_passed": int(passed[~live].sum()),
                     "attack_sequences_that_passed": [k[1] for k, p in zip(readings, passed) if p and not k[0]]}
    return out


def frame_passive_section(readings: dict, threshold: float) -> dict:
    from model_build.evaluators.pad import pad_summary
    scores, live = [], []
    for (is_live, _), rows in readings.items():
        for _, _, p in rows:
            if p is not None:
                scores.append(p)
                live.append(is_live)
    live = np.array(live)
    return pad_summary(np.array(scores), live, threshold, np.where(live, "", "print").astype(object))


def cross_section(run_dirs: list[str]) -> dict:
    out = {}
    for run in run_dirs:
        run_report = json.loads((Path(run) / "report.json").read_text())
        out[Path(run).name] = {"train": run_report["training"]["train"],
                               "train_samples": run_report["training"]["train_samples"],
                               "test": run_report.get("test", {})}
    return out


# ---------------------------------------------------------------- 4. door level

def door_section(root: Path, seqs, encoder, detector, fold_model, modes, window_s: float, work: Path) -> dict:
    from daemon.config import config_from_dict
    from daemon.liveness.policy import MODES as CUES
    from daemon.matching import MATCH
    from daemon.door.service import Service
    from model_build.liveness.data import load_frame

    # Everyone enrolled from one real frame: the first of their first real session, which
    # is then left out of the replay.
    photos = work / "photos"
    enrolled = {}
    for (live, _), samples in seqs.items():
        subject = samples[0].subject
        if live and subject not in enrolled:
            enrolled[subject] = samples[0].path
            (photos / subject).mkdir(parents=True, exist_ok=True)
            shutil.copy(root / samples[0].path, photos / subject / "enroll.jpg")
    frames = {key: [(s.frame / NUAA_FPS, load_frame(root, s)) for s in samples if s.path not in enrolled.values()]
              for key, samples in seqs.items()}
    results = {}
    for mode in modes:
        rows = []
        for (live, sequence), seq_frames in frames.items():
            subject = sequence.split("_")[0]
            liveness = {"mode": mode, "window_s": window_s}
            if "passive" in CUES[mode]:
                liveness["passive_model"] = str(fold_model(subject))
            cfg = config_from_dict({"device": {"state_dir": str(work / f"state-{mode}")},
                                    "gallery": {"photos": str(photos)}, "liveness": liveness}, env={})
            clock = SequenceClock(seq_frames[0][0])
            replay = TimedFrames(seq_frames, clock)
            service = Service(cfg, source=replay, encoder=encoder, detector=detector, stdout=io.StringIO(),
                              clock=clock)
            service.start()  # opens the replay
            unlocked_at, others, matched = None, set(), 0
            while (frame := replay.read()) is not None:
                outcome = service.process_frame(frame)
                matched += any(r.status == MATCH and r.person_id == subject for r in outcome.results)
                for e in outcome.events:
                    if e["event"] == "unlock" and e["person_id"] == subject and unlocked_at is None:
                        unlocked_at = clock.t - seq_frames[0][0]
                    elif e["event"] == "unlock" and e["person_id"] != subject:
                        others.add(e["person_id"])
            service.close()
            rows.append({"sequence": sequence, "live": live, "frames": len(seq_frames), "matched_frames": matched,
                         "seconds": round(seq_frames[-1][0] - seq_frames[0][0], 2),
                         "unlocked_after_s": None if unlocked_at is None else round(unlocked_at, 2),
                         "wrong_person_unlocked": sorted(others)})
        results[mode] = rows
    return {"enrolled_from": enrolled, "per_mode": {m: summarize_door(rows, results.get("off")) for m, rows in
                                                    results.items()},
            "sequences": results}


def summarize_door(rows: list[dict], off_rows: list[dict] | None) -> dict:
    real = [r for r in rows if r["live"]]
    attack = [r for r in rows if not r["live"]]
    unlock_s = [r["unlocked_after_s"] for r in real if r["unlocked_after_s"] is not None]
    out = {"real_sequences": len(real), "real_unlocked": sum(r["unlocked_after_s"] is not None for r in real),
           "attack_sequences": len(attack),
           "attack_unlocked": sum(r["unlocked_after_s"] is not None for r in attack),
           "attack_sequences_unlocked": [r["sequence"] for r in attack if r["unlocked_after_s"] is not None],
           "wrong_person_unlocks": sum(bool(r["wrong_person_unlocked"]) for r in rows),
           "median_seconds_to_unlock_real": round(float(np.median(unlock_s)), 2) if unlock_s else None,
           "subjects_unlocked_real": sorted({r["sequence"][:4] for r in real if r["unlocked_after_s"] is not None}),
           "subjects_unlocked_by_print": sorted({r["sequence"][:4] for r in attack
                                                 if r["unlocked_after_s"] is not None})}
    out["tur"] = round(out["real_unlocked"] / max(len(real), 1), 4)
    out["attack_unlock_rate"] = round(out["attack_unlocked"] / max(len(attack), 1), 4)
    if off_rows is not None:
        off = {r["sequence"]: r["unlocked_after_s"] for r in off_rows if r["live"]}
        added = [r["unlocked_after_s"] - off[r["sequence"]] for r in real
                 if r["unlocked_after_s"] is not None and off.get(r["sequence"]) is not None]
        out["added_seconds_median"] = round(float(np.median(added)), 2) if added else None
        out["added_seconds_max"] = round(float(np.max(added)), 2) if added else None
    return out


# ---------------------------------------------------------------- 6. rigidity

def homography_residual(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance of mesh points b from a's points under the best homography a -> b, in
    inter-ocular distances: 0 for any motion of a flat picture, more for a 3-D head that turns."""
    h, _ = cv2.findHomography(a.astype(np.float64), b.astype(np.float64), 0)
    if h is None:
        return float("nan")
    mapped = cv2.perspectiveTransform(a[None].astype(np.float64), h)[0]
    return float(np.sqrt(np.mean(np.sum((mapped - b) ** 2, axis=1))) / np.linalg.norm(b[33] - b[263]))


def rigidity_section(root: Path, seqs, detector) -> dict:
    from daemon.liveness.eyes import EyeLandmarker
    from model_build.liveness.data import load_frame
    landmarker = EyeLandmarker()
    pairs = {True: [], False: []}
    per_sequence = {True: [], False: []}
    for (live, _), samples in seqs.items():
        meshes = []
        for s in samples:
            image = load_frame(root, s)
            face = largest_face(detector, image)
            if face is not None:
                meshes.append(landmarker.read(image, face.box, face.landmarks[0], face.landmarks[1]).mesh)
        residuals = [homography_residual(a, b) for a, b in zip(meshes, meshes[1:])]
        pairs[live] += residuals
        if residuals:
            per_sequence[live].append(float(np.percentile(residuals, 90)))
    out = {}
    for live, name in ((True, "real"), (False, "print_attack")):
        out[name] = {"frame_pairs": len(pairs[live]),
                     "residual_percentiles_10_50_90": [round(float(v), 4) for v in
                                                       np.percentile(pairs[live], [10, 50, 90])],
                     "sequence_p90_median": round(float(np.median(per_sequence[live])), 4)}
    out["auc_frame_pairs"] = round(_auc(np.array(pairs[True]), np.array(pairs[False])), 4)
    out["auc_sequences"] = round(_auc(np.array(per_sequence[True]), np.array(per_sequence[False])), 4)
    return out


# ---------------------------------------------------------------- 5. cost

def cost_section(root: Path, seqs, detector, pad_model: Path, n: int) -> dict:
    from daemon.config import LivenessConfig
    from daemon.liveness.blink import BlinkCue, BlinkThresholds
    from daemon.liveness.cue import FacePoints
    from daemon.liveness.passive import PadModel, PassiveCue
    from model_build.liveness.data import load_frame
    defaults = LivenessConfig()
    cues = {"blink": BlinkCue(BlinkThresholds.from_config(defaults)),
            "passive": PassiveCue(PadModel(pad_model), min_frames=defaults.passive_min_frames)}
    faces = []
    for samples in seqs.values():
        for s in samples[:: max(1, len(samples) // 4)]:
            image = load_frame(root, s)
            face = largest_face(detector, image)
            if face is not None:
                faces.append((image, FacePoints.of(face)))
    out = {}
    for name, cue in cues.items():
        for image, face in faces[:5]:
            cue.measure(image, face)  # warm-up
        samples_ms = []
        for i in range(n):
            image, face = faces[i % len(faces)]
            t = time.perf_counter()
            cue.measure(image, face)
            samples_ms.append((time.perf_counter() - t) * 1000)
        out[name] = {"median_ms": round(float(np.median(samples_ms)), 3),
                     "p95_ms": round(float(np.percentile(samples_ms, 95)), 3), "faces_timed": n}
    return out


def fps_section(frames: int) -> dict:
    from bench.daemon_bench import make_frames, pipeline
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_frames(Path(tmp) / "frames")
        for mode in MODES:
            out[mode] = pipeline(None, folder, Path(tmp) / f"state-{mode}", frames, liveness=mode)
    return out


def memory_section(cpu: int, run_s: float = 8.0) -> dict:
    """`facegate run` as a process per mode: READY time and resident memory (the liveness
    models load at start)."""
    from bench.daemon_bench import daemon_process, make_frames
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_frames(Path(tmp) / "frames")
        for mode in MODES:
            out[mode] = daemon_process(None, folder, Path(tmp) / f"state-{mode}", cpu, run_s, ("--liveness", mode))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench liveness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the liveness data folder")
    parser.add_argument("--pad-folds", required=True,
                        help="run-dir pattern of the leave-one-subject-out PAD models, with {subject}")
    parser.add_argument("--cross", nargs="*", default=[], help="cross-dataset train-liveness run dirs")
    parser.add_argument("--sections", default="eyes,passive,presentation,door,window,rigidity,cost,fps,memory")
    parser.add_argument("--modes", default=",".join(MODES), help="door-level modes to replay")
    parser.add_argument("--windows", default="3,8,10", help="other liveness windows for the door-level replay")
    parser.add_argument("--frames", type=int, default=300, help="frames per end-to-end fps run")
    parser.add_argument("--cost-faces", type=int, default=300)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    os.sched_setaffinity(0, {args.cpu})
    cv2.setNumThreads(1)
    from daemon.config import LivenessConfig
    from daemon.embeddings import load_encoder
    from daemon.faces.detect import FaceDetector
    from daemon.liveness.blink import BlinkThresholds
    from daemon.liveness.passive import PadInfo

    root = Path(args.data)
    sections = set(args.sections.split(","))
    defaults = LivenessConfig()

    def fold_model(subject: str) -> Path:
        return Path(args.pad_folds.format(subject=subject)) / "liveness_pad.tflite"

    detector = FaceDetector()
    seqs = nuaa_sequences(root)
    needs_pad = bool(sections & {"passive", "presentation", "cost"}) or (
        bool(sections & {"door", "window"}) and bool({"passive", "both"} & set(args.modes.split(","))))
    # The folds all carry the threshold train-liveness was given; the config's wins when set.
    threshold = defaults.passive_threshold or (PadInfo.load(fold_model("0001")).threshold if needs_pad else None)
    settings = {"blink": BlinkThresholds.from_config(defaults),
                "passive_threshold": threshold, "passive_min_frames": defaults.passive_min_frames}
    result = {"machine": {"cpu": cpu_model(), "cores_used": 1, "cpu_index": args.cpu,
                          "python": platform.python_version(),
                          "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
              "command": "python -m bench liveness " + " ".join(argv if argv is not None else sys.argv[1:]),
              "settings": {"window_s": defaults.window_s, "blink_closed_ear": defaults.blink_closed_ear,
                           "blink_open_ear": defaults.blink_open_ear, "passive_threshold": threshold,
                           "passive_min_frames": defaults.passive_min_frames, "nuaa_fps": NUAA_FPS},
              "sequences": {"real": sum(k[0] for k in seqs), "print_attack": sum(not k[0] for k in seqs)}}
    if "eyes" in sections:
        result["eyes"] = eyes_section(root, detector, defaults.blink_closed_ear)
    if sections & {"passive", "presentation"}:
        readings = nuaa_readings(root, seqs, detector, fold_model)
        result["passive_frames_leave_one_subject_out"] = frame_passive_section(readings, threshold)
        result["passive_cross_dataset"] = cross_section(args.cross)
        result["presentations"] = presentation_section(readings, defaults.window_s, settings)
        result["presentations"]["bpcer_at_apcer"] = operating_points(readings, defaults.window_s, settings)
    if "door" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            result["door"] = door_section(root, seqs, load_encoder(None), detector, fold_model, args.modes.split(","),
                                          defaults.window_s, Path(tmp))
    if "window" in sections:
        result["door_by_window"] = {}
        for w in (float(x) for x in args.windows.split(",") if x):
            with tempfile.TemporaryDirectory() as tmp:
                door = door_section(root, seqs, load_encoder(None), detector, fold_model,
                                    args.modes.split(","), w, Path(tmp))
            result["door_by_window"][str(w)] = door["per_mode"]
            if "presentations" in result:
                result["door_by_window"][str(w)]["presentations"] = presentation_section(readings, w, settings)
    if "rigidity" in sections:
        result["rigidity"] = rigidity_section(root, seqs, detector)
    if "cost" in sections:
        result["cost_per_face"] = cost_section(root, seqs, detector, fold_model("0001"), args.cost_faces)
    if "fps" in sections:
        result["end_to_end"] = fps_section(args.frames)
    if "memory" in sections:
        result["process"] = memory_section(args.cpu)
    report(result, args.json, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
