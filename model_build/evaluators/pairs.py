"""Parse LFW-format verification pairs files.

File format (the one used by LFW's ``pairs.txt`` / ``pairsDevTest.txt``)::

    <n_folds> <n_per_fold>                       header line
    Name  i  j                                   n_per_fold matched pairs   } repeated
    Name1 i  Name2 j                             n_per_fold mismatched pairs } n_folds times

Image index ``i`` of person ``Name`` is the file ``Name/Name_000i.jpg``
(``f"{name}/{name}_{i:04d}.jpg"``), relative to the LFW image root.

Tolerated variations:

* any whitespace (tabs or spaces) separates fields; CRLF / CR line endings and
  a UTF-8 byte-order mark are accepted;
* blank lines are skipped wherever they occur (typically trailing blank lines);
  line numbers in error messages are always the physical 1-based line numbers;
* a single-number header ``<n>`` (the format of LFW's ``pairsDevTrain.txt``)
  means one fold of ``n`` matched followed by ``n`` mismatched pairs;
* a **header-less** file (first non-blank line is already a pair) is read as a
  single fold (fold 0); each line is classified by its field count (3 fields =
  matched, 4 fields = mismatched), so the order of the lines does not matter.

With a header the layout is strict: every line must have the kind expected at
its position, and the number of pair lines must equal ``n_folds * 2 *
n_per_fold``.  Anything else raises :class:`ValueError` naming the line.  Also
rejected, because they are data errors that would silently corrupt figures:
image indices < 1, a matched pair comparing an image with itself, a mismatched
pair naming the same person twice, and person names containing path
separators (which could escape the image root).

Folds are numbered from 0 in file order.

Pure Python; no TensorFlow (the benchmark harness reuses this module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterable

import numpy as np

__all__ = [
    "Pair",
    "PairsProtocol",
    "image_relpath",
    "parse_pairs",
    "read_pairs",
    "people_in_folds",
]


@dataclass(frozen=True)
class Pair:
    """One verification pair.

    ``path_a`` / ``path_b`` are relative (``Name/Name_0001.jpg``, POSIX
    separators) or joined with the root given to the parser.  ``name_a`` /
    ``name_b`` are the person names (``name_a == name_b`` iff ``same`` for
    pairs produced by the parser); when left empty they are derived from the
    parent directory of the path.
    """

    path_a: str
    path_b: str
    same: bool
    fold: int
    name_a: str = ""
    name_b: str = ""

    @property
    def names(self) -> tuple[str, str]:
        a = self.name_a or PurePath(self.path_a).parent.name
        b = self.name_b or PurePath(self.path_b).parent.name
        return a, b


@dataclass
class PairsProtocol:
    """All pairs of a protocol file, in file order.

    ``pairs_per_fold`` is the header's per-fold count (matched pairs per fold,
    equal to mismatched pairs per fold) or ``None`` for a header-less file.
    """

    pairs: list[Pair]
    n_folds: int
    pairs_per_fold: int | None = None
    source: str | None = None
    has_header: bool = True

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def same(self) -> np.ndarray:
        """Boolean array, one entry per pair: True for matched pairs."""
        return np.fromiter((p.same for p in self.pairs), dtype=bool, count=len(self.pairs))

    @property
    def folds(self) -> np.ndarray:
        """Integer array, one entry per pair: its fold number (0-based)."""
        return np.fromiter((p.fold for p in self.pairs), dtype=np.int64, count=len(self.pairs))

    def image_paths(self) -> list[str]:
        """Sorted unique image paths referenced by the pairs."""
        return sorted({p.path_a for p in self.pairs} | {p.path_b for p in self.pairs})

    def pair_indices(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(paths, idx_a, idx_b)``: unique paths plus, per pair, the index of
        each side into ``paths`` -- embed every image once, then
        ``pair_distances(emb[idx_a], emb[idx_b])``."""
        paths = self.image_paths()
        pos = {p: k for k, p in enumerate(paths)}
        idx_a = np.fromiter((pos[p.path_a] for p in self.pairs), dtype=np.int64, count=len(self.pairs))
        idx_b = np.fromiter((pos[p.path_b] for p in self.pairs), dtype=np.int64, count=len(self.pairs))
        return paths, idx_a, idx_b

    def fold(self, k: int) -> list[Pair]:
        """Pairs of fold ``k``."""
        return [p for p in self.pairs if p.fold == k]


def image_relpath(name: str, index: int) -> str:
    """LFW relative path of image ``index`` (1-based) of person ``name``."""
    return f"{name}/{name}_{index:04d}.jpg"


def _join(root: str | os.PathLike | None, rel: str) -> str:
    if root is None:
        return rel
    return os.path.join(os.fspath(root), *rel.split("/"))


class _LineError(ValueError):
    pass


def _parse_index(tok: str, what: str) -> int:
    try:
        value = int(tok)
    except ValueError:
        raise _LineError(f"{what} {tok!r} is not an integer") from None
    if value < 1:
        raise _LineError(f"{what} {value} must be >= 1 (LFW image indices start at 1)")
    return value


def _check_name(tok: str) -> str:
    if "/" in tok or "\\" in tok or tok in (".", "..") or not tok:
        raise _LineError(f"invalid person name {tok!r}")
    return tok


def _parse_matched(tokens: list[str]) -> tuple[str, int, str, int]:
    if len(tokens) != 3:
        raise _LineError(f"expected a matched pair 'Name i j' (3 fields), got {len(tokens)} fields")
    name = _check_name(tokens[0])
    i = _parse_index(tokens[1], "image index")
    j = _parse_index(tokens[2], "image index")
    if i == j:
        raise _LineError(f"matched pair compares image {name} #{i} with itself")
    return name, i, name, j


