"""``python -m bench <command> [options]``: facegate's benchmark harnesses.

Commands:
    compare   facegate vs face_recognition (dlib), YuNet + SFace and YuNet + w600k_mbf:
              accuracy, speed and size in one run (``python -m bench compare --help``)
    detectors face detectors for the door: detection rate and ms per 640x480 frame
              (``python -m bench detectors --help``)
    consistency  the enrollment consistency threshold of a model (bench/consistency_bench.py)
    daemon    the daemon's own benchmarks (bench/daemon_bench.py)
    liveness  blink and PAD cues: APCER/BPCER, door-level replay, cost (bench/liveness_bench.py)
    manifest  site manifest size at 1e2..1e5 people (bench/manifest_bench.py)
    model     encoder size and per-face latency (bench/model_bench.py)
    tracking  crops of a tracked-region search vs the whole frame's (bench/tracking_bench.py)

Other harnesses plug in as ``bench/<command>_bench.py`` with a ``main(argv)`` or
``main()`` function (the latter reads ``sys.argv``, which is set to its own options).
Nothing heavy is imported here: ``bench.compare`` must pin the thread counts before
numpy, OpenCV or dlib are loaded.
"""

from __future__ import annotations

import importlib
import inspect
import sys

COMMANDS = {"compare": "bench.compare.cli", "detectors": "bench.detectors.cli", "daemon": "bench.daemon_bench",
            "liveness": "bench.liveness_bench", "model": "bench.model_bench"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    module_name = COMMANDS.get(command, f"bench.{command}_bench")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"unknown bench command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    sys.argv = [f"python -m bench {command}", *rest]
    takes_argv = bool(inspect.signature(module.main).parameters)
    return int((module.main(rest) if takes_argv else module.main()) or 0)


if __name__ == "__main__":
    sys.exit(main())
