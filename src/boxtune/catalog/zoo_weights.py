"""The pretrained weights of the TF2 zoo models (a ``ckpt-0`` checkpoint) and of the TF Hub
models (a SavedModel folder), from their tarballs.

Where the tarball comes from, in order: ``weights`` (a local tarball, an ``s3://`` one, an
``http(s)://`` URL, or an extracted folder / checkpoint prefix used as is); the file placed at
``BOXTUNE_HOME/weights/<file_name>``; a download from the publisher (``BOXTUNE_OFFLINE=1``
forbids it; ``BOXTUNE_TF_ZOO_BASE_URL`` / ``BOXTUNE_TFHUB_BASE_URL`` point at a mirror). No
sha256 is published: the first use records it next to the tarball, later uses check it (see
:mod:`boxtune.catalog.tarballs`). A tarball is extracted once per hash.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from boxtune.catalog.spec import ModelSpec
from boxtune.catalog.tarballs import (
    ModelTarball,
    archive_error,
    checked_sha256,
    extract_once,
    limits,
    remember,
)
from boxtune.catalog.tf_hub import hub_model
from boxtune.catalog.tf_zoo import zoo_model
from boxtune.catalog.weights import cached_weights_path
from boxtune.errors import ModelError
from boxtune.fileio import ArchiveError, DownloadError, download, remove_path
from boxtune.paths import boxtune_home
from boxtune.storage import exists, is_remote, local_copy

ZOO_BASE_URL_ENV = "BOXTUNE_TF_ZOO_BASE_URL"
CHECKPOINT_PREFIX = "checkpoint/ckpt-0"  # inside a zoo tarball's top folder
SAVED_MODEL_FILE = "saved_model.pb"
_DOWNLOAD_TIMEOUT_S = 60
_SHARD = re.compile(r"^ckpt-0\.data-(\d+)-of-(\d+)$")


def _offline() -> bool:
    return os.environ.get("BOXTUNE_OFFLINE", "").lower() in {"1", "true", "yes"}


def zoo_download_url(spec: ModelSpec) -> str:
    """The zoo tarball's URL (``BOXTUNE_TF_ZOO_BASE_URL`` + file name when that is set)."""
    base = os.environ.get(ZOO_BASE_URL_ENV, "").strip().rstrip("/")
    return f"{base}/{spec.weights.file_name}" if base else str(spec.weights.url)


def _unavailable(spec: ModelSpec, url: str, target: Path, reason: str) -> ModelError:
    return ModelError(
        f"the pretrained weights of {spec.model_id} are not here and cannot be downloaded "
        f"({reason})",
        where=url,
        hint=f"download {url} on a machine with network access and place the file "
        f"{spec.weights.file_name!r} in the folder {target.parent} (it is used from there, its "
        "sha256 recorded on first use), or pass the tarball's local path or s3:// URI "
        "(--weights / model_uri)",
    )


def _download(spec: ModelSpec, url: str, target: Path) -> Path:
    try:
        download(
            url, target, expected_sha256=spec.weights.sha256 or None, timeout=_DOWNLOAD_TIMEOUT_S
        )
    except DownloadError as exc:
        if not exc.corrupt:
            raise _unavailable(spec, url, target, exc.reason) from exc
        raise ModelError(
            f"{exc.problem} for the download of {spec.model_id}: {exc.details}",
            where=url,
            hint="the server sent another file (a proxy page, a cut download?); nothing was "
            f"kept; try again or place the right file at {target}",
        ) from exc
    return target  # its hash is recorded once it extracted (a proxy's page would not)


def _tarball_here_or_downloaded(spec: ModelSpec, url: str) -> tuple[Path, bool]:
    """The tarball at ``BOXTUNE_HOME/weights/<file_name>``, downloaded there when missing;
    and whether it was downloaded just now."""
    target = cached_weights_path(spec)
    if target.is_file():
        return target, False
    if _offline():
        raise _unavailable(spec, url, target, "BOXTUNE_OFFLINE is set")
    return _download(spec, url, target), True


def _given_location(spec: ModelSpec, weights: str | os.PathLike) -> tuple[Path, bool]:
    """A local path for what ``weights`` names, and whether it was downloaded just now: remote
    objects and folders are copied here, URLs downloaded (once per URL), local paths taken as
    they are."""
    location = str(weights)
    if location.startswith(("http://", "https://")):
        digest = hashlib.sha256(location.encode()).hexdigest()[:16]
        target = boxtune_home() / "downloads" / "weights" / digest / spec.weights.file_name
        if target.is_file():
            return target, False
        if _offline():
            raise _unavailable(spec, location, cached_weights_path(spec), "BOXTUNE_OFFLINE is set")
        return _download(spec, location, target), True
    if is_remote(location):
        if exists(location.rstrip("/") + ".index"):  # a checkpoint prefix: copy its folder
            parent, _, name = location.rstrip("/").rpartition("/")
            return local_copy(parent, kind="weights") / name, False
        return local_copy(location, kind="weights"), False
    return Path(location.removeprefix("file://")).expanduser(), False


