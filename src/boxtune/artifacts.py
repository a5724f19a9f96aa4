"""The model artifact: a directory and an identical ``model.tar.gz``.

Layout (format version 1)::

    boxtune-model.json   manifest: format_version, model_id, engine, family, architecture (the
                         engine's record of the network, enough to rebuild it without the
                         catalog), num_classes, image_size, hyperparameters, library versions,
                         created_at, and the sha256 + size of every other file
    (engine files)       the weights, in a format that loads without executing code, and a
                         fast-serving export where the engine has one (``Detector.export``);
                         names may be relative POSIX paths (``saved_model/saved_model.pb``)
    labels_info.json     the label map (LabelMap.to_json)
    metrics.json         final metrics
    history.json         per-epoch metrics
    model.tar.gz         all of the above, deterministic (sorted, fixed mtime/owner)

Writing goes to a temp dir renamed into place; loading verifies every hash and never unpickles.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxtune import cache
from boxtune.errors import BoxtuneWarning, ModelError, StorageError, os_error
from boxtune.fileio import (
    ArchiveError,
    ArchiveLimits,
    SafeTar,
    atomic_write_json,
    replace_directory,
    sha256_file,
    unsafe_name_problem,
)
from boxtune.labels import LabelMap
from boxtune.storage import is_remote, local_copy, upload

if TYPE_CHECKING:
    from boxtune.engines.base import Detector

FORMAT_VERSION = 1
MANIFEST_FILE = "boxtune-model.json"
TARBALL_FILE = "model.tar.gz"
LABELS_FILE = "labels_info.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
_TAR_MTIME = 0  # fixed, so identical files give an identical tarball
_MAX_MANIFEST_BYTES = 16 << 20
_ARCHIVE_HINT = (
    "a boxtune model.tar.gz holds only regular files under relative paths (no links, "
    "absolute, '..' or hidden names); re-create it with boxtune"
)


def _versions(libraries: tuple[str, ...]) -> dict[str, str]:
    """Python's version and those of boxtune, numpy and the engine's libraries."""
    versions = {"python": platform.python_version()}
    for name in ("boxtune", "numpy", *libraries):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _engine_libraries(engine_name: str) -> tuple[str, ...]:
    from boxtune import engines

    try:
        return engines.get_engine(engine_name).libraries
    except ModelError:  # an engine this boxtune does not register (tests' fakes)
        return ()


def _check_member_name(name: object, where: str, *, what: str, hint: str) -> None:
    """Refuse ``name`` unless it is a safe artifact file name (:func:`unsafe_name_problem`).

    The error reads ``<what> <name> (<problem>)``.
    """
    problem = unsafe_name_problem(name)
    if problem:
        raise ModelError(f"{what} {name!r} ({problem})", where=where, hint=hint)


def write_tarball(directory: Path, names: list[str], target: Path) -> None:
    """A deterministic gzip tar of ``names`` (relative POSIX paths, stored as they are: files
    only, sorted, fixed mtime/owner/mode); extraction creates the parent directories."""
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=_TAR_MTIME) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(names):
            path = directory / name
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mtime = _TAR_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)


def _check_exported(names: list[str], directory: Path, engine: str) -> None:
    """Catch an engine's bug before it becomes an artifact that does not load."""
    hint = "Detector.export must return the relative paths of the files it wrote, once each"
    reserved = {MANIFEST_FILE, TARBALL_FILE, LABELS_FILE, METRICS_FILE, HISTORY_FILE}
    for index, name in enumerate(names):
        _check_member_name(name, str(directory), what=f"the {engine} engine exported", hint=hint)
        if name in reserved:
            problem = "a name boxtune writes itself"
        elif name in names[:index]:
            problem = "a duplicate"
        elif not (directory / name).is_file():
            problem = "not a file: list every file under a directory, never the directory"
        else:
            continue
        raise ModelError(
            f"the {engine} engine exported {name!r} ({problem})", where=str(directory), hint=hint
        )


def _check_replaceable(target: Path) -> None:
    """Only an existing artifact (or an empty directory) may be replaced by a new one."""
    if not target.exists():
        return
    entries = list(target.iterdir()) if target.is_dir() else None
    if entries is None or (entries and not (target / MANIFEST_FILE).is_file()):
        raise ModelError(
            "the output location exists and is not a boxtune artifact",
            where=str(target),
            hint="choose a new or empty directory (an existing artifact is replaced)",
        )


