"""A training run's settings, importable without TensorFlow (the command line reads its
defaults before TensorFlow is loaded)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from model_build.data.views import ViewConfig


@dataclass
class TrainConfig:
    """Everything that decides what a training run produces (saved with the run)."""

    input_size: int = 112
    embedding_size: int = 128
    width: float = 1.0
    teacher: str = "sface"
    losses: str = "distill=1,relational=4,triplet-semi-hard=0.5"
    margin: float = 0.2                 # the metric loss's α (triplet) or margin
    identities_per_batch: int = 8       # P
    images_per_identity: int = 4        # K
    unlabelled_per_batch: int = 32      # U: any image, single-image people included
    # How often a row shows the plain crop (view 0, what the door sees of a clear face);
    # the rest are spread over the augmented views.
    plain_view_share: float = 1 / 3
    steps: int = 8000
    learning_rate: float = 3e-3
    warmup_steps: int = 300
    weight_decay: float = 5e-5
    seed: int = 0
    checkpoint_every: int = 250
    # The global depthwise conv's batch-norm epsilon (models/encoder.py, GDC_BN_EPSILON when
    # None). It is no weight, so a checkpoint does not carry it: the run records the value it
    # built, and a resume rebuilds with that.
    gdc_bn_epsilon: float | None = None
    # Keep a moving average of the weights with this decay and save it as the run's model
    # (models/ema.py); 0 saves the last step's weights.
    ema_decay: float = 0.0
    views: dict = field(default_factory=lambda: asdict(ViewConfig()))

    @property
    def labelled_rows(self) -> int:
        return self.identities_per_batch * self.images_per_identity

    @property
    def batch_size(self) -> int:
        return self.labelled_rows + self.unlabelled_per_batch