def _checked_prefix(prefix: Path, where: str) -> Path:
    if not any(prefix.parent.glob(f"{prefix.name}.data-*")):
        raise ModelError(
            f"the checkpoint {prefix.name} has an index but no data files",
            where=where,
            hint=f"copy {prefix.name}.data-00000-of-00001 (all shards) next to {prefix.name}.index",
        )
    return prefix


def _prefix_in_folder(folder: Path, zoo_name: str) -> Path:
    for prefix in (
        folder / CHECKPOINT_PREFIX,
        folder / "ckpt-0",
        folder / zoo_name / CHECKPOINT_PREFIX,
    ):
        if prefix.with_name(prefix.name + ".index").is_file():
            return _checked_prefix(prefix, str(folder))
    raise ModelError(
        f"the folder holds no {CHECKPOINT_PREFIX}.index",
        where=str(folder),
        hint=f"give the folder extracted from {zoo_name}.tar.gz (holding checkpoint/), the "
        "checkpoint prefix (…/checkpoint/ckpt-0) or the tarball itself",
    )


def _zoo_name(spec: ModelSpec) -> str:
    model = zoo_model(spec)
    if model is None:
        raise ModelError(
            f"{spec.model_id} is not a TF2 Detection Model Zoo model", where="model_id"
        )
    return model.zoo_name


def resolve_zoo_checkpoint(spec: ModelSpec, weights: str | os.PathLike | None = None) -> Path:
    """The prefix ``…/<zoo_name>/checkpoint/ckpt-0`` of the zoo checkpoint of ``spec`` (read it
    with ``tf.train.Checkpoint(...).read(str(prefix))``); ``pipeline.config`` lies next to
    ``checkpoint/`` when the tarball has one.

    ``weights``: the zoo tarball (local path, ``s3://``, ``http(s)://``), an extracted folder
    or a checkpoint prefix; default: ``BOXTUNE_HOME/weights/<zoo_name>.tar.gz``, downloaded
    from the zoo when missing. A ModelError says what is wrong: offline (naming the URL, the
    file and the folder), a hash that differs from the one recorded on first use, a corrupt
    tarball, one without ``checkpoint/ckpt-0.index``.
    """
    zoo_name = _zoo_name(spec)
    downloaded = False
    if weights is not None:
        location, downloaded = _given_location(spec, weights)
        if location.is_dir():
            return _prefix_in_folder(location, zoo_name)
        if location.name.endswith(".index") and location.is_file():
            prefix = location.with_name(location.name.removesuffix(".index"))
            return _checked_prefix(prefix, str(location))
        if location.with_name(location.name + ".index").is_file():
            return _checked_prefix(location, str(location))
        if not location.is_file():
            raise ModelError(
                "weights not found",
                where=str(location),
                hint=f"pass {spec.weights.file_name} (local path or s3:// URI), the folder "
                "extracted from it, or a checkpoint prefix …/checkpoint/ckpt-0",
            )
        tarball = location
    else:
        tarball, downloaded = _tarball_here_or_downloaded(spec, zoo_download_url(spec))
    what = f"the zoo tarball of {spec.model_id}"
    digest = checked_sha256(tarball, pinned=spec.weights.sha256, what=what)
    try:
        folder = extract_once(
            f"{zoo_name}-{digest[:16]}",
            lambda staging: _unpack_zoo(tarball, staging, zoo_name, what),
        )
    except ModelError:
        if downloaded:  # nothing of it is any use
            remove_path(tarball)
        raise
    remember(tarball, digest)
    return folder / zoo_name / CHECKPOINT_PREFIX


def _unpack_zoo(tarball: Path, staging: Path, zoo_name: str, what: str) -> None:
    """``staging/<zoo_name>/checkpoint/{checkpoint, ckpt-0.*}`` (and ``pipeline.config``) from
    the tarball, whatever its top folder is called; nothing else (its saved_model/ is not
    needed)."""
    try:
        with ModelTarball(tarball, limits()) as archive:
            files = {name: m.size for name, m in archive.members.items() if m.isfile()}
            index = _checkpoint_index(files, tarball, what, zoo_name)
            checkpoint_dir = index.rpartition("/")[0]
            wanted = {
                name: size
                for name, size in files.items()
                if name.rpartition("/")[0] == checkpoint_dir
                and (name.rpartition("/")[2].startswith("ckpt-0.") or name.endswith("/checkpoint"))
            }
            _check_shards(wanted, checkpoint_dir, tarball)
            top = checkpoint_dir.rpartition("/")[0]
            config = f"{top}/pipeline.config" if top else "pipeline.config"
            if config in files:
                wanted[config] = files[config]
            raw = staging / "raw"
            raw.mkdir()
            archive.extract(wanted, raw)
    except ArchiveError as exc:
        raise archive_error(exc, tarball, what) from exc
    target = staging / zoo_name
    target.mkdir()
    (raw / checkpoint_dir).rename(target / "checkpoint")
    if config in wanted:
        (raw / config).rename(target / "pipeline.config")
    remove_path(raw)


