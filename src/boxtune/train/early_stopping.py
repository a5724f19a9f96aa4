"""Which epoch is best on the validation metric, and when to stop because it stopped improving."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Metrics where larger is better; every other one is a loss.
_MAXIMISED = ("map", "map50")


@dataclass
class BestEpochTracker:
    """Tracks the best value of ``metric``; ``patience`` epochs without a gain of more than
    ``min_delta`` stop the run when ``enabled`` (the reference's early_stopping options).

    An epoch whose metric is undefined (None, e.g. mAP of a validation set without boxes) never
    counts as an improvement, except the very first one, so that there is always a best epoch.
    """

    metric: str
    min_delta: float = 0.0
    patience: int = 5
    enabled: bool = False
    best_value: float | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0

    @property
    def maximise(self) -> bool:
        return self.metric in _MAXIMISED

    def update(self, epoch: int, value: float | None) -> bool:
        """Record ``value`` for ``epoch``; True when it is the new best."""
        if self.best_epoch is None:
            improved = True
        elif value is None:
            improved = False
        elif self.best_value is None:
            improved = True
        elif self.maximise:
            improved = value - self.min_delta > self.best_value
        else:
            improved = value + self.min_delta < self.best_value
        if improved:
            self.best_value, self.best_epoch = value, epoch
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return improved

    def should_stop(self) -> bool:
        return self.enabled and self.epochs_without_improvement >= self.patience

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> BestEpochTracker:
        return cls(**state)
