"""Daemon benchmarks (issue targets: >= 60 fps end to end for a 640x480 frame with one
face on one core; match <= 2 ms at 1e5 encodings; RSS <= 150 MB; READY <= 2 s).

    python -m bench daemon [--model daemon/models/encoder.tflite] [--frames 300]
                           [--sizes 100,1000,10000,100000,1000000] [--json OUT]

1. Per-frame latency by stage (capture = JPEG decode of a replayed frame; detect;
   align incl. the quality gate; embed; match; decide) and end-to-end fps, the real
   Service loop, pinned to one core. Then the same loop on an empty doorstep (the
   frames' background, no face), with the door's glance and without it (every frame
   without a tracked face searched whole).
2. Match time against synthetic galleries of 1e2..1e6 unit encodings (5 per person).
3. The daemon as a process (`facegate run`): time from exec to READY=1 (first boot,
   which embeds the gallery photos, and a restart that loads the stored gallery), and
   its resident memory (VmRSS, VmHWM) after a few seconds of running.

Timings are taken here, never in tests.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: BLAS must not spread the match over threads

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path

from bench.machine import cpu_model, report  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "fixtures" / "faces"




def make_frames(folder: Path, count: int = 24, faces: bool = True) -> Path:
    """640x480 frames with one face (an LFW fixture photo enlarged to ~27 % of the width),
    or (``faces=False``) the same background alone: an empty doorstep."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    background = cv2.GaussianBlur(rng.integers(40, 200, (480, 640), np.uint8), (0, 0), 8)
    photos = sorted(FACES.glob("*/*.jpg"))
    for n in range(count):
        frame = background.copy()
        if faces:
            face = cv2.resize(cv2.imread(str(photos[n % len(photos)]), cv2.IMREAD_GRAYSCALE), (420, 420))
            x, y = 60 + (n * 37) % 160, 20 + (n * 13) % 40
            frame[y:y + 420, x:x + 420] = face
        cv2.imwrite(str(folder / f"frame_{n:03d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    return folder


def pipeline(model: str | None, frames_dir: Path, state_dir: Path, n_frames: int, liveness: str = "off",
             detection: dict | None = None) -> dict:
    """The Service loop on replayed frames. The frames' faces are enrolled, so with ``liveness``
    on every face is also checked (still photos never pass: the cost is paid on every frame).
    ``detection``: the config's [detection] table (default: the shipped defaults)."""
    from daemon.config import config_from_dict
    from daemon.door.health import StageTimer
    from daemon.door.service import Service
    from daemon.frames import open_source

    cfg = config_from_dict({
        "device": {"state_dir": str(state_dir)},
        "source": {"kind": "replay", "path": str(frames_dir), "fps": 0.0, "loop": True},
        "model": {"path": model or "", "threads": 1},
        "gallery": {"photos": str(FACES)},
        "liveness": {"mode": liveness},
        "detection": detection or {},
    }, env={})
    frames = open_source("replay", path=frames_dir, fps=1.0, loop=True, realtime=False)
    frames.open()
    timer = StageTimer()
    service = Service(cfg, stdout=io.StringIO(), timer=timer)
    service.start()
    for _ in range(20):  # warm-up
        service.process_frame(frames.read())
    timer.clear()
    searched = dict(service.tracker.searches)
    faces = 0
    started = time.perf_counter()
    for _ in range(n_frames):
        t = time.perf_counter()
        frame = frames.read()
        timer.add("capture", time.perf_counter() - t)
        faces += len(service.process_frame(frame).results)
    elapsed = time.perf_counter() - started
    service.close()
    frames.close()
    return {
        "frames": n_frames, "frame_size": "640x480", "faces_embedded_per_frame": round(faces / n_frames, 2),
        "liveness": liveness,
        "stages_ms": timer.average_ms(),
        "searches": {k: v - searched.get(k, 0) for k, v in service.tracker.searches.items()},
        "per_frame_ms": round(elapsed / n_frames * 1000, 3),
        "fps": round(n_frames / elapsed, 1),
    }


def match_scaling(sizes: list[int], dim: int, threshold: float, queries: int = 200) -> list[dict]:
    from daemon.matching import GalleryIndex, Matcher

    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        matrix_t = rng.standard_normal((dim, size), dtype=np.float32)  # built transposed: no 2x peak at 1e6
        matrix_t /= np.linalg.norm(matrix_t, axis=0, keepdims=True)
        people = max(size // 5, 1)
        row_person = (np.arange(size) * people // size).astype(np.int32)
        index = GalleryIndex(matrix_t=matrix_t, row_person=row_person,
                             person_ids=tuple(f"p{i}" for i in range(people)),
                             names=tuple(f"P{i}" for i in range(people)), model_id="bench")
        matcher = Matcher(index, threshold, 0.05)
        # Half the queries are enrolled faces seen again (the match path), half strangers.
        picks = rng.integers(0, size, queries // 2)
        noisy = matrix_t[:, picks].T + 0.03 * rng.standard_normal((len(picks), dim), dtype=np.float32)
        strangers = rng.standard_normal((queries - len(picks), dim), dtype=np.float32)
        qs = np.concatenate([noisy, strangers])
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        for q in qs[:10]:
            matcher.match(q)
        samples = []
        for q in qs:
            t = time.perf_counter()
            matcher.match(q)
            samples.append((time.perf_counter() - t) * 1000)
        rows.append({"encodings": size, "median_ms": round(float(np.median(samples)), 4),
                     "p95_ms": round(float(np.percentile(samples, 95)), 4),
                     "matrix_mb": round(index.matrix_t.nbytes / 2**20, 1)})
        del matrix_t, index, matcher
    return rows


def _proc_status(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)  # kB -> MB
    return fields


def daemon_process(model: str | None, frames_dir: Path, state_dir: Path, cpu: int, run_s: float,
                   extra_args: tuple[str, ...] = ()) -> dict:
    """Time to READY=1 (first boot and restart) and RSS of `facegate run` as a process."""
    result = {}
    for label in ("first_boot", "restart", "restart_2"):
        sock_path = Path(tempfile.mkdtemp()) / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.settimeout(60)
        args = [sys.executable, "-m", "daemon", "run", "--replay", str(frames_dir), "--loop", "--fps", "30",
                "--gallery-photos", str(FACES), "--state-dir", str(state_dir)]
        if model:
            args += ["--model", model]
        args += list(extra_args)
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "NOTIFY_SOCKET": str(sock_path)},
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        try:
            while not sock.recv(4096).startswith(b"READY=1"):
                pass
            result[f"ready_s_{label}"] = round(time.perf_counter() - started, 3)
            if label == "restart":
                time.sleep(run_s)
                result.update({f"{k}_mb": v for k, v in _proc_status(proc.pid).items()})
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            sock.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench daemon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="encoder .tflite (default: the shipped model)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--sizes", default="100,1000,10000,100000,1000000")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                        help="the one core to run on (default: the highest-numbered)")
    parser.add_argument("--run-s", type=float, default=8.0, help="seconds of running before reading RSS")
    parser.add_argument("--json", metavar="OUT", help="also write the results here")
    args = parser.parse_args(argv)

    os.sched_setaffinity(0, {args.cpu})
    cv2.setNumThreads(1)
    from daemon.embeddings import DEFAULT_MODEL, load_model_info
    model_path = Path(args.model) if args.model else DEFAULT_MODEL
    info = load_model_info(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = make_frames(tmp / "frames")
        empty = make_frames(tmp / "empty", faces=False)
        result = {
            "machine": {"cpu": cpu_model(), "cores_used": 1, "cpu_index": args.cpu,
                        "python": platform.python_version(), "numpy": np.__version__},
            "model": str(model_path), "model_id": info.model_id,
            "command": "python -m bench daemon " + " ".join(argv if argv is not None else sys.argv[1:]),
            "pipeline": pipeline(args.model, frames, tmp / "state-pipeline", args.frames),
            "empty_doorstep": {
                label: pipeline(args.model, empty, tmp / f"state-empty-{label}", args.frames, detection=detection)
                for label, detection in (("glance", None), ("no_glance", {"glance": False}))},
            "match": match_scaling([int(s) for s in args.sizes.split(",")], info.embedding_size, info.threshold),
            "process": daemon_process(args.model, frames, tmp / "state-process", args.cpu, args.run_s),
        }
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
