"""Loss names accepted by ``get_loss`` and ``model-build train --loss``. Kept free of
TensorFlow so the command line parses (and --help prints) without loading it."""

LOSS_NAMES = ("triplet-semi-hard", "triplet-batch-hard", "triplet-batch-all",
              "triplet-distance-weighted", "margin", "contrastive", "binary-head", "binary-head-chi2")
