"""Reading a TF2 Detection Model Zoo checkpoint (``ckpt-0`` of a zoo tarball, or one written
like it) and restoring its values into the Keras variables of a boxtune zoo network.

The zoo's checkpoints are object-based TF2 checkpoints of ``tf.train.Checkpoint(model=...)``:
every variable is saved as ``model/<object path>/.ATTRIBUTES/VARIABLE_VALUE``, next to
``save_counter`` and the object graph. boxtune's networks say, part by part, which variable
holds which key (the ``*_checkpoint_map`` functions); :func:`restore` assigns them and refuses,
naming every culprit, a checkpoint that does not fit exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from boxtune.errors import ModelError, printable

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
SAVE_COUNTER_KEY = "save_counter"
FEATURE_EXTRACTOR_PREFIX = "model/_feature_extractor/"
_OPTIMIZER_SLOT = "/.OPTIMIZER_SLOT/"
_HINT_PATH = (
    "give the checkpoint prefix (.../checkpoint/ckpt-0), the folder holding its `checkpoint` "
    "state file, or the extracted zoo tarball's folder (<zoo>/checkpoint/ckpt-0 inside)"
)


class CheckpointMismatchError(ModelError):
    """The checkpoint's keys or shapes do not fit the model; each list names every culprit."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        unplaced_keys: tuple[str, ...] = (),
        missing_keys: tuple[str, ...] = (),
        shape_mismatches: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (),
    ):
        self.unplaced_keys = unplaced_keys
        self.missing_keys = missing_keys
        self.shape_mismatches = shape_mismatches
        super().__init__(message, where=where, hint=hint)


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore` did: checkpoint keys assigned, checkpoint keys skipped (``skip``),
    and model variables left at their initial values (their keys skipped)."""

    restored: tuple[str, ...]
    skipped: tuple[str, ...]
    not_restored: tuple[str, ...]
    restored_parameters: int

    @property
    def num_restored(self) -> int:
        return len(self.restored)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    @property
    def num_not_restored(self) -> int:
        return len(self.not_restored)

    def summary(self) -> str:
        return (
            f"{self.num_restored} variables restored ({self.restored_parameters:,} values), "
            f"{self.num_skipped} checkpoint keys skipped, "
            f"{self.num_not_restored} model variables kept their initial values"
        )


def feature_extractor_only(key: str) -> bool:
    """A ``skip`` for the API's ``fine_tune_checkpoint_type: detection``: it restores only
    ``model/_feature_extractor/*`` (backbone and FPN/BiFPN), never the box predictor."""
    return not key.startswith(FEATURE_EXTRACTOR_PREFIX)


def checkpoint_prefix(path: str | os.PathLike) -> str:
    """The checkpoint prefix (``.../ckpt-0``) that ``path`` names: the prefix itself (or its
    ``.index`` file), a folder with a ``checkpoint`` state file (its latest checkpoint), a
    folder with a single ``*.index`` checkpoint, or a folder whose ``checkpoint`` sub-folder is
    one of these (an extracted zoo tarball)."""
    import tensorflow as tf

    given = Path(os.fspath(path))
    where = printable(given)
    if given.suffix == ".index" and given.is_file():
        given = given.with_suffix("")
    if Path(f"{given}.index").is_file():
        return str(given)
    if not given.exists():
        raise ModelError("no such checkpoint, file or folder", where=where, hint=_HINT_PATH)
    if not given.is_dir():
        raise ModelError(
            "not a TF2 checkpoint (no .index file next to this prefix)",
            where=where,
            hint=_HINT_PATH,
        )
    state = given / "checkpoint"
    if state.is_dir():  # an extracted zoo tarball: <zoo>/checkpoint/{checkpoint,ckpt-0.*}
        return checkpoint_prefix(state)
    if state.is_file():
        try:
            latest = tf.train.latest_checkpoint(str(given))
        except Exception:  # a damaged state file: explained below
            latest = None
        if latest is None or not Path(f"{latest}.index").is_file():
            raise ModelError(
                "the `checkpoint` state file names no checkpoint that exists here",
                where=printable(state),
                hint="fix model_checkpoint_path in it, or give the checkpoint prefix itself",
            )
        return latest
    indexes = sorted(given.glob("*.index"))
    if len(indexes) == 1:
        return str(indexes[0].with_suffix(""))
    found = ", ".join(index.name for index in indexes) or "no *.index file"
    raise ModelError(
        f"no checkpoint state file here and not exactly one checkpoint ({found})",
        where=where,
        hint=_HINT_PATH,
    )


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint at ``path`` (see :func:`checkpoint_prefix`), keyed
    without the ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix; the object graph, ``save_counter`` and
    any optimizer state (``optimizer/...``, ``.OPTIMIZER_SLOT``) are left out."""
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
        values = {}
        for name in names:
            key = name.removesuffix(SUFFIX)
            if (
                key in (OBJECT_GRAPH_KEY, SAVE_COUNTER_KEY)
                or key.startswith("optimizer/")
                or _OPTIMIZER_SLOT in name
            ):
                continue
            values[key] = np.asarray(reader.get_tensor(name))
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelError(
            f"the checkpoint cannot be read ({type(exc).__name__}: {_first_line(exc)})",
            where=printable(prefix),
            hint="the .index or .data files are damaged or incomplete: download or copy them again",
        ) from exc
    return values


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _listing(title: str, items: list[str]) -> str:
    return f"{title} ({len(items)}):\n" + "\n".join(f"  {item}" for item in items)


def restore(
    variable_map: Mapping[str, keras.Variable],
    values: Mapping[str, np.ndarray],
    *,
    skip: Callable[[str], bool] | None = None,
    where: str,
) -> RestoreReport:
    """Assign ``values`` (from :func:`read_checkpoint`) to the variables of ``variable_map``
    (checkpoint key -> ``keras.Variable``), all or nothing.

    ``skip(key)`` True: the key is not restored (a checkpoint key is left unread, a model
    variable keeps its initial value); such keys are reported, not errors. Otherwise every
    checkpoint key must have a variable, every variable a key, and the shapes must be equal:
    :class:`CheckpointMismatchError` (a ``ModelError``, ``where``: the checkpoint) names every
    key that breaks this, and nothing is assigned."""
    skip = skip or (lambda key: False)
    seen: dict[int, str] = {}
    for key, variable in variable_map.items():
        other = seen.setdefault(id(variable), key)
        if other != key:
            raise ValueError(f"the variable map gives one variable two keys: {other}, {key}")
    skipped = sorted(key for key in values if skip(key))
    not_restored = sorted(key for key in variable_map if skip(key))
    unplaced = sorted(key for key in values if not skip(key) and key not in variable_map)
    missing = sorted(key for key in variable_map if not skip(key) and key not in values)
    mismatches, dtype_mismatches = [], []
    for key in sorted(values):
        if skip(key) or key not in variable_map:
            continue
        expected = tuple(int(n) for n in variable_map[key].shape)
        actual = tuple(int(n) for n in np.shape(values[key]))
        if actual != expected:
            mismatches.append((key, actual, expected))
        elif np.asarray(values[key]).dtype.kind != _dtype(variable_map[key]).kind:
            dtype_mismatches.append(
                f"{key}: {np.asarray(values[key]).dtype} vs {_dtype(variable_map[key])}"
            )
    if unplaced or missing or mismatches or dtype_mismatches:
        parts, what = [], []
        if unplaced:
            parts.append(_listing("checkpoint keys the model has no variable for", unplaced))
            what.append(f"{len(unplaced)} checkpoint keys have no place in the model")
        if missing:
            parts.append(_listing("model variables the checkpoint has no key for", missing))
            what.append(f"{len(missing)} model variables are not in the checkpoint")
        if mismatches:
            parts.append(
                _listing(
                    "shapes that differ (checkpoint vs model)",
                    [f"{key}: {list(a)} vs {list(e)}" for key, a, e in mismatches],
                )
            )
            what.append(f"{len(mismatches)} shapes differ")
        if dtype_mismatches:
            parts.append(_listing("types that differ (checkpoint vs model)", dtype_mismatches))
            what.append(f"{len(dtype_mismatches)} value types differ")
        raise CheckpointMismatchError(
            "the checkpoint does not fit the model: " + "; ".join(what) + "\n" + "\n".join(parts),
            where=where,
            hint="use the checkpoint of the same zoo model (the architecture must match the "
            "pipeline.config it was trained with, including num_classes); a checkpoint with "
            "another label map restores with its class head skipped",
            unplaced_keys=tuple(unplaced),
            missing_keys=tuple(missing),
            shape_mismatches=tuple(mismatches),
        )
    restored = sorted(key for key in values if not skip(key))
    count = 0
    for key in restored:
        variable = variable_map[key]
        value = np.asarray(values[key])
        variable.assign(value.astype(_dtype(variable), copy=False))
        count += int(value.size)
    return RestoreReport(
        restored=tuple(restored),
        skipped=tuple(skipped),
        not_restored=tuple(not_restored),
        restored_parameters=count,
    )


def _dtype(variable: keras.Variable) -> np.dtype:
    return np.dtype(keras.backend.standardize_dtype(variable.dtype))
