"""Evaluate an encoder as face verification on a folder-per-identity set.

Figures: LFW-protocol accuracy (threshold chosen on the other folds), ROC AUC and
EER on the protocol's pairs, and TAR at FAR over all-vs-all pairs of the
evaluated people's images, which is also where the match threshold is calibrated.
Works for any embedding function, so the Keras model, the float and the int8
TFLite models are scored by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from model_build.data.datasets import DatasetError, FaceDataset
from model_build.evaluators import (
    all_pairs_distances,
    pair_distances,
    roc_curve,
    split_distances,
    tar_at_far,
    verification_summary,
    write_report,
)
from model_build.evaluators.pairs import PairsProtocol, people_in_folds

EmbedFn = Callable[[np.ndarray], np.ndarray]  # uint8 crops (N, S, S) -> (N, D)
REPORT_FARS = (1e-2, 1e-3, 1e-4)


@dataclass
class Evaluation:
    summary: dict
    pair_distances: np.ndarray
    pair_same: np.ndarray
    all_distances: np.ndarray
    all_same: np.ndarray


def _subset(data: FaceDataset, people: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the crops of the given people and their labels."""
    names = np.asarray(data.names)
    wanted = np.isin(names[data.labels], list(people))
    return np.flatnonzero(wanted), data.labels[wanted]


def _embed_in_chunks(embed: EmbedFn, crops: np.ndarray, progress: bool, chunk: int = 256) -> np.ndarray:
    parts = range(0, len(crops), chunk)
    if progress:
        from tqdm import tqdm
        parts = tqdm(parts, desc="embedding", unit="chunk", mininterval=2.0)
    return np.concatenate([embed(crops[i:i + chunk]) for i in parts])


def evaluate(embed: EmbedFn, data: FaceDataset, protocol: PairsProtocol | None,
             folds: list[int] | None = None, fars=REPORT_FARS, target_far: float = 1e-3,
             progress: bool = False) -> Evaluation:
    """Score an embedding function on the aligned images of a dataset.

    data holds every image of the set (align_folder); protocol, when given,
    supplies the LFW pairs (restricted to folds) and the people for all-vs-all.
    Images without a face count as failed (distance +inf: never accepted).
    """
    if protocol is not None:
        folds = list(range(protocol.n_folds)) if folds is None else folds
        pairs = [p for p in protocol.pairs if p.fold in set(folds)]
        people = people_in_folds(protocol, folds)
    else:
        pairs, people = [], set(data.names)
    index, labels = _subset(data, people)
    if len(index) < 2:
        raise DatasetError("no evaluation images: none of the protocol's people were found in the dataset")
    emb = _embed_in_chunks(embed, data.crops[index], progress)
    position = {data.paths[i]: k for k, i in enumerate(index)}
    if not np.any(np.bincount(labels) >= 2) or len(set(labels.tolist())) < 2:
        raise DatasetError(f"{data.source}: all-vs-all needs two or more people, one of them with two or more "
                           "images with a face (one image per person gives no same-person pairs)")
    summary: dict = {"n_images": int(len(index)), "n_people": len(set(labels.tolist())),
                     "skipped_images": {"unreadable": data.skipped.unreadable, "no_face": data.skipped.no_face}}

    pd = ps = np.zeros(0)
    if pairs:
        nan = np.full(emb.shape[1], np.nan, np.float32)
        lookup = [emb[position[p]] if p in position else nan for p in
                  [q for pair in pairs for q in (pair.path_a, pair.path_b)]]
        a, b = np.asarray(lookup[0::2]), np.asarray(lookup[1::2])
        pd = pair_distances(a, b)
        ps = np.array([p.same for p in pairs])
        fold_ids = np.array([p.fold for p in pairs])
        missing = {q for pair in pairs for q in (pair.path_a, pair.path_b)} - set(position)
        # fold numbers are 1-based in reports, as in LFW's documentation
        summary["pairs"] = verification_summary(pd, ps, fold_ids + 1, fars=fars,
                                                n_images=len(position) + len(missing),
                                                n_failed_images=len(missing))
        summary["pairs"]["folds"] = [int(f) + 1 for f in folds]  # 1-based like LFW's docs

    ad, as_ = all_pairs_distances(emb, labels)
    summary["all_vs_all"] = {
        "n_pairs": int(len(ad)), "n_same": int(as_.sum()), "n_different": int((~as_).sum()),
        "tar_at_far": [dict(zip(("far", "tar", "threshold", "achieved_far"),
                                (far, *map(float, tar_at_far(ad, as_, far))))) for far in fars],
    }
    tar, threshold, achieved = tar_at_far(ad, as_, target_far)
    summary["calibration"] = {"target_far": target_far, "threshold": float(threshold),
                              "tar": float(tar), "achieved_far": float(achieved)}
    summary["warnings"] = warnings(summary)
    return Evaluation(summary, pd, ps, ad, as_)


def mostly_failed(summary: dict) -> bool:
    """More than half of the protocol's pairs failed (an image without a face): the LFW figures
    then measure the detector and the data, not the encoder."""
    pairs = summary.get("pairs")
    return bool(pairs) and pairs["failures"]["n_failed_pairs"] * 2 > pairs["n_pairs"]


def warnings(summary: dict) -> list[str]:
    """What makes an evaluation's figures untrustworthy, in words."""
    found = []
    pairs = summary.get("pairs")
    if mostly_failed(summary):
        found.append(f"{pairs['failures']['n_failed_pairs']} of {pairs['n_pairs']} pairs failed (an image without "
                     "a face or missing): the figures measure the detector and the data, not the encoder")
    n_diff = summary["all_vs_all"]["n_different"]
    fars = sorted({summary["calibration"]["target_far"], *(r["far"] for r in summary["all_vs_all"]["tar_at_far"])})
    coarse = [far for far in fars if far * n_diff < 1]
    if coarse:
        found.append(f"FAR {', '.join(f'{f:g}' for f in coarse)} below 1/{n_diff} (one false accept among "
                     f"{n_diff} impostor pairs): met only by accepting no impostor, so TAR and threshold "
                     "there are not measured")
    return found


def write_evaluation_report(ev: Evaluation, out_dir: str | Path, title: str) -> dict:
    """report.md / report.json / roc.png / distances.png for an evaluation (its warnings too)."""
    if len(ev.pair_distances):
        d, s = ev.pair_distances, ev.pair_same
        summary = {**ev.summary["pairs"], "all_vs_all": ev.summary["all_vs_all"],
                   "calibration": ev.summary["calibration"]}
    else:
        d, s = ev.all_distances, ev.all_same
        summary = verification_summary(d, s, fars=REPORT_FARS)
        summary.update({"all_vs_all": ev.summary["all_vs_all"], "calibration": ev.summary["calibration"]})
    if ev.summary["warnings"]:
        summary["warnings"] = ev.summary["warnings"]
    far, tar, _ = roc_curve(d, s)
    same_d, diff_d = split_distances(d, s)
    return write_report(summary, out_dir, same_d, diff_d, roc=(far, tar), title=title)
