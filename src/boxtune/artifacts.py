"""The model artifact: a directory and an identical ``model.tar.gz``.

Layout (format version 1)::

    boxtune-model.json   manifest: format_version, model_id, engine, family, num_classes,
                         image_size, hyperparameters, library versions, created_at, and the
                         sha256 + size of every other file
    weights.safetensors  weights (loads without executing code)
    model.onnx           raw network outputs, for onnxruntime serving (when the engine has one)
    labels_info.json     the label map (LabelMap.to_json)
    metrics.json         final metrics
    history.json         per-epoch metrics
    model.tar.gz         all of the above, deterministic (sorted, fixed mtime/owner)

Writing goes to a temp dir renamed into place; loading verifies every hash and never unpickles.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import platform
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from boxtune.errors import ModelError
from boxtune.labels import LabelMap
from boxtune.paths import boxtune_home
from boxtune.storage import is_remote, local_copy, upload

FORMAT_VERSION = 1
MANIFEST_FILE = "boxtune-model.json"
TARBALL_FILE = "model.tar.gz"
LABELS_FILE = "labels_info.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
_LIBRARIES = ("boxtune", "torch", "torchvision", "onnx", "onnxruntime", "safetensors", "numpy")
_TAR_MTIME = 0  # fixed, so identical files give an identical tarball


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _plain(value: Any) -> Any:
    """Hyperparameters as JSON: dicts, dataclasses or objects with to_dict()."""
    if value is None:
        return {}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_tarball(directory: Path, names: list[str], target: Path) -> None:
    """A deterministic gzip tar of ``names`` (flat, sorted, fixed mtime/owner/mode)."""
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


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``; an existing artifact (or empty dir) there is replaced."""
    if target.exists():
        entries = list(target.iterdir()) if target.is_dir() else None
        if entries is None or (entries and not (target / MANIFEST_FILE).is_file()):
            raise ModelError(
                "the output location exists and is not a boxtune artifact",
                where=str(target),
                hint="choose a new or empty directory (an existing artifact is replaced)",
            )
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_artifact(
    detector: Any,
    output_dir: str | os.PathLike,
    *,
    model_id: str | None = None,
    hyperparameters: Any = None,
    metrics: dict | None = None,
    history: list | None = None,
) -> Path:
    """Write ``detector`` as an artifact at ``output_dir`` (local path or ``s3://`` URI).

    ``detector`` is an engine Detector (its ``export``, ``label_map``, ``image_size``, and
    ``engine``/``family`` attributes are used). Returns the local artifact directory.
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
        detector.label_map.save(tmp / LABELS_FILE)
        _write_json(tmp / METRICS_FILE, metrics or {})
        _write_json(tmp / HISTORY_FILE, history or [])
        names += [LABELS_FILE, METRICS_FILE, HISTORY_FILE]
        spec = getattr(detector, "spec", None)
        manifest = {
            "format": "boxtune-model",
            "format_version": FORMAT_VERSION,
            "model_id": model_id or detector.model_id,
            "engine": getattr(detector, "engine", "torch"),
            "family": getattr(detector, "family", None),
            "architecture": getattr(spec, "architecture", None),
            "num_classes": len(detector.label_map),
            "image_size": int(detector.image_size),
            "hyperparameters": _plain(hyperparameters),
            "library_versions": _versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {
                name: {"sha256": _sha256(tmp / name), "size": (tmp / name).stat().st_size}
                for name in sorted(names)
            },
        }
        _write_json(tmp / MANIFEST_FILE, manifest)
        write_tarball(tmp, [*names, MANIFEST_FILE], tmp / TARBALL_FILE)
        _replace_dir(tmp, target)
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
    """Extract only flat regular files: no links, devices, absolute or parent paths."""
    try:
        with tarfile.open(tarball, mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if (
                    not member.isfile()
                    or "/" in name
                    or "\\" in name
                    or name in ("", ".", "..")
                    or name.startswith(".")
                ):
                    raise ModelError(
                        f"unexpected entry {name!r} in the archive",
                        where=str(tarball),
                        hint="a boxtune model.tar.gz holds only flat files; re-create it with "
                        "boxtune",
                    )
                source = tar.extractfile(member)
                assert source is not None
                with source, open(destination / name, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise ModelError(
            f"cannot read the archive ({exc})",
            where=str(tarball),
            hint="the file is damaged or not a model.tar.gz written by boxtune",
        ) from exc


def _extract_tarball(tarball: Path) -> Path:
    """Extract into ``BOXTUNE_HOME/artifacts/<sha256 of the tarball>`` (reused if present)."""
    digest = _sha256(tarball)[:20]
    target = boxtune_home() / "artifacts" / digest
    if (target / MANIFEST_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{digest}.partial-"))
    try:
        _safe_extract(tarball, tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
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
    for name, record in manifest["files"].items():
        path = directory / name
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelError(
                f"invalid file name {name!r} in the manifest", where=str(manifest_path)
            )
        if not path.is_file():
            raise ModelError(
                f"{name} is missing",
                where=str(directory),
                hint="the artifact is incomplete; copy it again or re-export it",
            )
        actual = _sha256(path)
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
