"""The default hyperparameters of catalog models, in the managed platform's names (all strings).

Small models fine-tune fully for 5 epochs; large ones get fewer epochs, a smaller batch and
``train_only_top_layer="True"`` (only the detection head trains), as the platform's defaults do.
"""

from __future__ import annotations

COMMON_DEFAULTS: dict[str, str] = {
    "batch_size": "3",
    "epochs": "5",
    "learning_rate": "0.001",
    "optimizer": "adam",
    "momentum": "0.9",
    "beta_1": "0.9",
    "beta_2": "0.999",
    "epsilon": "1e-07",
    "rho": "0.95",
    "initial_accumulator_value": "0.1",
    "early_stopping": "False",
    "early_stopping_min_delta": "0.0",
    "early_stopping_patience": "5",
    "reinitialize_top_layer": "Auto",
    "train_only_top_layer": "False",
}


def defaults(**overrides: str) -> dict[str, str]:
    merged = dict(COMMON_DEFAULTS)
    merged.update(overrides)
    return merged


def small(batch_size: int) -> dict[str, str]:
    """Small, CPU-friendly models: full fine-tuning for 5 epochs."""
    return defaults(batch_size=str(batch_size), epochs="5")


def large(batch_size: int, epochs: int = 1) -> dict[str, str]:
    """Large models: few epochs, only the detection head trains (as the reference does)."""
    return defaults(batch_size=str(batch_size), epochs=str(epochs), train_only_top_layer="True")
