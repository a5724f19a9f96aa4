"""Datasets: the managed layout, validation, importers, the sample generator and loaders.

Torch is imported only by the loader functions, so reading and validating stay light.
"""

from __future__ import annotations

from boxtune.data.io import DatasetWriter, read_dataset, write_dataset
from boxtune.data.issues import Issue, ValidationReport
from boxtune.data.records import BoxAnnotation, DetectionDataset, ImageRecord
from boxtune.data.sample import generate_sample_dataset
from boxtune.data.validate import check_dataset

__all__ = [
    "AugmentConfig",
    "BoxAnnotation",
    "DatasetWriter",
    "DetectionDataset",
    "ImageRecord",
    "Issue",
    "ValidationReport",
    "check_dataset",
    "generate_sample_dataset",
    "make_loader",
    "read_dataset",
    "split_dataset",
    "validate_dataset",
    "write_dataset",
]


def validate_dataset(location, *, decode_images: bool = True) -> ValidationReport:
    """The full validation report of a local folder or ``s3://`` prefix (never raises for data
    problems)."""
    from boxtune.storage import is_remote, local_copy

    root = local_copy(location, kind="dataset") if is_remote(location) else location
    report = check_dataset(root, decode_images=decode_images).report
    report.root = str(location)
    return report


def __getattr__(name: str):
    # Lazy: these pull in torch.
    if name in ("make_loader", "AugmentConfig", "split_dataset"):
        from boxtune.data import augment, loader, split

        return {
            "make_loader": loader.make_loader,
            "AugmentConfig": augment.AugmentConfig,
            "split_dataset": split.split_dataset,
        }[name]
    raise AttributeError(name)
