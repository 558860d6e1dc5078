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
