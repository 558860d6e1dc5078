"""``facegate`` command line: embed images, run the door daemon, and the enrollment
server (server, keygen, enroll, remove, list, reembed)."""

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
            # The message names the file already.
            record, message = {"image": path, "error": str(exc), "faces": [], "embedding": None}, str(exc)
        else:
            record = {"image": path, **result.to_dict()}
            if result.embedding is None:
                failures += 1
                record["error"] = "no face found"
                message = f"{path}: no face found"
        if args.json:  # errors too: one record per image, in order
            print(json.dumps({"model_id": encoder.info.model_id, **record}), flush=True)
        elif record.get("error"):
            print(message, file=sys.stderr, flush=True)
        else:
            best = record["faces"][0]
            print(f"{path}: {len(record['faces'])} face(s); chosen box={best['box']} "
                  f"score={best['score']:.3f}; embedding[:4]={record['embedding'][:4]}")
    return 1 if failures == len(args.images) else 0


# `facegate run` flags -> config keys; a flag given on the command line wins over the file.
RUN_OVERRIDES = {
    "replay": "source.path", "fps": "source.fps", "loop": "source.loop", "camera": "source.device",
    "realtime": "source.realtime",
    "gallery_photos": "gallery.photos", "state_dir": "device.state_dir", "device_id": "device.id",
    "site": "device.site", "mqtt_host": "mqtt.host", "mqtt_port": "mqtt.port", "model": "model.path",
    "backend": "model.backend", "liveness": "liveness.mode",
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

    from daemon.config import ConfigError, check_device_trust, load_config
    from daemon.gallery import GalleryError
    from daemon.door.service import Service
    from daemon.state import StateDirError

    try:
        cfg = load_config(args.config, run_overrides(args))
        check_device_trust(cfg)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    # A camera may come back; a recording named on the command line (or one that --once is
    # waiting to finish) will not: fail now instead of retrying forever.
    if cfg.source.kind == "replay" and (args.replay is not None or args.once):
        from daemon.frames.replay import list_images
        if not Path(cfg.source.path).is_dir() or not list_images(Path(cfg.source.path)):
            log.error("replay folder not found or without images: %s", cfg.source.path)
            return 2
    if cfg.source.kind == "opencv" and (args.camera is not None or args.once):
        from daemon.frames.opencv import OpenCVSource
        video = OpenCVSource(cfg.source.device)
        if video.kind == "file" and not Path(video.device).is_file():
            log.error("video file not found: %s", video.device)
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
    except (GalleryError, StateDirError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        service.close()
    return 0


# ---------------------------------------------------------------- the enrollment server's tools

# Server flags -> config keys (the server reads the same TOML format: [device] site, [mqtt], [enrollment]).
SERVER_OVERRIDES = {"site": "device.site", "mqtt_host": "mqtt.host", "mqtt_port": "mqtt.port",
                    "signing_key": "enrollment.signing_key", "public_key": "enrollment.public_key",
                    "state_dir": "server.state_dir"}


def _server_config(args):
    from daemon.config import load_config
    overrides = {key: getattr(args, flag) for flag, key in SERVER_OVERRIDES.items()
                 if getattr(args, flag, None) is not None}
    return load_config(args.config, overrides)


def _signing_key(cfg, required: bool):
    from daemon.protocol.signing import load_private_key
    if cfg.enrollment.signing_key:
        return load_private_key(cfg.enrollment.signing_key)
    if required:
        raise ValueError("no signing key: pass --signing-key or set enrollment.signing_key "
                         "(create one with `facegate keygen --out DIR`); devices refuse unsigned records")
    log.warning("no signing key: the record is written unsigned, and devices will refuse it")
    return None


def _broker_client(cfg, timeout_s: float):
    from daemon.protocol.broker import BrokerSettings
    from daemon.server.client import EnrollmentClient
    if not cfg.broker_configured:
        raise ValueError("no broker: set mqtt.host in --config or pass --mqtt-host (or --out for a dry run)")
    return EnrollmentClient(BrokerSettings.from_config(cfg.mqtt), timeout_s=timeout_s)


def _store(cfg):
    from daemon.server.store import EnrollmentStore
    return EnrollmentStore.open(cfg.server.state_dir)


def _with_target(args, work) -> int:
    """Run ``work(target)`` on the store and the broker, or on --out files for a dry run.
    A broker that cannot be reached is not an error: the store keeps the change and
    `facegate server` publishes it."""
    from pathlib import Path

    from daemon.server.client import BrokerError
    from daemon.server.tool import Target
    cfg = _server_config(args)
    out = Path(args.out) if getattr(args, "out", None) else None
    key = _signing_key(cfg, required=out is None)  # checked before connecting
    if out is not None:
        return work(Target(cfg.device.site, key, out=out))
    client = _broker_client(cfg, args.timeout)
    store = _store(cfg)
    try:
        try:
            client.connect()
        except BrokerError as exc:
            log.warning("%s; the change goes to the store only", exc)
            client = None
        return work(Target(cfg.device.site, key, client=client, store=store,
                           manifest_valid_s=cfg.server.manifest_valid_s))
    finally:
        if client is not None:
            client.close()
        store.close()


def _gate(args):
    from daemon.server.gate import PhotoGate
    return PhotoGate(min_detection_score=args.min_score, min_face_px=args.min_face_px, min_blur=args.min_sharpness,
                     consistency_threshold=args.consistency_threshold)


def _print_photos(outcome) -> None:
    for photo in outcome.photos:
        verdict = "ok" if photo.accepted else f"rejected ({photo.reason})"
        print(f"  {verdict:<26} {photo.path}: {photo.detail}")


def _cmd_keygen(args) -> int:
    from daemon.protocol.signing import generate_keypair
    pair = generate_keypair(args.out)
    print(f"private key {pair.private_path} (mode 600: keep it on the enrollment server only)")
    print(f"public key  {pair.public_path} (copy it to every device: enrollment.public_key)")
    print(f"key id      {pair.key_id}")
    return 0


def _cmd_enroll(args) -> int:
    from daemon.api import default_detector
    from daemon.embeddings import load_encoder
    from daemon.server.tool import NoUsablePhoto, enroll

    encoder = load_encoder(args.model, args.backend)

    def work(target) -> int:
        try:
            outcome = enroll(target, args.person_id, args.name, args.photos, encoder, default_detector(),
                             _gate(args), consistency=not args.no_consistency, keep_photos=args.keep_photos)
        except NoUsablePhoto as exc:
            _print_photos(exc.outcome)
            log.error("%s", exc)
            if any(p.reason == "inconsistent" for p in exc.outcome.photos):
                log.error("if the photos really show the same person, add more photos of them "
                          "or pass --no-consistency")
            return 1
        _print_photos(outcome)
        how = "wrote" if target.out else "published (retained) to" if target.client else "stored in"
        print(f"enrolled {outcome.person_id} ({args.name}): {len(outcome.accepted)} encoding(s), model "
              f"{outcome.model_id}, version {outcome.version}; {how} {outcome.delivered_to}")
        if target.out:
            print(f"topic: {outcome.topic}")
        if outcome.kept_in:
            print(f"photos kept in {outcome.kept_in} (for `facegate reembed`)")
        return 0

    return _with_target(args, work)


def _cmd_remove(args) -> int:
    from daemon.server.tool import remove

    def work(target) -> int:
        outcome = remove(target, args.person_id, keep_photos=args.keep_photos)
        how = "wrote" if target.out else "published (retained) to" if target.client else "stored in"
        print(f"revoked {outcome.person_id}: tombstone version {outcome.version}; {how} {outcome.delivered_to}")
        if target.out:
            print(f"topic: {outcome.topic}")
        elif not outcome.was_known:
            print("  (the store and the broker held nothing for this person; the tombstone still blocks any older record)")
        for topic in outcome.cleared:
            print(f"  cleared {topic}")
        if outcome.photos_deleted:
            print(f"  deleted the kept photos in {args.keep_photos}")
        return 0

    return _with_target(args, work)


def _cmd_list(args) -> int:
    from daemon.protocol.signing import Trust, load_public_keys
    from daemon.server.tool import held_records, stored_records

    cfg = _server_config(args)
    keys = load_public_keys(cfg.enrollment.public_key) if cfg.enrollment.public_key else []
    if cfg.enrollment.signing_key:
        keys.append(_signing_key(cfg, required=True).public_key())
    if not keys:
        log.warning("no public or signing key given: signatures are not checked")
    if args.broker:
        with _broker_client(cfg, args.timeout) as client:
            held = held_records(client, cfg.device.site, Trust.of(*keys))
        where = "retained message(s) on the broker"
    else:
        store = _store(cfg)
        try:
            held = stored_records(store, cfg.device.site, Trust.of(*keys))
        finally:
            store.close()
        where = f"current message(s) in the store {store.path}"
    if args.json:
        for h in held:
            print(json.dumps(h.to_dict()))
        return 0
    from daemon.protocol.wire import iso_utc
    print(f"{'PERSON':<20} {'NAME':<24} {'KIND':<9} {'VERSION':>14} {'MODEL':<20} {'ENC':>3}  SIGNATURE")
    for h in held:
        print(f"{h.person_id:<20} {h.name[:24]:<24} {h.kind:<9} {h.version:>14} {h.model_id[:20]:<20} "
              f"{h.encodings:>3}  {h.signature}" + (f"  {h.error}" if h.error else "")
              + (f"  (updated {iso_utc(h.updated_at)})" if args.verbose and h.updated_at else ""))
    people = {h.person_id for h in held if h.kind == "record"}
    print(f"{len(held)} {where}, {len(people)} person(s) with a record, "
          f"{sum(h.kind == 'tombstone' for h in held)} tombstone(s) on site {cfg.device.site}")
    return 0


def _cmd_server(args) -> int:
    import signal

    from daemon.protocol.broker import BrokerSettings
    from daemon.server.service import EnrollmentServer

    cfg = _server_config(args)
    key = _signing_key(cfg, required=True)
    if not cfg.broker_configured:
        raise ValueError("no broker: set mqtt.host in --config or pass --mqtt-host")
    store = _store(cfg)
    m, sv = cfg.mqtt, cfg.server
    server = EnrollmentServer(store, cfg.device.site, key, BrokerSettings.from_config(m),
                              manifest_interval_s=sv.manifest_interval_s, manifest_valid_s=sv.manifest_valid_s,
                              keepalive_s=m.keepalive_s, reconnect_min_s=m.reconnect_min_s,
                              reconnect_max_s=m.reconnect_max_s)

    def _stop(signum, frame):
        log.info("%s: shutting down", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("enrollment server for site %s: store %s, broker %s, manifests every %.0f s valid %.0f s",
             cfg.device.site, store.path, BrokerSettings.from_config(m).describe(), sv.manifest_interval_s,
             sv.manifest_valid_s)
    server.start()
    try:
        server.run()
    finally:
        server.close()
        store.close()
    return 0


def _cmd_reembed(args) -> int:
    from pathlib import Path

    from daemon.api import default_detector
    from daemon.embeddings import load_encoder
    from daemon.server.tool import reembed

    encoder = load_encoder(args.model, args.backend)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)  # one file per person

    def work(target) -> int:
        outcomes = reembed(target, args.photos, encoder, default_detector(), _gate(args),
                           consistency=not args.no_consistency)
        failed = 0
        for o in outcomes:
            if o.skipped:
                failed += bool(o.photos)  # revoked people are skipped on purpose
                print(f"skipped {o.person_id}: {o.skipped}")
                _print_photos(o)
            else:
                print(f"re-enrolled {o.person_id}: {len(o.accepted)} encoding(s), model {o.model_id}, "
                      f"version {o.version} -> {o.delivered_to}")
        print(f"{sum(not o.skipped for o in outcomes)} of {len(outcomes)} person(s) re-enrolled for model "
              f"{encoder.info.model_id}")
        return 1 if failed else 0

    return _with_target(args, work)


def _add_server_options(p, out_help: str | None) -> None:
    p.add_argument("--config", metavar="PATH", help="TOML config: [device] site, [mqtt] broker and TLS, "
                                                   "[enrollment] signing_key (see docs/security.md)")
    p.add_argument("--site", metavar="SITE", help="site whose devices receive the records")
    p.add_argument("--mqtt-host", metavar="HOST", help="MQTT broker (mqtt.host)")
    p.add_argument("--mqtt-port", type=int, metavar="PORT", help="MQTT broker port (mqtt.port)")
    p.add_argument("--signing-key", metavar="PATH", help="Ed25519 private key from `facegate keygen`")
    p.add_argument("--state-dir", metavar="DIR", help="the enrollment store's folder (server.state_dir, "
                                                      "default /var/lib/facegate-server)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="broker timeout (default 10 s)")
    if out_help:
        p.add_argument("--out", metavar="PATH", help=out_help)


def _add_photo_options(p, model_help: str = "encoder .tflite (default: the shipped model)",
                       model_required: bool = False) -> None:
    from daemon.config import BACKENDS
    from daemon.server.gate import PhotoGate
    g = PhotoGate()
    p.add_argument("--model", metavar="PATH", help=model_help, required=model_required)
    p.add_argument("--backend", default="cpu", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--min-face-px", type=float, default=g.min_face_px, metavar="PX",
                   help=f"shorter side of the face box (default {g.min_face_px:.0f})")
    p.add_argument("--min-sharpness", type=float, default=g.min_blur, metavar="V",
                   help=f"variance of the Laplacian of the aligned face (default {g.min_blur:.0f})")
    p.add_argument("--min-score", type=float, default=g.min_detection_score, metavar="S",
                   help=f"face detector confidence (default {g.min_detection_score})")
    p.add_argument("--no-consistency", action="store_true",
                   help="do not reject photos that look like someone else than the other photos")
    p.add_argument("--consistency-threshold", type=float, default=g.consistency_threshold, metavar="D",
                   help="distance from the median of the other photos above which a photo is taken for "
                        f"someone else's (default {g.consistency_threshold})")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("facegate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


BACKEND_HELP = "where the encoder runs: cpu, or edgetpu (a Coral USB or PCIe accelerator; docs/deploy-pi.md)"


def build_parser() -> argparse.ArgumentParser:
    from daemon.config import BACKENDS, LIVENESS_MODES
    verbose_help = "debug logging (with `run`: one line per face, why it matched or not)"
    parser = argparse.ArgumentParser(prog="facegate", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # Its own action (parents share theirs): SUPPRESS, so a subcommand without -v keeps `facegate -v CMD`'s.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_parser(name, **kwargs):
        return sub.add_parser(name, parents=[verbose], **kwargs)

    p = add_parser("embed", help="detect faces in images and print the chosen face's embedding",
                   description="Print, for each image, the faces found and the embedding of the largest "
                               "(--json: one JSON object per image on stdout, errors included). Problems "
                               "with an image go to stderr; the exit status is 1 when no image gave an "
                               "embedding.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, BMP, WebP, TIFF or PNM files")
    p.add_argument("--model", metavar="PATH", help="encoder .tflite (default: the shipped model)")
    p.add_argument("--backend", default="cpu", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    p.set_defaults(func=_cmd_embed)

    p = add_parser(
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
    p.add_argument("--realtime", action="store_true", default=None,
                   help="play a --camera video file at its own frame rate, so that voting and cooldowns "
                        "behave as with a camera (default: as fast as it decodes)")
    p.add_argument("--gallery-photos", metavar="DIR",
                   help="enroll people from DIR/<person_id>/*.jpg at start (folder name = person id)")
    p.add_argument("--state-dir", metavar="DIR", help="where the gallery and the event outbox are kept")
    p.add_argument("--device-id", metavar="ID", help="this door's id in topics and events (device.id)")
    p.add_argument("--site", metavar="SITE", help="the site whose enrollment records it takes (device.site)")
    p.add_argument("--mqtt-host", metavar="HOST", help="MQTT broker (default: none, events on stdout)")
    p.add_argument("--mqtt-port", type=int, metavar="PORT", help="MQTT broker port (mqtt.port)")
    p.add_argument("--model", metavar="PATH", help="encoder .tflite (default: the shipped model)")
    p.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP + " (model.backend)")
    p.add_argument("--liveness", choices=LIVENESS_MODES,
                   help="presentation-attack check (default: the config's liveness.mode; see docs/security.md)")
    p.set_defaults(func=_cmd_run)

    p = add_parser("keygen", help="create the enrollment server's Ed25519 signing key pair",
                   description="Create the Ed25519 key pair that signs enrollment records and site "
                               "manifests. The private key stays on the enrollment server "
                               "(enrollment.signing_key); the public key goes to every door "
                               "(enrollment.public_key). See docs/security.md.")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes DIR/enroll-signing.key (mode 600) and DIR/enroll-signing.pub")
    p.set_defaults(func=_cmd_keygen)

    p = add_parser("enroll", help="enroll a person from one or more photos (signed, retained record)",
                       description="Check each photo (exactly one face, large, sharp, confident, consistent "
                                   "with the other photos), embed the good ones with the devices' model and "
                                   "publish the signed person record to the site's enrollment topic.")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photos of the person, one face each")
    p.add_argument("--person-id", required=True, metavar="ID", help="1-64 of A-Z a-z 0-9 _ . -")
    p.add_argument("--name", required=True, metavar="NAME", help="display name in unlock events")
    p.add_argument("--keep-photos", metavar="DIR", help="keep the accepted photos in DIR/<person_id>/ for "
                                                       "`facegate reembed` after a model upgrade (opt-in)")
    _add_photo_options(p)
    _add_server_options(p, "dry run: write the signed record to this file instead of publishing it")
    p.set_defaults(func=_cmd_enroll)

    p = add_parser("remove", help="revoke a person on every device (signed, retained tombstone)",
                   description="Revoke a person: store and publish a signed tombstone that makes every door "
                               "erase their encodings and refuse any older record of them, and clear their "
                               "retained records from the broker.")
    p.add_argument("person_id", metavar="ID", help="the person id given to `facegate enroll`")
    p.add_argument("--keep-photos", metavar="DIR", help="also delete the person's kept photos in DIR")
    _add_server_options(p, "dry run: write the signed tombstone to this file instead of publishing it")
    p.set_defaults(func=_cmd_remove)

    p = add_parser("list", help="show the site's current records and tombstones (from the store)",
                   description="Show the site's current records and tombstones, with each one's version, "
                               "model and signature check; from the enrollment store, or with --broker what "
                               "the broker holds. -v adds when each was last updated.")
    p.add_argument("--public-key", metavar="PATH", help="verify signatures with this public key "
                                                       "(default: enrollment.public_key, or the signing key's)")
    p.add_argument("--broker", action="store_true", help="show what the broker holds instead of the store")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    _add_server_options(p, None)
    p.set_defaults(func=_cmd_list)

    p = add_parser("server", help="run the enrollment server: keep the broker in step with the store and "
                                      "sign the site manifest on a schedule",
                       description="Publish the store's records, tombstones and signed manifests (retained) after "
                                   "every connection, repair any retained message that differs from the store, and "
                                   "sign a new manifest every server.manifest_interval_s (docs/security.md).")
    _add_server_options(p, None)
    p.set_defaults(func=_cmd_server)

    p = add_parser("reembed", help="re-enroll everyone from kept photos for a new model",
                       description="Publish a new record for the new model id for every person kept with "
                                   "--keep-photos. Old-model records stay: devices keep working until they "
                                   "get the new model.")
    p.add_argument("--photos", required=True, metavar="DIR", help="the --keep-photos folder")
    _add_photo_options(p, "the new encoder .tflite (model.json beside it)", model_required=True)
    _add_server_options(p, "dry run: write one record per person into this folder instead of publishing")
    p.set_defaults(func=_cmd_reembed)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from daemon.logs import configure
    configure(args.verbose)
    from daemon.server.client import BrokerError
    from daemon.images import ImageError
    from daemon.runtime import ModelError
    from daemon.server.store import StoreError
    from daemon.state import StateDirError
    try:
        return args.func(args)
    except (ModelError, ImageError, ValueError, BrokerError, OSError, StateDirError, StoreError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
