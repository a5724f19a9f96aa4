"""The job's data channels under ``input/data``: ``training`` (required), ``validation``
(optional) and ``model`` (optional: a boxtune artifact to continue from, as a ``model.tar.gz``
or an unpacked artifact folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from boxtune.artifacts import MANIFEST_FILE, TARBALL_FILE
from boxtune.container.job_config import ChannelConfig
from boxtune.container.layout import (
    MODEL_CHANNEL,
    TRAINING_CHANNEL,
    VALIDATION_CHANNEL,
    MLLayout,
)
from boxtune.errors import DatasetError, ModelError

KNOWN_CHANNELS = (TRAINING_CHANNEL, VALIDATION_CHANNEL, MODEL_CHANNEL)
_TARBALL_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class Channels:
    training: Path
    validation: Path | None
    model: Path | None  # the artifact in the model channel: a folder or a tarball
    ignored: tuple[str, ...]  # channels boxtune does not read


def find_channels(layout: MLLayout, declared: dict[str, ChannelConfig] | None) -> Channels:
    """The channels ``inputdataconfig.json`` declares (``declared``), or without it the
    folders under ``input/data``; each must be there."""
    names = sorted(declared) if declared is not None else _folders(layout.data_dir)
    source = layout.input_data_config_file if declared is not None else layout.data_dir
    if TRAINING_CHANNEL not in names:
        raise DatasetError(
            f"the job has no {TRAINING_CHANNEL!r} channel"
            + (f" (its channels: {', '.join(names)})" if names else " (it has no channels)"),
            where=str(source),
            hint=_training_hint(names),
        )
    for name in (n for n in KNOWN_CHANNELS if n in names):
        if not layout.channel(name).is_dir():
            raise DatasetError(
                f"the {name!r} channel is declared but its folder is missing",
                where=str(layout.channel(name)),
                hint="the platform copies a channel's data there before training: check that "
                "the channel's S3 prefix (or file:// folder) holds the files",
            )
    model = layout.channel(MODEL_CHANNEL) if MODEL_CHANNEL in names else None
    return Channels(
        training=layout.channel(TRAINING_CHANNEL),
        validation=layout.channel(VALIDATION_CHANNEL) if VALIDATION_CHANNEL in names else None,
        model=find_artifact(model) if model is not None else None,
        ignored=tuple(n for n in names if n not in KNOWN_CHANNELS),
    )


def _folders(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def _training_hint(names: list[str]) -> str:
    hint = (
        f"give the job a {TRAINING_CHANNEL!r} channel holding images/ and annotations.json, "
        f"e.g. estimator.fit({{'{TRAINING_CHANNEL}': 's3://bucket/dataset/'}})"
    )
    if "train" in names:
        hint += f"; rename the channel 'train' to {TRAINING_CHANNEL!r} (the algorithm's name)"
    return hint


def find_artifact(channel: Path) -> Path:
    """The boxtune artifact in the model channel: the folder itself when it holds the
    manifest, else its one ``.tar.gz`` (``model.tar.gz`` when there are several)."""
    if (channel / MANIFEST_FILE).is_file():
        return channel
    entries = sorted(channel.iterdir())
    tarballs = [p for p in entries if p.is_file() and p.name.endswith(_TARBALL_SUFFIXES)]
    if len(tarballs) == 1:
        return tarballs[0]
    if (channel / TARBALL_FILE).is_file():
        return channel / TARBALL_FILE
    found = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:10]) or "nothing"
    raise ModelError(
        f"the {MODEL_CHANNEL!r} channel holds no boxtune artifact (found: {found})",
        where=str(channel),
        hint=f"point the {MODEL_CHANNEL!r} channel at a {TARBALL_FILE} written by boxtune (a "
        "previous training job's output) or at an artifact folder holding "
        f"{MANIFEST_FILE}; leave the channel out to fine-tune a catalog model",
    )
