"""Datasets: the managed layout, validation, importers, the sample generator and loaders.

Framework-free throughout: loaders yield numpy batches (:class:`Batch`) that each engine
converts itself.
"""

from __future__ import annotations

from boxtune.data.augment import AugmentConfig
from boxtune.data.io import DatasetWriter, read_dataset, write_dataset
from boxtune.data.issues import Issue, ValidationReport
from boxtune.data.loader import Batch, BatchLoader, make_loader
from boxtune.data.records import BoxAnnotation, DetectionDataset, ImageRecord
from boxtune.data.sample import generate_sample_dataset
from boxtune.data.split import split_dataset
from boxtune.data.validate import CheckResult, check_dataset

__all__ = [
    "AugmentConfig",
    "Batch",
    "BatchLoader",
    "BoxAnnotation",
    "CheckResult",
    "DatasetWriter",
    "DetectionDataset",
    "ImageRecord",
    "Issue",
    "ValidationReport",
    "check_dataset",
    "check_location",
    "generate_sample_dataset",
    "make_loader",
    "read_dataset",
    "split_dataset",
    "validate_dataset",
    "write_dataset",
]


def check_location(location, *, decode_images: bool = True) -> CheckResult:
    """The validation report of a local folder or ``s3://`` prefix, and the dataset when it
    could be read (never raises for problems in the data)."""
    from boxtune.data.io import dataset_read_errors
    from boxtune.storage import is_remote, local_copy

    root = local_copy(location, kind="dataset") if is_remote(location) else location
    with dataset_read_errors(root):
        result = check_dataset(root, decode_images=decode_images)
    result.report.root = str(location)
    return result


def validate_dataset(location, *, decode_images: bool = True) -> ValidationReport:
    """The full validation report of a local folder or ``s3://`` prefix (never raises for data
    problems)."""
    return check_location(location, decode_images=decode_images).report
