"""Face-verification evaluation: LFW pairs parsing, metrics and reports.

Pure numpy (+ matplotlib for the plots, imported lazily); never imports
TensorFlow, so the benchmark harness can reuse it.
"""

from .pairs import Pair, PairsProtocol, image_relpath, parse_pairs, people_in_folds, read_pairs
from .report import plot_distance_histograms, plot_roc_curves, render_markdown, write_report
from .verification import (
    DEFAULT_FARS,
    DEFAULT_MAX_PAIRS,
    FAILURE_POLICY,
    all_pairs,
    all_pairs_distances,
    equal_error_rate,
    iter_all_pairs,
    lfw_protocol_accuracy,
    pair_distances,
    roc_auc,
    roc_curve,
    split_distances,
    tar_at_far,
    threshold_at_far,
    verification_summary,
)

__all__ = [
    "Pair",
    "PairsProtocol",
    "image_relpath",
    "parse_pairs",
    "read_pairs",
    "people_in_folds",
    "DEFAULT_FARS",
    "DEFAULT_MAX_PAIRS",
    "FAILURE_POLICY",
    "pair_distances",
    "all_pairs",
    "iter_all_pairs",
    "all_pairs_distances",
    "split_distances",
    "roc_curve",
    "roc_auc",
    "equal_error_rate",
    "threshold_at_far",
    "tar_at_far",
    "lfw_protocol_accuracy",
    "verification_summary",
    "write_report",
    "plot_roc_curves",
    "plot_distance_histograms",
    "render_markdown",
]
