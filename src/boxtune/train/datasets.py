"""The data a run trains and validates on: reading, splitting, the label map, the loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from boxtune.data import AugmentConfig, BatchLoader, DetectionDataset, make_loader, read_dataset
from boxtune.data.augment import PRESETS
from boxtune.data.split import split_dataset
from boxtune.errors import DatasetError, HyperparameterError
from boxtune.labels import LabelMap
from boxtune.train.hyperparameters import Hyperparameters

# Dataset warnings printed in full; the rest are counted.
_SHOWN_WARNINGS = 5


@dataclass
class TrainingData:
    train: DetectionDataset
    validation: DetectionDataset
    label_map: LabelMap
    validation_source: str  # "channel" or "split"


def load_training_data(
    training: str, validation: str | None, hp: Hyperparameters, log: Callable[[str], None]
) -> TrainingData:
    """Read (and validate) the channels; without a validation channel, hold out a stratified
    ``validation_split_ratio`` of the training images. The label map is the training data's."""
    full = read_dataset(training)
    _log_warnings(full, training, log)
    label_map = full.label_map
    if len(label_map) == 0:
        raise DatasetError(
            "the training data defines no classes",
            where=str(training),
            hint="annotations.json needs annotations with category_id (and optionally "
            "'categories' with names)",
        )
    if not full.annotations:
        raise DatasetError(
            "the training data has no boxes",
            where=str(training),
            hint="a detector cannot learn from negatives only; annotate some objects",
        )
    if validation:
        val = read_dataset(validation)
        _log_warnings(val, validation, log)
        unknown = sorted(set(val.categories) - set(label_map.category_ids))
        if unknown:
            raise DatasetError(
                f"validation categories {unknown} do not occur in the training data's classes "
                f"{list(label_map.category_ids)}",
                where=str(validation),
                hint="use the same category ids in both annotations.json files",
            )
        return TrainingData(full, val, label_map, "channel")
    train, val = split_dataset(full, hp.validation_split_ratio, hp.seed)
    log(
        f"validation: no validation channel, holding out {len(val)} of {len(full)} training "
        f"images (validation_split_ratio={hp.validation_split_ratio})"
    )
    return TrainingData(train, val, label_map, "split")


def _log_warnings(dataset: DetectionDataset, location: str, log: Callable[[str], None]) -> None:
    warnings = dataset.warnings
    for issue in warnings[:_SHOWN_WARNINGS]:
        log(issue.render())
    if len(warnings) > _SHOWN_WARNINGS:
        log(
            f"... and {len(warnings) - _SHOWN_WARNINGS} more dataset warnings "
            f"(see `boxtune data validate {location}`)"
        )


def augment_config(hp: Hyperparameters) -> AugmentConfig | None:
    """The data layer's AugmentConfig for ``hp.augmentation`` (None when it is off)."""
    if hp.augmentation == "False":
        return None
    if hp.augmentation == "True":
        return AugmentConfig()
    if hp.augmentation not in PRESETS:
        raise HyperparameterError(
            f"unknown augmentation preset {hp.augmentation!r}",
            where="augmentation",
            hint=f"use True, False or one of {', '.join(PRESETS)}",
        )
    return PRESETS[hp.augmentation]


def make_loaders(
    data: TrainingData, hp: Hyperparameters, image_size: int
) -> tuple[BatchLoader, BatchLoader]:
    """Training loader (shuffled, augmented) and validation loader (in order, plain).

    Both are built once: the loader caches decoded images across epochs.
    """
    workers = hp.resolved_num_workers()
    train_loader = make_loader(
        data.train,
        data.label_map,
        image_size,
        hp.batch_size,
        augment=augment_config(hp),
        shuffle=True,
        num_workers=workers,
        seed=hp.seed,
    )
    val_loader = make_loader(
        data.validation,
        data.label_map,
        image_size,
        hp.batch_size,
        augment=None,
        shuffle=False,
        num_workers=workers,
        seed=hp.seed,
    )
    return train_loader, val_loader
