"""``facegate`` command line: embed images, run the door daemon."""

from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger("facegate")


def _cmd_embed(args) -> int:
    from daemon.api import embed_image
    from daemon.embeddings import load_encoder
    from daemon.images import ImageError

    encoder = load_encoder(args.model, args.backend)
    failures = 0
    for path in args.images:
        try:
            result = embed_image(path, encoder)
        except ImageError as exc:
            failures += 1
            record = {"image": path, "error": str(exc), "faces": [], "embedding": None}
        else:
            record = {"image": path, **result.to_dict()}
            if result.embedding is None:
                failures += 1
                record["error"] = "no face found"
        if args.json:
            print(json.dumps({"model_id": encoder.info.model_id, **record}), flush=True)
        elif record.get("error"):
            print(f"{path}: {record['error']}")
        else:
            best = record["faces"][0]
            print(f"{path}: {len(record['faces'])} face(s); chosen box={best['box']} "
                  f"score={best['score']:.3f}; embedding[:4]={record['embedding'][:4]}")
    return 1 if failures == len(args.images) else 0


# `facegate run` flags -> config keys; a flag given on the command line wins over the file.
RUN_OVERRIDES = {
    "replay": "source.path", "fps": "source.fps", "loop": "source.loop", "camera": "source.device",
    "gallery_photos": "gallery.photos", "state_dir": "device.state_dir", "device_id": "device.id",
    "site": "device.site", "mqtt_host": "mqtt.host", "mqtt_port": "mqtt.port", "model": "model.path",
    "backend": "model.backend",
}


def run_overrides(args) -> dict:
    """Config overrides from `facegate run` flags (only those actually given)."""
    overrides = {key: getattr(args, flag) for flag, key in RUN_OVERRIDES.items()
                 if getattr(args, flag) is not None}
    if args.replay is not None:
        overrides["source.kind"] = "replay"
    elif args.camera is not None:
        overrides["source.kind"] = "opencv"
    return overrides


def _cmd_run(args) -> int:
    import signal
    from pathlib import Path

    from daemon.config import ConfigError, load_config
    from daemon.gallery import GalleryError
    from daemon.service import Service

    try:
        cfg = load_config(args.config, run_overrides(args))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if cfg.source.kind == "replay" and (args.replay is not None or args.once):
        # A camera may come back; a replay named on the command line (or one that --once is
        # waiting to finish) will not: fail now instead of retrying forever.
        from daemon.frames.replay import list_images
        if not Path(cfg.source.path).is_dir() or not list_images(Path(cfg.source.path)):
            log.error("replay folder not found or without images: %s", cfg.source.path)
            return 2
    if cfg.gallery.photos and not Path(cfg.gallery.photos).is_dir():
        log.error("gallery photos folder not found: %s", cfg.gallery.photos)
        return 2
    service = Service(cfg)

    def _stop(signum, frame):
        log.info("%s: shutting down", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        service.start()
        service.run(exit_at_end=args.once)
    except GalleryError as exc:
        log.error("%s", exc)
        return 2
    finally:
        service.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegate", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("embed", help="detect faces in images and print the chosen face's embedding")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", help="encoder .tflite (default: the shipped model)")
    p.add_argument("--backend", default="cpu", choices=["cpu", "edgetpu"])
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser(
        "run", help="run the door daemon (camera -> recognition -> unlock events)",
        description="Run the door daemon. With a config file: facegate run --config /etc/facegate/facegate.toml. "
                    "Without one (no broker: unlock events are JSON lines on stdout, logs on stderr): "
                    "facegate run --replay FRAMES_DIR --gallery-photos PEOPLE_DIR --state-dir STATE_DIR --once. "
                    "Flags override the config file.")
    p.add_argument("--config", metavar="PATH", help="TOML config (see config/facegate.example.toml)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--replay", metavar="DIR", help="replay a folder of images as the camera")
    source.add_argument("--camera", metavar="DEV", help="OpenCV camera index, stream URL or video file")
    p.add_argument("--fps", type=float, metavar="N", help="replay speed in frames per second (0 = as fast as possible)")
    p.add_argument("--loop", action="store_true", default=None, help="replay: start again at the end")
    p.add_argument("--once", action="store_true", help="exit when the replay (or video file) ends")
    p.add_argument("--gallery-photos", metavar="DIR",
                   help="enroll people from DIR/<person_id>/*.jpg at start (folder name = person id)")
    p.add_argument("--state-dir", metavar="DIR", help="where the gallery and the event outbox are kept")
    p.add_argument("--device-id", metavar="ID")
    p.add_argument("--site", metavar="SITE")
    p.add_argument("--mqtt-host", metavar="HOST", help="MQTT broker (default: none, events on stdout)")
    p.add_argument("--mqtt-port", type=int, metavar="PORT")
    p.add_argument("--model", metavar="PATH", help="encoder .tflite (default: the shipped model)")
    p.add_argument("--backend", choices=["cpu", "edgetpu"])
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr so stdout stays machine-readable (embeddings, events).
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from daemon.images import ImageError
    from daemon.runtime import ModelError
    try:
        return args.func(args)
    except (ModelError, ImageError, ValueError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
