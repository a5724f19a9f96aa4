"""Learning rate over a run: a linear warm-up, then a cosine decay (or a constant rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The cosine ends at this fraction of the peak rather than 0: the last epochs still learn.
FINAL_LR_FRACTION = 0.05
# A warm-up longer than this share of the run would leave too little time at the peak rate.
MAX_WARMUP_SHARE = 1 / 3
# With a time budget the number of steps is unknown: the warm-up ends by this share of it.
MAX_WARMUP_SHARE_OF_TIME = 0.1


@dataclass(frozen=True)
class LearningRateSchedule:
    """``peak`` reached after ``warmup_steps``; ``shape`` "cosine" decays over the whole run.

    Progress is a fraction in [0, 1]: steps done over planned steps, or, with a time budget,
    the larger of that and the share of the budget used, so the decay ends when time runs out.
    """

    peak: float
    total_steps: int
    warmup_steps: int
    shape: str = "cosine"
    max_seconds: float = 0.0

    @classmethod
    def plan(
        cls,
        *,
        peak: float,
        steps_per_epoch: int,
        epochs: int,
        warmup_epochs: float,
        warmup_steps: int,
        shape: str,
        max_seconds: float = 0.0,
    ) -> tuple[LearningRateSchedule, str | None]:
        """The schedule and, when the requested warm-up had to be shortened, a note saying so."""
        total = max(1, steps_per_epoch * epochs)
        wanted = warmup_steps if warmup_steps > 0 else round(warmup_epochs * steps_per_epoch)
        cap = int(total * MAX_WARMUP_SHARE)
        note = None
        if wanted > cap:
            note = (
                f"note: warm-up shortened from {wanted} to {cap} steps "
                f"(at most a third of the {total} planned steps)"
            )
            wanted = cap
        return cls(peak, total, max(0, wanted), shape, max_seconds), note

    def progress(self, step: int, elapsed_seconds: float = 0.0) -> float:
        done = step / self.total_steps
        if self.max_seconds > 0:
            done = max(done, elapsed_seconds / self.max_seconds)
        return min(1.0, max(0.0, done))

    def learning_rate(self, step: int, elapsed_seconds: float = 0.0) -> float:
        """The rate for global step ``step`` (0-based)."""
        warm = 1.0 if step >= self.warmup_steps else (step + 1) / (self.warmup_steps + 1)
        if self.max_seconds > 0:
            warm = max(
                warm, min(1.0, elapsed_seconds / (MAX_WARMUP_SHARE_OF_TIME * self.max_seconds))
            )
        if self.shape == "constant":
            return self.peak * warm
        p = self.progress(step, elapsed_seconds)
        decay = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * p))
        return self.peak * warm * decay
