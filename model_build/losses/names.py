"""Loss names accepted by ``model-build train --losses``. Free of TensorFlow (the package
loads its Keras losses lazily), so the command line parses and --help prints without it."""

# Distillation losses (losses/distillation.py): every row, against the teacher.
DISTILL_LOSS_NAMES = ("distill", "relational", "centre")
# Metric losses (losses/triplet.py, contrastive.py, binary_head.py): the labelled rows.
METRIC_LOSS_NAMES = ("triplet-semi-hard", "triplet-batch-hard", "triplet-batch-all",
                     "triplet-distance-weighted", "margin", "contrastive", "binary-head", "binary-head-chi2")
LOSS_NAMES = DISTILL_LOSS_NAMES + METRIC_LOSS_NAMES
# The losses that need the labelled P x K rows (people with two or more images).
LABELLED_LOSS_NAMES = ("centre",) + METRIC_LOSS_NAMES