def _parse_mismatched(tokens: list[str]) -> tuple[str, int, str, int]:
    if len(tokens) != 4:
        raise _LineError(
            f"expected a mismatched pair 'Name1 i Name2 j' (4 fields), got {len(tokens)} fields"
        )
    name_a = _check_name(tokens[0])
    i = _parse_index(tokens[1], "image index")
    name_b = _check_name(tokens[2])
    j = _parse_index(tokens[3], "image index")
    if name_a == name_b:
        raise _LineError(f"mismatched pair names the same person {name_a!r} twice")
    return name_a, i, name_b, j


def _parse_header(tokens: list[str]) -> tuple[int, int] | None:
    """``(n_folds, n_per_fold)`` if ``tokens`` is a header line, else None."""
    if len(tokens) not in (1, 2):
        return None
    try:
        values = [int(t) for t in tokens]
    except ValueError:
        return None
    if any(v < 1 for v in values):
        raise _LineError(f"header values must be positive integers, got {' '.join(tokens)!r}")
    if len(values) == 1:  # pairsDevTrain.txt style: "<n>" = one fold
        return 1, values[0]
    return values[0], values[1]


def parse_pairs(
    text: str,
    root: str | os.PathLike | None = None,
    *,
    source: str = "<pairs>",
) -> PairsProtocol:
    """Parse the text of an LFW-format pairs file (see the module docstring).

    ``root``: if given, pair paths are ``os.path.join(root, Name, file)``;
    otherwise they are relative POSIX paths ``Name/Name_0001.jpg``.
    ``source`` is used in error messages (``source:line: message``).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [(n, ln.split()) for n, ln in enumerate(text.splitlines(), start=1)]
    lines = [(n, toks) for n, toks in lines if toks]
    if not lines:
        raise ValueError(f"{source}: no pairs found (empty file)")

    def fail(lineno: int, msg: str) -> ValueError:
        return ValueError(f"{source}:{lineno}: {msg}")

    first_no, first_toks = lines[0]
    try:
        header = _parse_header(first_toks)
    except _LineError as e:
        raise fail(first_no, str(e)) from None
    if header is None and len(first_toks) in (1, 2):
        raise fail(first_no, f"malformed header {' '.join(first_toks)!r} (expected 'n_folds n_per_fold')")

    pairs: list[Pair] = []

    def add(fields: tuple[str, int, str, int], same: bool, fold: int) -> None:
        name_a, i, name_b, j = fields
        pairs.append(
            Pair(
                path_a=_join(root, image_relpath(name_a, i)),
                path_b=_join(root, image_relpath(name_b, j)),
                same=same,
                fold=fold,
                name_a=name_a,
                name_b=name_b,
            )
        )

    if header is None:
        # Header-less: a single fold, lines classified by field count.
        for lineno, toks in lines:
            try:
                if len(toks) == 3:
                    add(_parse_matched(toks), True, 0)
                elif len(toks) == 4:
                    add(_parse_mismatched(toks), False, 0)
                else:
                    raise _LineError(
                        f"expected 'Name i j' or 'Name1 i Name2 j', got {len(toks)} fields"
                    )
            except _LineError as e:
                raise fail(lineno, str(e)) from None
        return PairsProtocol(pairs=pairs, n_folds=1, pairs_per_fold=None, source=source, has_header=False)

    n_folds, n_per = header
    body = lines[1:]
    expected = n_folds * 2 * n_per
    block = 2 * n_per
    for k, (lineno, toks) in enumerate(body):
        if k >= expected:
            raise fail(
                lineno,
                f"unexpected extra line: header announces {n_folds} folds x {n_per} matched "
                f"+ {n_per} mismatched = {expected} pairs",
            )
        fold, within = divmod(k, block)
        try:
            if within < n_per:
                add(_parse_matched(toks), True, fold)
            else:
                add(_parse_mismatched(toks), False, fold)
        except _LineError as e:
            raise fail(lineno, f"fold {fold}: {e}") from None
    if len(body) < expected:
        last = body[-1][0] if body else first_no
        raise fail(
            last,
            f"file ends after {len(body)} pairs; header announces {n_folds} folds x "
            f"({n_per} matched + {n_per} mismatched) = {expected} pairs",
        )
    return PairsProtocol(pairs=pairs, n_folds=n_folds, pairs_per_fold=n_per, source=source, has_header=True)


def read_pairs(path: str | os.PathLike, root: str | os.PathLike | None = None) -> PairsProtocol:
    """Read and parse an LFW-format pairs file (see :func:`parse_pairs`)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    return parse_pairs(text, root=root, source=str(path))


def people_in_folds(protocol: PairsProtocol, folds: int | Iterable[int]) -> set[str]:
    """Names of all people appearing (on either side of a pair) in ``folds``.

    Use it to keep validation people out of a training set::

        banned = people_in_folds(protocol, range(protocol.n_folds))

    Raises ValueError for a fold number outside ``[0, n_folds)``.
    """
    wanted = {int(folds)} if isinstance(folds, (int, np.integer)) else {int(f) for f in folds}
    bad = sorted(f for f in wanted if not 0 <= f < protocol.n_folds)
    if bad:
        raise ValueError(f"fold(s) {bad} out of range for a protocol with {protocol.n_folds} folds")
    people: set[str] = set()
    for p in protocol.pairs:
        if p.fold in wanted:
            people.update(p.names)
    return people