def write_artifact(
    detector: Detector,
    output_dir: str | os.PathLike,
    *,
    model_id: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: dict | None = None,
    history: list | None = None,
) -> Path:
    """Write ``detector`` as an artifact at ``output_dir`` (local path or ``s3://`` URI).

    The engine writes its own files (``Detector.export``); the manifest records the
    detector's ``architecture()`` so that loading never needs the catalog. Returns the local
    artifact directory.
    """

    def fill(tmp: Path) -> tuple[list[str], dict]:
        names = list(detector.export(tmp))
        _check_exported(names, tmp, detector.engine)
        detector.label_map.save(tmp / LABELS_FILE)
        atomic_write_json(tmp / METRICS_FILE, metrics or {})
        atomic_write_json(tmp / HISTORY_FILE, history or [])
        names += [LABELS_FILE, METRICS_FILE, HISTORY_FILE]
        manifest = {
            "format": "boxtune-model",
            "format_version": FORMAT_VERSION,
            "model_id": model_id or detector.model_id,
            "engine": detector.engine,
            "family": detector.family,
            "architecture": detector.architecture(),
            "num_classes": len(detector.label_map),
            "image_size": int(detector.image_size),
            "hyperparameters": dict(hyperparameters or {}),
            "library_versions": _versions(_engine_libraries(detector.engine)),
        }
        return names, manifest

    return _publish(output_dir, fill)


def write_derived_artifact(
    artifact: Artifact,
    output_dir: str | os.PathLike,
    *,
    extra_files: Mapping[str, Path],
    manifest_updates: Mapping[str, Any],
) -> Path:
    """A new artifact at ``output_dir``: ``artifact``'s files plus ``extra_files`` (name in the
    artifact -> file to copy), its manifest updated with ``manifest_updates`` (e.g. the int8
    model of `boxtune export --quantize int8` and how it was made). ``output_dir`` may be the
    artifact itself: it is replaced atomically, as any artifact is."""

    def fill(tmp: Path) -> tuple[list[str], dict]:
        names = [n for n in artifact.files if n not in extra_files]
        for name in names:
            _copy_into(artifact.file(name), tmp / name)
        for name, source in extra_files.items():
            _copy_into(Path(source), tmp / name)
        _check_exported(list(extra_files), tmp, artifact.engine)
        manifest = {k: v for k, v in artifact.manifest.items() if k != "files"}
        manifest.update(manifest_updates)
        return [*names, *extra_files], manifest

    return _publish(output_dir, fill)


def _copy_into(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)


def _publish(output_dir: str | os.PathLike, fill: Callable[[Path], tuple[list[str], dict]]) -> Path:
    """Stage an artifact beside its target, ``fill(staging) -> (file names, manifest without
    files)``, then hash, write the manifest and the tarball, and swap it into place (and
    upload it for an ``s3://`` target). Nothing of a failed write remains."""
    remote = is_remote(output_dir)
    if remote:
        staging = Path(tempfile.mkdtemp(prefix="boxtune-artifact-"))
        target = staging / "artifact"
    else:
        target = Path(output_dir).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        names, manifest = fill(tmp)
        manifest["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        manifest["files"] = {
            name: {"sha256": sha256_file(tmp / name), "size": (tmp / name).stat().st_size}
            for name in sorted(names)
        }
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
        write_tarball(tmp, [*names, MANIFEST_FILE], tmp / TARBALL_FILE)
        _check_replaceable(target)
        replace_directory(tmp, target)
    except StorageError as exc:  # the user named the artifact, not its staging folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(exc.message, where=str(target), hint=exc.hint) from exc
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(exc, action="writing the artifact", path=target) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if remote:
        upload(target, str(output_dir), last=(TARBALL_FILE, MANIFEST_FILE))
    return target


def _listed_file(directory: Path, manifest: dict, name: str) -> Path:
    if name not in manifest["files"]:
        raise ModelError(
            f"{name} is not listed in {MANIFEST_FILE}",
            where=str(directory),
            hint="every file boxtune loads must be listed there with its sha256; "
            "the artifact is incomplete or was modified after export: export it again",
        )
    return directory / name


def _optional_listed_file(directory: Path, manifest: dict, name: str) -> Path | None:
    if name in manifest["files"]:
        return directory / name
    if (directory / name).exists():
        raise ModelError(
            f"{name} is present but not listed in {MANIFEST_FILE}, so it cannot be trusted",
            where=str(directory),
            hint="the artifact was modified after export: remove the file or export the "
            "artifact again",
        )
    return None


