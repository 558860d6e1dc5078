"""The evaluated images: a folder-per-identity set, optionally narrowed to pairs-file folds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.images import IMAGE_SUFFIXES
from model_build.evaluators import PairsProtocol, people_in_folds, read_pairs


@dataclass(frozen=True)
class Pairs:
    """Verification pairs as indices into the image list; folds are 1-based."""

    idx_a: np.ndarray
    idx_b: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    n_dropped: int = 0  # pairs of the chosen folds whose images are not evaluated


@dataclass(frozen=True)
class ImageSet:
    """Images to embed (sorted by person, then file) and their person labels."""

    root: Path
    paths: list[Path]
    labels: np.ndarray
    pairs: Pairs | None = None

    @property
    def n_people(self) -> int:
        return len(np.unique(self.labels))

    def relpath(self, i: int) -> str:
        return self.paths[i].relative_to(self.root).as_posix()


def scan_folder(root: Path) -> dict[str, list[Path]]:
    """``{person: sorted image paths}`` of a folder-per-identity set (people with images only)."""
    people = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        images = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            people[folder.name] = images
    if not people:
        raise ValueError(f"{root}: no person folders with images (expected DIR/<person>/<image>)")
    return people


def parse_folds(text: str, n_folds: int) -> list[int]:
    """``"7,8"`` -> [7, 8] (1-based, as people count them); ``"all"`` -> every fold."""
    if text.strip().lower() == "all":
        return list(range(1, n_folds + 1))
    folds = sorted({int(t) for t in text.split(",") if t.strip()})
    bad = [f for f in folds if not 1 <= f <= n_folds]
    if bad or not folds:
        raise ValueError(f"--folds {text!r}: the pairs file has folds 1..{n_folds} "
                         f"(pass e.g. --folds {n_folds} or --folds all)")
    return folds


def people_order(protocol: PairsProtocol | None, folds: list[int], candidates: set[str],
                 rng: np.random.Generator) -> list[str]:
    """Candidate people in a seeded random order.

    With a pairs file the order follows shuffled pairs of the chosen folds, so that
    cutting the list at any length keeps whole pairs (both people of a pair are added
    together) and a quick run still has pairs to score.
    """
    if protocol is None:
        names = sorted(candidates)
        return [names[i] for i in rng.permutation(len(names))]
    fold_pairs = [p for p in protocol.pairs if p.fold + 1 in folds]
    order: dict[str, None] = {}
    for k in rng.permutation(len(fold_pairs)):
        for name in fold_pairs[k].names:
            if name in candidates:
                order.setdefault(name)
    return list(order)


def cut_people(order: list[str], counts: dict[str, int], max_people: int | None,
               max_images: int | None) -> list[str]:
    """The first people of ``order`` within both limits (always at least one person)."""
    chosen, total = [], 0
    for name in order[: max_people or None]:
        if chosen and max_images and total + counts[name] > max_images:
            break
        chosen.append(name)
        total += counts[name]
    return chosen


def map_pairs(protocol: PairsProtocol, folds: list[int], index: dict[str, int]) -> Pairs:
    """Pairs of the chosen folds whose two images are both evaluated."""
    kept, dropped = [], 0
    for p in protocol.pairs:
        if p.fold + 1 not in folds:
            continue
        if p.path_a in index and p.path_b in index:
            kept.append((index[p.path_a], index[p.path_b], p.same, p.fold + 1))
        else:
            dropped += 1
    cols = list(zip(*kept)) if kept else [(), (), (), ()]
    return Pairs(np.array(cols[0], np.int64), np.array(cols[1], np.int64),
                 np.array(cols[2], bool), np.array(cols[3], np.int64), dropped)


def held_out_parser(prog: str, description: str):
    """An argument parser with --data, --pairs and --folds: the held-out people of a pairs
    file, for the harnesses that measure on them (bench consistency, bench tracking)."""
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--data", required=True, help="folder-per-person images, e.g. ../shared/data/lfw")
    p.add_argument("--pairs", required=True, help="pairs file whose folds name the held-out people")
    p.add_argument("--folds", default="7,8", help="1-based folds of --pairs (default 7,8: never trained on)")
    return p


def load_image_set(root: str | Path, pairs_file: str | Path | None = None, folds: str = "7,8",
                   max_people: int | None = None, max_images: int | None = None,
                   seed: int = 0) -> tuple[ImageSet, list[int]]:
    """Images to evaluate and the 1-based folds used (empty without a pairs file).

    With a pairs file: every image of the people of the chosen folds (all of their
    images, not only those named in pairs). Without: every image of the folder.
    """
    root = Path(root)
    people = scan_folder(root)
    rng = np.random.default_rng(seed)
    protocol, fold_list = None, []
    candidates = set(people)
    if pairs_file:
        protocol = read_pairs(pairs_file)
        fold_list = parse_folds(folds, protocol.n_folds)
        candidates &= people_in_folds(protocol, [f - 1 for f in fold_list])
        if not candidates:
            raise ValueError(f"none of the people of folds {fold_list} of {pairs_file} has a folder in {root}")
    counts = {name: len(people[name]) for name in candidates}
    chosen = sorted(cut_people(people_order(protocol, fold_list, candidates, rng), counts,
                               max_people, max_images))
    paths = [path for name in chosen for path in people[name]]
    labels = np.array([name for name in chosen for _ in people[name]])
    image_set = ImageSet(root, paths, labels)
    pairs = None
    if protocol is not None:
        index = {image_set.relpath(i): i for i in range(len(paths))}
        pairs = map_pairs(protocol, fold_list, index)
    return ImageSet(root, paths, labels, pairs), fold_list
