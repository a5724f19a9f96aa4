"""Every OS error a user can cause is a message with the path and a fix, never a traceback.

- Disk full: a real training and a real artifact written onto a small tmpfs (mounted by the test
  when it may; else the write is made to fail with ENOSPC), for torch (torch.save's "unexpected
  pos", safetensors' "os error 28") and TensorFlow (ResourceExhaustedError); nothing partial
  is left and an existing artifact survives.
- Names that are not UTF-8 (b"\\xff" in a file name) under a strict UTF-8 stdout.
- Paths under a file, a directory where a file goes, a reader of our stdout that went away.
- An ONNX model that onnxruntime cannot load, in an artifact whose manifest matches it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
from boxtune.cli import main
from boxtune.data import generate_sample_dataset
from boxtune.engines import get_engine
from boxtune.errors import ModelError, StorageError, storage_error
from boxtune.labels import LabelMap

REPO = Path(__file__).resolve().parents[1]
SERVE_TESTS = REPO / "tests" / "serve"
FAKE_MODEL = "py:serve_fakes:make_runner"
TINY_HP = ["image_size=64", "batch_size=8", "augmentation=False", "num_workers=0", "epochs=1"]
LABELS = LabelMap((1, 2), ("cat", "dog"))
DISK_FULL = "the disk is full (No space left on device)"
DISK_FULL_HINT = (
    "hint: free space on that file system, or write somewhere else (--output, BOXTUNE_HOME, "
    "TMPDIR); `boxtune cache prune` frees boxtune's own caches"
)


def _run(*args: str, env: dict | None = None, **streams) -> subprocess.CompletedProcess:
    """``boxtune ARGS`` in a new process (stdout and stderr captured unless ``streams`` say)."""
    pythonpath = os.pathsep.join(p for p in (str(SERVE_TESTS), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "boxtune.cli", *args],
        stdout=streams.get("stdout", subprocess.PIPE),
        stderr=streams.get("stderr", subprocess.PIPE),
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
    )


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _digest(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in _files(root)}


# -- small disks -------------------------------------------------------------------------------

SmallDisk = Callable[[str], "Path | None"]


@pytest.fixture
def small_disk(tmp_path) -> Iterator[SmallDisk]:
    """``small_disk("2m")``: a fresh tmpfs of that size, or None where mounting is not allowed
    (not root, a container without CAP_SYS_ADMIN): the test then injects ENOSPC instead."""
    mounted: list[Path] = []

    def mount(size: str) -> Path | None:
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                capture_output=True,
            )
        except OSError:  # no mount program
            return None
        if done.returncode != 0:
            return None
        mounted.append(point)
        return point

    try:
        yield mount
    finally:
        for point in mounted:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _shrink_to_used(point: Path, spare: int = 1 << 20) -> None:
    """Remount ``point`` with room for ``spare`` more bytes than it holds now."""
    used = shutil.disk_usage(point).used
    subprocess.run(
        ["mount", "-o", f"remount,size={used + spare}", str(point)], check=True, capture_output=True
    )


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return generate_sample_dataset(tmp_path_factory.mktemp("data") / "tiny", images=8, seed=4)


def test_training_onto_a_full_disk_says_so_and_leaves_no_artifact(
    tiny_dataset, small_disk, monkeypatch, capsys, tmp_path
):
    disk = small_disk("2m")  # the data and the model load; the first checkpoint does not fit
    if disk is None:
        disk = tmp_path
        import torch

        monkeypatch.setattr(torch, "save", _enospc)
    before = _digest(tiny_dataset)
    output = disk / "run"
    argv = ["train", "--model-id", DEFAULT_MODEL_ID, "--training", str(tiny_dataset)]
    argv += ["--output", str(output), "--quiet", *[a for hp in TINY_HP for a in ("--hp", hp)]]

    assert main(argv) == 1

    err = capsys.readouterr().err
    # torch.save on the full tmpfs raises RuntimeError "... unexpected pos ..." (no errno); the
    # message names the checkpoint, not the trainer's staging name of it.
    assert err.startswith(
        f"error: {output}/checkpoints/best.pt: writing the checkpoint failed: {DISK_FULL}\n"
    )
    assert DISK_FULL_HINT in err
    assert "Traceback" not in err and "unexpected pos" not in err
    left = _files(output)
    assert "boxtune-model.json" not in left and "weights.safetensors" not in left
    assert not [name for name in left if name.endswith(".tmp") or ".partial" in name], left
    assert _digest(tiny_dataset) == before  # the data is untouched


@pytest.fixture(scope="module")
def detector():
    return get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), LABELS, init="random")


def test_an_artifact_that_does_not_fit_keeps_the_previous_one(detector, small_disk, monkeypatch):
    from boxtune.artifacts import load_artifact, write_artifact

    disk = small_disk("128m")
    if disk is None:
        disk = Path(os.environ.get("TMPDIR", "/tmp")) / f"boxtune-test-{os.getpid()}"
        disk.mkdir(exist_ok=True)
    target = disk / "model"
    write_artifact(detector, target, model_id=DEFAULT_MODEL_ID)
    previous = _digest(target)
    if disk.is_mount():
        _shrink_to_used(disk)  # 1 MiB left: the new weights (12 MB) do not fit
    else:
        import boxtune.engines.torch.checkpoint as checkpoint

        monkeypatch.setattr(checkpoint, "save_file", _enospc)

    try:
        with pytest.raises(StorageError) as caught:
            write_artifact(detector, target, model_id=DEFAULT_MODEL_ID)
        err = caught.value
        # safetensors on the full tmpfs: SafetensorError "... (os error 28)"
        assert err.message == f"writing the weights failed: {DISK_FULL}"
        assert err.where == str(target)
        assert sorted(os.listdir(disk)) == ["model"]  # no staging folder left
        assert _digest(target) == previous
        load_artifact(target)  # still whole: the manifest's hashes match
    finally:
        if not disk.is_mount():
            shutil.rmtree(disk, ignore_errors=True)


def test_a_tensorflow_checkpoint_onto_a_full_disk(small_disk, monkeypatch):
    pytest.importorskip("tensorflow")
    from boxtune.catalog import TF_PERSON_MODEL_ID

    tf_detector = get_engine("tensorflow").create(
        get_spec(TF_PERSON_MODEL_ID), LABELS, init="random", image_size=64
    )
    disk = small_disk("2m")
    if disk is None:
        import tensorflow as tf

        disk = Path(os.environ.get("TMPDIR", "/tmp")) / f"boxtune-tf-{os.getpid()}"
        monkeypatch.setattr(tf.train.Checkpoint, "write", _enospc)
    target = disk / "checkpoints" / "last"
    try:
        with pytest.raises(StorageError) as caught:
            tf_detector.save_checkpoint(target, {})
        # TF: ResourceExhaustedError "...tempstate...; No space left on device [Op:SaveV2]"
        assert caught.value.message == f"writing the checkpoint failed: {DISK_FULL}"
        assert caught.value.where == str(target)
    finally:
        if not disk.is_mount():
            shutil.rmtree(disk, ignore_errors=True)


def test_library_write_failures_are_classified(tmp_path):
    rust = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    error = storage_error(rust, action="writing the weights", path=tmp_path / "w")
    assert error is not None and error.message == f"writing the weights failed: {DISK_FULL}"

    def torch_failure(exc: BaseException) -> bool:
        return "unexpected pos" in str(exc)

    # torch's failure without an errno, on a disk with room: not called "full"
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5 vs 3")
    error = storage_error(
        torch_error, action="writing the checkpoint", path=tmp_path, write_failure=torch_failure
    )
    assert error is not None
    assert error.message == (
        "writing the checkpoint failed: the writer stopped ([enforce fail at "
        "inline_container.cc:672] . unexpected pos 5 vs 3)"
    )
    # Anything else is not a storage problem: the caller re-raises it as it is.
    assert storage_error(ValueError("bad shape"), action="writing", path=tmp_path) is None


# -- names that are not UTF-8 ------------------------------------------------------------------

STRICT = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
BAD_NAME = os.fsdecode(b"bad\xffname.png")  # "bad\udcffname.png" in Python


def test_data_validate_prints_an_undecodable_name_escaped(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    first = sorted((root / "images").iterdir())[0]
    shutil.copyfile(first, root / "images" / BAD_NAME)

    done = _run("data", "validate", str(root), env=STRICT)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert r"warning: images/bad\xffname.png: images/bad\xffname.png is not listed" in done.stdout


def test_predict_prints_an_undecodable_name_escaped(tmp_path):
    sys.path.insert(0, str(SERVE_TESTS))
    from serve_fakes import encode, scene

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / BAD_NAME).write_bytes(encode(scene(64, 48, {0: (5, 5, 30, 30)}, seed=1)))
    broken = os.fsdecode(b"broken\xfe.png")
    (inputs / broken).write_bytes(b"\x89PNG\r\n\x1a\n")
    output = tmp_path / "out"

    done = _run(
        "predict", "--model", FAKE_MODEL, "--input", str(inputs), "--output", str(output),
        "--no-progress", env=STRICT,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr  # the broken one failed
    assert "Traceback" not in done.stdout + done.stderr
    assert "1 predicted, 0 skipped (already done), 1 failed, of 2 images" in done.stdout
    assert r"failed: broken\xfe.png: truncated or corrupt PNG" in done.stderr
    assert (output / (BAD_NAME + ".out")).is_file()  # the answer keeps the real name
    summary = json.loads((output / "predict-summary.json").read_text())
    assert list(summary["failures"]) == [broken]


# -- other OS errors at the CLI's top level ----------------------------------------------------


def test_a_path_under_a_file_is_a_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    done = _run("data", "sample", str(blocker / "sub" / "ds"), "--images", "2")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {blocker / 'sub'}: boxtune data sample failed: a part of the path is a file, "
        "a directory was expected (Not a directory)\n"
        "hint: check each folder of the path exists and is a directory\n"
    )
    assert blocker.read_text() == "keep me"


def test_a_directory_where_a_file_goes_is_a_message(tiny_dataset, tmp_path):
    folder = tmp_path / "sheet.png"
    folder.mkdir()
    done = _run("data", "preview", str(tiny_dataset), str(folder), "--count", "2")
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"error: {folder}: boxtune data preview failed: the path is a directory, a file was "
        "expected (Is a directory)\nhint: name a file, not a folder"
    )
    assert os.listdir(folder) == [] and sorted(os.listdir(tmp_path)) == ["sheet.png"]


def test_a_reader_that_goes_away_stops_the_command_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `boxtune models list | head -0`
    try:
        done = _run(
            "models", "list", stdout=write_end, capture_output=False, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports it
    assert done.stderr == ""


# -- an ONNX model onnxruntime cannot load ---------------------------------------------------


@pytest.fixture(scope="module")
def artifact_with_a_bad_onnx(tmp_path_factory, detector) -> Path:
    """An artifact whose model.onnx is garbage and whose manifest lists the garbage's hash."""
    from boxtune.artifacts import MANIFEST_FILE, write_artifact

    target = write_artifact(
        detector, tmp_path_factory.mktemp("bad-onnx") / "model", model_id=DEFAULT_MODEL_ID
    )
    garbage = b"not a protobuf \xff\x00" * 64
    (target / "model.onnx").write_bytes(garbage)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    sha256 = hashlib.sha256(garbage).hexdigest()
    manifest["files"]["model.onnx"] = {"sha256": sha256, "size": len(garbage)}
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def test_an_onnx_model_that_fails_to_load_is_a_model_error(artifact_with_a_bad_onnx):
    from boxtune.serve.predictor import InProcessPredictor

    onnx_path = artifact_with_a_bad_onnx / "model.onnx"
    with pytest.raises(ModelError) as caught:
        InProcessPredictor.load(str(artifact_with_a_bad_onnx))
    err = caught.value
    assert err.where == str(onnx_path)
    assert err.message == (
        "onnxruntime cannot load the ONNX model: INVALID_PROTOBUF : Load model from "
        f"{onnx_path} failed:Protobuf parsing failed."
    )
    assert err.hint and err.hint.endswith("or run it with --backend torch")
    # The way around it works: the torch backend serves the same artifact.
    assert InProcessPredictor.load(str(artifact_with_a_bad_onnx), backend="torch").labels