def _checkpoint_index(files: dict[str, int], tarball: Path, what: str, zoo_name: str) -> str:
    suffix = CHECKPOINT_PREFIX + ".index"
    found = [name for name in files if name == suffix or name.endswith("/" + suffix)]
    if len(found) == 1:
        return found[0]
    shown = ", ".join(sorted(files)[:8]) or "nothing"
    if not found:
        raise ModelError(
            f"{what} holds no {suffix} (it holds {shown}{', …' if len(files) > 8 else ''})",
            where=str(tarball),
            hint=f"use the zoo's own {zoo_name}.tar.gz (<zoo_name>/checkpoint/ckpt-0.index, "
            "ckpt-0.data-*, pipeline.config)",
        )
    raise ModelError(
        f"{what} holds {len(found)} checkpoints ({', '.join(found)}): which one is meant?",
        where=str(tarball),
        hint="pack one model per tarball, or pass the extracted checkpoint prefix",
    )


def _check_shards(wanted: dict[str, int], checkpoint_dir: str, tarball: Path) -> None:
    shards = [_SHARD.match(name.rpartition("/")[2]) for name in wanted]
    shards = [match for match in shards if match]
    total = int(shards[0].group(2)) if shards else 0
    present = {int(match.group(1)) for match in shards}
    if not shards or present != set(range(total)):
        missing = sorted(set(range(total)) - present)
        detail = f"shards {missing} of {total} are missing" if shards else "there are no data files"
        raise ModelError(
            f"the checkpoint in {checkpoint_dir or 'the tarball'} is incomplete: {detail}",
            where=str(tarball),
            hint="the tarball is cut or repacked wrongly; use the zoo's own tarball",
        )


# --- TF Hub SavedModels --------------------------------------------------------------------


def resolve_hub_saved_model(spec: ModelSpec, weights: str | os.PathLike | None = None) -> Path:
    """The SavedModel folder (holding ``saved_model.pb`` and ``variables/``) of the TF Hub model
    ``spec``. ``weights``: the compressed tarball (local, ``s3://``, ``http(s)://``) or a
    SavedModel folder; default: ``BOXTUNE_HOME/weights/<handle with / as _>.tar.gz``, downloaded
    from TF Hub when missing. A zoo tarball of the same model (``<zoo>/saved_model/``) works
    too."""
    model = hub_model(spec)
    downloaded = False
    if weights is not None:
        location, downloaded = _given_location(spec, weights)
        if location.is_dir():
            if (location / SAVED_MODEL_FILE).is_file():
                return location
            raise ModelError(
                f"the folder holds no {SAVED_MODEL_FILE}",
                where=str(location),
                hint=f"give the SavedModel folder of {model.handle} or its tarball",
            )
        if not location.is_file():
            raise ModelError(
                "weights not found",
                where=str(location),
                hint=f"pass {spec.weights.file_name} (local path or s3:// URI) or the SavedModel "
                "folder extracted from it",
            )
        tarball = location
    else:
        tarball, downloaded = _tarball_here_or_downloaded(spec, model.download_url())
    what = f"the TF Hub tarball of {spec.model_id}"
    digest = checked_sha256(tarball, pinned=spec.weights.sha256, what=what)
    stem = spec.weights.file_name.removesuffix(".tar.gz")
    try:
        folder = extract_once(
            f"{stem}-{digest[:16]}", lambda staging: _unpack_hub(tarball, staging, what)
        )
    except ModelError:
        if downloaded:
            remove_path(tarball)
        raise
    remember(tarball, digest)
    return folder / "saved_model"


def _unpack_hub(tarball: Path, staging: Path, what: str) -> None:
    """``staging/saved_model/`` from the tarball: the folder that holds its one
    ``saved_model.pb`` (the root in TF Hub's format), with everything under it."""
    try:
        with ModelTarball(tarball, limits()) as archive:
            files = {name: m.size for name, m in archive.members.items() if m.isfile()}
            roots = [
                name.rpartition("/")[0]
                for name in files
                if name == SAVED_MODEL_FILE or name.endswith("/" + SAVED_MODEL_FILE)
            ]
            if len(roots) != 1:
                shown = ", ".join(sorted(files)[:8]) or "nothing"
                raise ModelError(
                    f"{what} holds {len(roots) or 'no'} {SAVED_MODEL_FILE} "
                    f"({'in ' + ', '.join(r or '.' for r in roots) if roots else shown})",
                    where=str(tarball),
                    hint="use TF Hub's compressed download of the model (a SavedModel: "
                    "saved_model.pb and variables/ at its root)",
                )
            root = roots[0]
            inside = {
                name: size
                for name, size in files.items()
                if not root or name.startswith(root + "/")
            }
            raw = staging / "raw"
            raw.mkdir()
            archive.extract(inside, raw)
    except ArchiveError as exc:
        raise archive_error(exc, tarball, what) from exc
    (raw / root if root else raw).rename(staging / "saved_model")
    remove_path(raw)
