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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxtune.errors import ModelError
from boxtune.fileio import atomic_write_json, replace_directory, sha256_file
from boxtune.labels import LabelMap
from boxtune.paths import boxtune_home
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
_MAX_NAME = 1024
_MAX_COMPONENT = 255
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
    """Refuse ``name`` unless it is a safe artifact file name: a relative POSIX path without
    backslashes or NUL whose components are not empty, ``.``, ``..`` or hidden (temp files).

    The error reads ``<what> <name> (<problem>)``.
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "not a non-empty string"
    elif len(name) > _MAX_NAME:
        problem = f"longer than {_MAX_NAME} characters"
    elif "\\" in name or "\0" in name:
        problem = "contains a backslash or NUL"
    elif name.startswith("/"):
        problem = "an absolute path"
    else:
        for part in name.split("/"):
            if part in ("", ".", ".."):
                problem = f"has an empty, '.' or '..' component {part!r}"
            elif part.startswith("."):
                problem = f"has a hidden component {part!r}"
            elif len(part) > _MAX_COMPONENT:
                problem = f"has a component longer than {_MAX_COMPONENT} characters"
            if problem:
                break
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
    remote = is_remote(output_dir)
    if remote:
        staging = Path(tempfile.mkdtemp(prefix="boxtune-artifact-"))
        target = staging / "artifact"
    else:
        target = Path(output_dir).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
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
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {
                name: {"sha256": sha256_file(tmp / name), "size": (tmp / name).stat().st_size}
                for name in sorted(names)
            },
        }
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
        write_tarball(tmp, [*names, MANIFEST_FILE], tmp / TARBALL_FILE)
        _check_replaceable(target)
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if remote:
        upload(target, str(output_dir))
    return target


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


def _safe_extract(tarball: Path, destination: Path) -> None:
    """Extract regular files (and directories) under safe relative names into
    ``destination``; anything else (links, devices, absolute, parent or hidden names,
    duplicates) is refused before anything is written."""
    try:
        with tarfile.open(tarball, mode="r:gz") as tar:
            members = tar.getmembers()
            seen: set[str] = set()
            for member in members:
                if not (member.isfile() or member.isdir()) or member.name in seen:
                    kind = "a duplicate" if member.name in seen else "not a regular file"
                    raise ModelError(
                        f"unexpected entry {member.name!r} in the archive ({kind})",
                        where=str(tarball),
                        hint=_ARCHIVE_HINT,
                    )
                _check_member_name(
                    member.name, str(tarball), what="unexpected entry", hint=_ARCHIVE_HINT
                )
                seen.add(member.name)
            root = destination.resolve()
            for member in members:
                path = root / member.name
                # Valid names cannot leave root; resolving also guards against links on disk.
                if not path.resolve().is_relative_to(root):
                    raise ModelError(
                        f"unexpected entry {member.name!r} in the archive (outside it)",
                        where=str(tarball),
                        hint=_ARCHIVE_HINT,
                    )
                if member.isdir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, open(path, "xb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise ModelError(
            f"cannot read the archive ({exc})",
            where=str(tarball),
            hint="the file is damaged or not a model.tar.gz written by boxtune",
        ) from exc


def _extract_tarball(tarball: Path) -> Path:
    """Extract into ``BOXTUNE_HOME/artifacts/<sha256 of the tarball>`` (reused if present)."""
    digest = sha256_file(tarball)[:20]
    target = boxtune_home() / "artifacts" / digest
    if (target / MANIFEST_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{digest}.partial-"))
    try:
        _safe_extract(tarball, tmp)
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
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
        actual = sha256_file(path)
        if actual != record.get("sha256"):
            raise ModelError(
                f"{name} does not match its sha256 in {MANIFEST_FILE} (expected "
                f"{record.get('sha256')}, got {actual})",
                where=str(path),
                hint="the file was modified or damaged after export; use the original artifact",
            )
    return manifest


def load_artifact(location: str | os.PathLike) -> Artifact:
    """An artifact from a directory, a ``model.tar.gz``, or an ``s3://`` URI of either."""
    local = local_copy(location, kind="artifact") if is_remote(location) else Path(location)
    local = local.expanduser()
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
    label_map = LabelMap.load(directory / LABELS_FILE)
    if len(label_map) != int(manifest["num_classes"]):
        raise ModelError(
            f"{LABELS_FILE} has {len(label_map)} classes, the manifest says "
            f"{manifest['num_classes']}",
            where=str(directory),
            hint="the artifact is inconsistent; export it again",
        )
    metrics = _read_json(directory / METRICS_FILE) if (directory / METRICS_FILE).is_file() else {}
    history = _read_json(directory / HISTORY_FILE) if (directory / HISTORY_FILE).is_file() else []
    return Artifact(directory, manifest, label_map, metrics, history)