@dataclass
class Artifact:
    directory: Path
    manifest: dict
    label_map: LabelMap
    metrics: dict
    history: list

    @property
    def engine(self) -> str:
        return self.manifest["engine"]

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def family(self) -> str:
        return str(self.manifest.get("family") or "")

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    @property
    def hyperparameters(self) -> dict:
        return self.manifest.get("hyperparameters", {})

    @property
    def files(self) -> list[str]:
        return list(self.manifest["files"])

    @property
    def tarball(self) -> Path:
        return self.directory / TARBALL_FILE

    def file(self, name: str) -> Path:
        """The path of ``name``, which the manifest must list (so its sha256 was checked):
        engines load files only through this, :meth:`optional_file` and :meth:`subtree`."""
        return _listed_file(self.directory, self.manifest, name)

    def optional_file(self, name: str) -> Path | None:
        """``name``'s path when the manifest lists it, None when the artifact has no such
        file; a file on disk that the manifest omits is refused, never loaded unchecked."""
        return _optional_listed_file(self.directory, self.manifest, name)

    def subtree(self, name: str) -> Path:
        """The directory ``name`` (a SavedModel, a checkpoint), after checking that the
        manifest lists at least one file in it and every file on disk under it."""
        root = self.directory / name
        prefix = f"{name}/"
        listed = {f for f in self.manifest["files"] if f.startswith(prefix)}
        if not listed:
            self.file(prefix)  # raises: nothing of it is listed
        on_disk = {
            p.relative_to(self.directory).as_posix() for p in root.rglob("*") if not p.is_dir()
        }
        unlisted = sorted(on_disk - listed)
        if unlisted:
            raise ModelError(
                f"{unlisted[0]} is present but not listed in {MANIFEST_FILE}, so it cannot be "
                "trusted" + (f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""),
                where=str(self.directory),
                hint="the artifact was modified after export: remove those files or export "
                "the artifact again",
            )
        return root


_ARCHIVE_HINTS = {
    "unsafe": _ARCHIVE_HINT,
    "damaged": "the file is damaged or not a model.tar.gz written by boxtune",
    "mismatch": "the archive does not match its own manifest; use the original model.tar.gz",
    "limit": "a model.tar.gz written by boxtune stays far below these limits; if yours is "
    "genuine, raise BOXTUNE_MAX_ARCHIVE_MEMBERS / BOXTUNE_MAX_ARCHIVE_MEMBER_BYTES / "
    "BOXTUNE_MAX_ARCHIVE_BYTES",
    "disk": "free space there, point BOXTUNE_HOME at a larger disk, or run `boxtune cache prune`",
}


def _archive_error(exc: ArchiveError, tarball: Path) -> ModelError:
    return ModelError(str(exc), where=str(tarball), hint=_ARCHIVE_HINTS[exc.kind])


def _safe_extract(tarball: Path, destination: Path) -> None:
    """Extract the files ``tarball``'s own manifest lists (and the manifest) into
    ``destination``, within :class:`ArchiveLimits`: every entry is checked before anything is
    written (links, devices, sparse, unsafe or duplicate names, sizes, count); entries the
    manifest does not list are left out, with a warning."""
    try:
        with SafeTar(tarball, ArchiveLimits.from_env()) as archive:
            if MANIFEST_FILE not in archive.members:
                raise ModelError(
                    f"the archive holds no {MANIFEST_FILE}",
                    where=str(tarball),
                    hint="point at a model.tar.gz written by boxtune (it lists its files there)",
                )
            raw = archive.read(MANIFEST_FILE, max_bytes=_MAX_MANIFEST_BYTES)
            listed = _listed_sizes(_parse_manifest(raw, f"{tarball}:{MANIFEST_FILE}"), tarball)
            unlisted = sorted(
                name
                for name, member in archive.members.items()
                if member.isfile() and name != MANIFEST_FILE and name not in listed
            )
            if unlisted:
                warnings.warn(
                    f"{tarball}: left out {len(unlisted)} file(s) its {MANIFEST_FILE} does not "
                    f"list: {', '.join(unlisted[:5])}{' ...' if len(unlisted) > 5 else ''}",
                    BoxtuneWarning,
                    stacklevel=4,
                )
            expected = {**listed, MANIFEST_FILE: archive.members[MANIFEST_FILE].size}
            archive.extract(expected, destination)
    except ArchiveError as exc:
        raise _archive_error(exc, tarball) from exc
    except OSError as exc:  # writing the extraction: disk full, permissions
        raise os_error(exc, action=f"extracting {tarball.name}", path=exc.filename) from exc


