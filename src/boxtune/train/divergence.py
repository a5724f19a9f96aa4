"""Stop a run whose loss became NaN/inf or exploded, instead of exporting a model that detects
nothing (a failure users of the managed service hit with a loss of ~9e5 and no warning)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

from boxtune.errors import TrainingError


@dataclass
class DivergenceGuard:
    """``check`` raises TrainingError on a non-finite loss, or on a loss more than ``factor``
    times the median of the run's first ``reference_steps`` losses."""

    factor: float = 100.0
    reference_steps: int = 20
    min_reference_steps: int = 3
    first_losses: list[float] = field(default_factory=list)

    @property
    def reference(self) -> float | None:
        if len(self.first_losses) < self.min_reference_steps:
            return None
        return statistics.median(self.first_losses)

    def check(self, loss: float, *, epoch: int, step: int, learning_rate: float, optimizer: str):
        if not math.isfinite(loss):
            raise self._error(f"the loss is {loss}", epoch, step, learning_rate, optimizer)
        reference = self.reference
        if reference is not None and reference > 0 and loss > self.factor * reference:
            raise self._error(
                f"the loss exploded to {loss:.4g}, more than {self.factor:g}x the median "
                f"{reference:.4g} of the first {len(self.first_losses)} steps",
                epoch,
                step,
                learning_rate,
                optimizer,
            )
        if len(self.first_losses) < self.reference_steps:
            self.first_losses.append(float(loss))

    @staticmethod
    def _error(what: str, epoch: int, step: int, lr: float, optimizer: str) -> TrainingError:
        other = "adam" if optimizer != "adam" else "sgd"
        return TrainingError(
            f"training diverged: {what}",
            where=f"epoch {epoch}, step {step} (learning rate {lr:.3g}, optimizer {optimizer})",
            hint=f"lower the learning rate (e.g. --hp learning_rate={lr / 10:.2g}), try another "
            f"optimizer (e.g. --hp optimizer={other}), keep gradient_clip_norm > 0, "
            "or check the dataset's boxes with `boxtune data validate`; continue from the last "
            "good epoch with --resume and the new hyperparameters",
        )

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> DivergenceGuard:
        return cls(**state)
