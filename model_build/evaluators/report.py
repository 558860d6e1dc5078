"""Write a face-verification report: markdown, JSON and two plots.

Plots use matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``):
no display is needed, pyplot's global state and the process-wide backend are
left untouched, and matplotlib is only imported when a plot is drawn (the
metric modules stay importable without it).  No TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .verification import FAILURE_POLICY, _json_safe

__all__ = ["write_report", "plot_roc_curves", "plot_distance_histograms", "render_markdown"]

_FAR_FLOOR = 1e-6  # lower x-limit used when a curve has no positive FAR


def _new_figure(figsize=(6.4, 4.8)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "-inf" if x < 0 else "+inf"
        return f"{x:.{digits}f}"
    return str(x)


def _fmt_far(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0e}" if 0 < x < 0.01 else f"{x:g}"


def _thin(far: np.ndarray, tar: np.ndarray, max_points: int, x_floor: float) -> np.ndarray:
    """Indices of a drawing subset of a monotone curve (FAR and TAR non-decreasing)."""
    half = max(2, max_points // 2)
    grid_far = np.logspace(np.log10(max(x_floor, 1e-12)), 0.0, half)
    grid_tar = np.linspace(0.0, 1.0, half)
    idx = np.concatenate((
        np.searchsorted(far, grid_far, side="left"),
        np.searchsorted(far, grid_far, side="right") - 1,
        np.searchsorted(tar, grid_tar, side="left"),
        [0, far.size - 1],
    ))
    return np.unique(np.clip(idx, 0, far.size - 1))


def merge_close_labels(points: Sequence[tuple[float, float, str]], to_axes, min_gap: float = 0.06
                       ) -> list[tuple[float, float, str]]:
    """Operating points whose labels would print over each other (closer than min_gap of
    the axes, where ``to_axes(x, y)`` gives axes fractions) become one point with the
    labels joined: FAR<=1e-4 and FAR<=1e-3 met at the same threshold read
    "FAR<=1e-04, FAR<=1e-03" instead of a smudge."""
    merged: list[tuple[float, float, list[str]]] = []
    for x, y, label in points:
        ax, ay = to_axes(x, y)
        for k, (mx, my, labels) in enumerate(merged):
            bx, by = to_axes(mx, my)
            if abs(ax - bx) < min_gap * 2 and abs(ay - by) < min_gap:
                merged[k] = (mx, my, labels + [label])
                break
        else:
            merged.append((x, y, [label]))
    return [(x, y, ", ".join(dict.fromkeys(label for label in labels if label))) for x, y, labels in merged]


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    title: str = "ROC",
    operating_points: Mapping[str, Sequence[tuple[float, float, str]]] | None = None,
    log_far: bool = True,
    max_points: int = 5000,
) -> Path:
    """Plot several ROC curves ``{name: (far, tar)}`` on one chart and save it.

    FAR on a log x axis (``log_far=True``): FAR == 0 cannot be drawn there,
    so such points are drawn at the left edge of the axis, which starts a
    factor 2 below the smallest positive FAR of all curves.  Points are joined
    by straight lines (the segments the trapezoidal AUC integrates); curves
    with more than ``max_points`` points are thinned for drawing only (points
    kept on a log-FAR grid and a linear TAR grid, plus both ends).  ``operating_points``: optional ``{name: [(far, tar, label), ...]}``
    markers drawn in the curve's colour.  Returns the saved path.
    """
    path = Path(path)
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    min_pos = []
    for far, _ in curves.values():
        far = np.asarray(far, dtype=float)
        pos = far[far > 0]
        if pos.size:
            min_pos.append(pos.min())
    x_floor = (min(min_pos) / 2.0) if min_pos else _FAR_FLOOR
    for name, (far, tar) in curves.items():
        far = np.asarray(far, dtype=float)
        tar = np.asarray(tar, dtype=float)
        if log_far:
            # replace FAR=0 points by the axis floor so the TAR reached at zero FAR stays visible
            far = np.where(far > 0, far, x_floor)
        if far.size > max_points:
            keep = _thin(far, tar, max_points, x_floor)
            far, tar = far[keep], tar[keep]
        (line,) = ax.plot(far, tar, label=name, linewidth=1.5)
        marks = [(ofar if (ofar > 0 or not log_far) else x_floor, otar, label)
                 for ofar, otar, label in (operating_points or {}).get(name, ())
                 if ofar is not None and otar is not None]
        lo = math.log10(x_floor) if log_far else 0.0
        for ox, otar, label in merge_close_labels(
                marks, lambda x, y: ((math.log10(x) - lo) / -lo if log_far else x, y)):
            ax.plot([ox], [otar], marker="o", color=line.get_color(), markersize=5, linestyle="none")
            if label:
                ax.annotate(label, (ox, otar), textcoords="offset points", xytext=(5, -10), fontsize=7,
                            color=line.get_color())
    if log_far:
        ax.set_xscale("log")
        ax.set_xlim(x_floor, 1.0)
    else:
        ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("False accept rate (FAR)" + (" [log]" if log_far else ""))
    ax.set_ylabel("True accept rate (TAR)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_distance_histograms(
    same_distances: np.ndarray,
    diff_distances: np.ndarray,
    path: str | os.PathLike,
    *,
    thresholds: Mapping[str, float | None] | None = None,
    title: str = "Pair distances",
    bins: int = 60,
) -> Path:
    """Histograms (density) of same vs different pair distances, with
    vertical lines at ``thresholds`` ``{label: value}``.  Failed pairs
    (non-finite distances) cannot be drawn; their count is given in the legend."""
    path = Path(path)
    s = np.asarray(same_distances, dtype=float).reshape(-1)
    d = np.asarray(diff_distances, dtype=float).reshape(-1)
    s_ok, d_ok = s[np.isfinite(s)], d[np.isfinite(d)]
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    both = np.concatenate((s_ok, d_ok))
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        if s_ok.size:
            ax.hist(s_ok, bins=edges, density=True, alpha=0.55, color="tab:green",
                    label=f"same (n={s_ok.size}, failed={s.size - s_ok.size})")
        if d_ok.size:
            ax.hist(d_ok, bins=edges, density=True, alpha=0.55, color="tab:red",
                    label=f"different (n={d_ok.size}, failed={d.size - d_ok.size})")
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    colors = ["black", "tab:blue", "tab:purple", "tab:orange", "tab:brown", "tab:gray", "tab:olive"]
    for k, (label, value) in enumerate((thresholds or {}).items()):
        if value is None or not math.isfinite(value):
            continue
        ax.axvline(value, color=colors[k % len(colors)], linestyle=styles[k % len(styles)], linewidth=1.2,
                   label=f"{label} = {value:.3f}")
    ax.set_xlabel("Euclidean distance (accept if <= threshold)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _operating_points(summary: Mapping[str, Any]) -> list[tuple[float, float, str]]:
    pts = []
    for row in summary.get("tar_at_far", []):
        if row.get("achieved_far") is not None and row.get("tar") is not None:
            pts.append((row["achieved_far"], row["tar"], f"FAR<={_fmt_far(row['far'])}"))
    eer = summary.get("eer")
    if eer is not None:
        pts.append((eer, 1.0 - eer, "EER"))
    return pts


def _threshold_lines(summary: Mapping[str, Any]) -> dict[str, float | None]:
    lines: dict[str, float | None] = {}
    acc = summary.get("accuracy") or {}
    if acc.get("threshold_mean") is not None:
        lines["accuracy thr (mean)"] = acc["threshold_mean"]
    if summary.get("eer_threshold") is not None:
        lines["EER thr"] = summary["eer_threshold"]
    for row in summary.get("tar_at_far", []):
        lines[f"thr @ FAR<={_fmt_far(row['far'])}"] = row.get("threshold")
    return lines


def render_markdown(summary: Mapping[str, Any], title: str = "Face verification report",
                    images: Sequence[str] = ()) -> str:
    """Markdown text of a :func:`~.verification.verification_summary` dict."""
    out: list[str] = [f"# {title}", ""]
    acc = summary.get("accuracy") or {}
    fail = summary.get("failures") or {}
    out += ["## Overview", "", "| figure | value |", "|---|---|"]
    if acc:
        out.append(f"| accuracy (mean ± std over folds) | {_fmt(acc.get('accuracy_mean'))} ± {_fmt(acc.get('accuracy_std'))} |")
    out += [
        f"| ROC AUC | {_fmt(summary.get('auc'))} |",
        f"| EER | {_fmt(summary.get('eer'))} (threshold {_fmt(summary.get('eer_threshold'))}) |",
        f"| pairs (same / different) | {summary.get('n_pairs')} ({summary.get('n_same')} / {summary.get('n_different')}) |",
        f"| failed pairs (same / different) | {fail.get('n_failed_pairs', 0)} ({fail.get('n_failed_same', 0)} / {fail.get('n_failed_different', 0)}) |",
    ]
    if fail.get("n_images") is not None or fail.get("n_failed_images") is not None:
        out.append(f"| images without embedding | {_fmt(fail.get('n_failed_images'))} of {_fmt(fail.get('n_images'))} |")
    out.append("")
    if fail:
        out += [f"Failure policy: {fail.get('policy', FAILURE_POLICY)}.", ""]

    if acc:
        out += ["## Verification accuracy", "",
                f"{acc.get('note', '')} (threshold choice: {acc.get('threshold_choice', '?')}).", "",
                "| fold | pairs | threshold | held-out accuracy | accuracy on threshold-selection set |",
                "|---|---|---|---|---|"]
        for fid, n, t, a, ta in zip(acc.get("folds", []), acc.get("fold_sizes", []), acc.get("fold_thresholds", []),
                                    acc.get("fold_accuracies", []), acc.get("fold_train_accuracies", [])):
            out.append(f"| {fid} | {n} | {_fmt(t)} | {_fmt(a)} | {_fmt(ta)} |")
        out.append(f"| **mean** | | {_fmt(acc.get('threshold_mean'))} | **{_fmt(acc.get('accuracy_mean'))}** ± {_fmt(acc.get('accuracy_std'))} | |")
        out.append("")

    rows = summary.get("tar_at_far") or []
    if rows:
        out += ["## TAR at fixed FAR", "",
                "| target FAR | TAR | threshold | achieved FAR |", "|---|---|---|---|"]
        for r in rows:
            out.append(f"| {_fmt_far(r.get('far'))} | {_fmt(r.get('tar'))} | {_fmt(r.get('threshold'))} | {_fmt(r.get('achieved_far'), 6)} |")
        n_diff = summary.get("n_different")
        if n_diff:
            out += ["", f"With {n_diff} different pairs the smallest non-zero FAR is {1 / n_diff:.2e}; "
                        "a threshold of n/a means no distance meets the target (accept nothing)."]
        out.append("")

    ds = summary.get("distance_stats") or {}
    if ds:
        out += ["## Distance statistics (finite distances)", "",
                "| pairs | n | mean | std | median |", "|---|---|---|---|---|"]
        for key in ("same", "different"):
            st = ds.get(key) or {}
            out.append(f"| {key} | {st.get('n')} | {_fmt(st.get('mean'))} | {_fmt(st.get('std'))} | {_fmt(st.get('median'))} |")
        out.append("")

    extra = {k: v for k, v in summary.items() if k not in _KNOWN_KEYS}
    if extra:
        out += ["## Additional figures", ""]
        for key, value in extra.items():
            out += _render_extra(str(key), value)

    for img in images:
        out += [f"![{Path(img).stem}]({img})", ""]
    return "\n".join(out)


_KNOWN_KEYS = {"n_pairs", "n_same", "n_different", "failures", "accuracy", "auc", "eer",
               "eer_threshold", "tar_at_far", "distance_stats"}


def _render_extra(key: str, value: Any) -> list[str]:
    """Generic rendering of summary keys added by callers (e.g. a calibration block)."""
    out = [f"### {key}", ""]
    if isinstance(value, Mapping):
        scalars = {k: v for k, v in value.items() if not isinstance(v, (Mapping, list, tuple))}
        if scalars:
            out += ["| figure | value |", "|---|---|"]
            out += [f"| {k} | {_fmt(v) if isinstance(v, float) else v} |" for k, v in scalars.items()]
            out.append("")
        rows = value.get("tar_at_far")
        if isinstance(rows, list) and rows and all(isinstance(r, Mapping) for r in rows):
            out += ["| target FAR | TAR | threshold | achieved FAR |", "|---|---|---|---|"]
            for r in rows:
                out.append(f"| {_fmt_far(r.get('far'))} | {_fmt(r.get('tar'))} | {_fmt(r.get('threshold'))} | {_fmt(r.get('achieved_far'), 6)} |")
            out.append("")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        out += [f"- {v}" for v in value] + [""]
    else:
        out += [f"{_fmt(value) if isinstance(value, float) else value}", ""]
    return out


def write_report(
    summary: Mapping[str, Any],
    out_dir: str | os.PathLike,
    same_distances: np.ndarray | None = None,
    diff_distances: np.ndarray | None = None,
    roc: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "Face verification report",
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``roc.png`` and ``distances.png``
    into ``out_dir`` (created if needed).

    ``summary`` is a :func:`~.verification.verification_summary` dict;
    ``roc`` the ``(far, tar)`` of :func:`~.verification.roc_curve`, drawn with
    the TAR@FAR operating points and the EER point marked;
    ``same_distances`` / ``diff_distances`` feed the histogram, with the mean
    accuracy threshold, the EER threshold and the TAR@FAR thresholds as
    vertical lines.  A plot whose inputs are None is skipped.  Returns
    ``{"md", "json", "roc", "distances"}`` -> path of each file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    images: list[str] = []
    if roc is not None:
        far, tar = roc
        written["roc"] = plot_roc_curves({title: (far, tar)}, out / "roc.png", title=f"{title}: ROC",
                                         operating_points={title: _operating_points(summary)})
        images.append("roc.png")
    if same_distances is not None and diff_distances is not None:
        written["distances"] = plot_distance_histograms(
            same_distances, diff_distances, out / "distances.png",
            thresholds=_threshold_lines(summary), title=f"{title}: pair distances")
        images.append("distances.png")
    json_path = out / "report.json"
    json_path.write_text(json.dumps(_json_safe(dict(summary)), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written["json"] = json_path
    md_path = out / "report.md"
    md_path.write_text(render_markdown(summary, title=title, images=images) + "\n", encoding="utf-8")
    written["md"] = md_path
    return written