def test_predict_with_an_onnx_model_that_fails_to_load(artifact_with_a_bad_onnx, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    output = tmp_path / "out"
    done = _run("predict", "--model", str(artifact_with_a_bad_onnx), "--input", str(inputs),
                "--output", str(output))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"error: {artifact_with_a_bad_onnx / 'model.onnx'}: onnxruntime cannot load the ONNX "
        "model: INVALID_PROTOBUF"
    )
    assert "Traceback" not in done.stderr
    assert not output.exists()


def test_a_tensorflow_onnx_model_that_fails_to_load_offers_the_savedmodel(tmp_path):
    pytest.importorskip("tensorflow")
    from boxtune.engines.tensorflow.runners import OnnxRunner

    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError) as caught:
        OnnxRunner(path, 64, LABELS)
    assert caught.value.where == str(path)
    assert caught.value.message.startswith("onnxruntime cannot load the ONNX model: ")
    assert caught.value.hint and caught.value.hint.endswith("or run it with --backend savedmodel")


def test_a_name_that_cannot_be_encoded_is_a_message(monkeypatch, capsys):
    import boxtune.commands.data as data_commands

    def write_name_as_utf8(args):  # as writing a JSON or an S3 key with the name would
        return len(BAD_NAME.encode("utf-8"))

    monkeypatch.setattr(data_commands, "_stats", write_name_as_utf8)
    assert main(["data", "stats", "ds"]) == 1
    assert capsys.readouterr().err == (
        "error: boxtune data stats failed: a file name is not valid UTF-8 (\\xff)\n"
        "hint: rename the file to a name that is valid UTF-8 (`convmv` renames many at once)\n"
    )