def _parse_manifest(raw: bytes, where: str) -> dict:
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelError(
            f"cannot read {MANIFEST_FILE} ({exc})",
            where=where,
            hint="the artifact is damaged; export it again",
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelError(
            "the manifest's 'files' is not a mapping",
            where=where,
            hint="the artifact is damaged; export it again",
        )
    return manifest


def _listed_sizes(manifest: dict, tarball: Path) -> dict[str, int]:
    """name -> size of every file the manifest lists (names checked before any is used)."""
    sizes = {}
    for name, record in manifest["files"].items():
        _check_member_name(
            name,
            f"{tarball}:{MANIFEST_FILE}",
            what="the manifest lists an invalid file name",
            hint="the manifest is damaged or was not written by boxtune; export it again",
        )
        size = record.get("size") if isinstance(record, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ModelError(
                f"the manifest gives {name!r} no valid size",
                where=f"{tarball}:{MANIFEST_FILE}",
                hint="the manifest is damaged or was not written by boxtune; export it again",
            )
        sizes[name] = size
    return sizes


def _extract_tarball(tarball: Path) -> Path:
    """The cache entry ``BOXTUNE_HOME/artifacts/<sha256 of the tarball>`` (see
    :mod:`boxtune.cache`), extracted once even when several processes load it at once."""
    return cache.extracted(tarball, _safe_extract)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(
            f"cannot read {path.name} ({exc})",
            where=str(path),
            hint="the artifact is damaged; export it again",
        ) from exc


def verify_artifact(directory: Path) -> dict:
    """The manifest of ``directory`` after checking its format and every file's sha256."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelError(
            f"no {MANIFEST_FILE} found",
            where=str(directory),
            hint="point at a boxtune artifact directory, its model.tar.gz or an s3:// URI of one",
        )
    manifest = _read_json(manifest_path)
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            f"unsupported artifact format_version {version!r}",
            where=str(manifest_path),
            hint=f"this boxtune reads format versions up to {FORMAT_VERSION}; upgrade boxtune",
        )
    for key in ("model_id", "engine", "num_classes", "image_size", "files"):
        if key not in manifest:
            raise ModelError(
                f"the manifest lacks {key!r}",
                where=str(manifest_path),
                hint="the artifact is damaged; export it again",
            )
    if not isinstance(manifest["files"], dict):
        raise ModelError(
            "the manifest's 'files' is not a mapping",
            where=str(manifest_path),
            hint="the artifact is damaged; export it again",
        )
    for name, record in manifest["files"].items():
        _check_member_name(
            name,
            str(manifest_path),
            what="the manifest lists an invalid file name",
            hint="the manifest is damaged or was not written by boxtune; export it again",
        )
        path = directory / name
        if not path.is_file():
            raise ModelError(
                f"{name} is missing",
                where=str(directory),
                hint="the artifact is incomplete; copy it again or re-export it",
            )
        expected = record.get("sha256") if isinstance(record, dict) else None
        actual = sha256_file(path)
        if actual != expected:
            raise ModelError(
                f"{name} does not match its sha256 in {MANIFEST_FILE} (expected "
                f"{expected}, got {actual})",
                where=str(path),
                hint="the file was modified or damaged after export; use the original artifact",
            )
    return manifest


def _holds_only_artifact_files(directory: Path) -> bool:
    """Files of an artifact are there, but neither its manifest nor its tarball."""
    names = {p.name for p in directory.iterdir()}
    return bool(names) and not names & {MANIFEST_FILE, TARBALL_FILE}


def load_artifact(location: str | os.PathLike) -> Artifact:
    """An artifact from a directory, a ``model.tar.gz``, or an ``s3://`` URI of either."""
    remote = is_remote(location)
    local = local_copy(location, kind="artifact") if remote else Path(location)
    local = local.expanduser()
    if remote and local.is_dir() and _holds_only_artifact_files(local):
        raise ModelError(
            f"{location} holds artifact files but no {MANIFEST_FILE}: its upload is incomplete",
            where=str(location),
            hint="boxtune uploads the manifest last, so the writer stopped before it finished; "
            "upload the artifact again (or re-run the training with --resume)",
        )
    if local.is_file():
        directory = _extract_tarball(local)
    elif local.is_dir():
        if (local / MANIFEST_FILE).is_file():
            directory = local
        elif (local / TARBALL_FILE).is_file():
            directory = _extract_tarball(local / TARBALL_FILE)
        else:
            raise ModelError(
                f"neither {MANIFEST_FILE} nor {TARBALL_FILE} found",
                where=str(local),
                hint="point at the directory written by `boxtune train` (or its model.tar.gz)",
            )
    else:
        raise ModelError(
            "artifact not found",
            where=str(location),
            hint="check the path; artifacts are the output directories of `boxtune train`",
        )
    manifest = verify_artifact(directory)
    label_map = LabelMap.load(_listed_file(directory, manifest, LABELS_FILE))
    if len(label_map) != int(manifest["num_classes"]):
        raise ModelError(
            f"{LABELS_FILE} has {len(label_map)} classes, the manifest says "
            f"{manifest['num_classes']}",
            where=str(directory),
            hint="the artifact is inconsistent; export it again",
        )
    metrics = _optional_listed_file(directory, manifest, METRICS_FILE)
    history = _optional_listed_file(directory, manifest, HISTORY_FILE)
    return Artifact(
        directory,
        manifest,
        label_map,
        _read_json(metrics) if metrics else {},
        _read_json(history) if history else [],
    )
