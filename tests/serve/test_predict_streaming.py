"""``boxtune predict`` reads images as streams: a file over the byte limit is refused by its
size and one over the pixel limit by its header, before either is read whole; the others are
answered.

The attack of the issue: a 2 GB sparse file named x.jpg among real images made predict read it
whole (3 GB RSS). Here the peak RSS of a real ``boxtune predict`` process (the default model,
through onnxruntime) with that file is compared with the same run without it.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from serve_fakes import FakeRunner, encode, scene

from boxtune.serve.batch import SUMMARY_NAME, predict_folder
from boxtune.serve.predictor import InProcessPredictor

SPARSE_BYTES = 2 * 1024**3
LIMIT_BYTES = 256 * 1024**2  # boxtune.data.images.MAX_IMAGE_BYTES
# Peak RSS of `boxtune predict` over three images with the default model (torch and
# onnxruntime loaded) is ~0.9 GB here; reading the sparse file whole would add 2 GB.
MAX_RSS_BYTES = int(1.2 * 1024**3)
# What the refused file may add to the run's peak RSS (noise between two runs of one command)
MAX_RSS_GROWTH = 150 * 1024**2

# Runs ``sys.argv[1:]`` and prints its exit code, output and peak RSS (the only child this
# wrapper waits for, so RUSAGE_CHILDREN is that command's own peak).
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "peak_rss": peak_kib * 1024}))
"""


def _write_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    names = ["a.png", "b.jpg", "c.png"]
    for seed, name in enumerate(names):
        image = scene(160, 120, {seed: (20, 20, 90, 80)}, seed=seed)
        (folder / name).write_bytes(encode(image, "JPEG" if name.endswith("jpg") else "PNG"))
    return names


def _predict_measured(model: Path, inputs: Path, outputs: Path) -> dict:
    command = [sys.executable, "-m", "boxtune.cli", "predict", "--model", str(model)]
    command += ["--input", str(inputs), "--output", str(outputs), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_2gb_sparse_file_is_refused_by_its_size_and_rss_stays_low(real_artifact, tmp_path):
    baseline_in = tmp_path / "baseline"
    names = _write_images(baseline_in)
    attack_in = tmp_path / "attack"
    _write_images(attack_in)
    with open(attack_in / "x.jpg", "wb") as handle:
        handle.truncate(SPARSE_BYTES)  # 2 GB of zeros that take no disk space
    assert os.stat(attack_in / "x.jpg").st_blocks == 0

    baseline = _predict_measured(real_artifact, baseline_in, tmp_path / "baseline-out")
    attack = _predict_measured(real_artifact, attack_in, tmp_path / "attack-out")
    print(f"peak RSS: baseline {baseline['peak_rss']:,} B, with x.jpg {attack['peak_rss']:,} B")

    assert baseline["rc"] == 0, baseline["stderr"]
    assert attack["rc"] == 1, attack["stderr"]  # one file failed
    assert "Traceback" not in attack["stderr"]
    assert "3 predicted, 0 skipped (already done), 1 failed, of 4 images" in attack["stdout"]
    reason = (
        f"file is {SPARSE_BYTES:,} bytes, over the limit of {LIMIT_BYTES:,} bytes "
        "(refused before reading it)"
    )
    assert f"failed: x.jpg: {reason}" in attack["stderr"]
    summary = json.loads((tmp_path / "attack-out" / SUMMARY_NAME).read_text())
    assert summary["failures"] == {"x.jpg": reason}
    # The other images are answered exactly as without the attack file.
    for name in names:
        answer = json.loads((tmp_path / "attack-out" / f"{name}.out").read_text())
        assert answer == json.loads((tmp_path / "baseline-out" / f"{name}.out").read_text())
    assert attack["peak_rss"] < MAX_RSS_BYTES
    assert attack["peak_rss"] < baseline["peak_rss"] + MAX_RSS_GROWTH


def _png_header(width: int, height: int, data_bytes: int) -> bytes:
    """A PNG signature, an IHDR chunk declaring ``width`` x ``height`` RGB pixels and the start
    of an IDAT chunk of ``data_bytes`` (to follow)."""
    fields = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + fields + struct.pack(">I", zlib.crc32(fields))
    return b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", data_bytes) + b"IDAT"


def _bytes_read_by_this_process() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_a_pixel_bomb_is_refused_from_its_header_without_reading_the_file(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    names = _write_images(inputs)
    # Over our limit (50 MP); over Pillow's own (179 MP), which it raises while opening.
    for name, side in (("bomb.png", 8_000), ("huge.png", 20_000)):
        (inputs / name).write_bytes(_png_header(side, side, 32 * 1024**2))
        with open(inputs / name, "r+b") as handle:
            handle.truncate(32 * 1024**2 + 64)  # the 32 MB of "pixel data" (sparse)
    predictor = InProcessPredictor(FakeRunner())
    predict_folder(predictor, str(inputs), str(outputs), progress=False)  # warm imports

    read_before = _bytes_read_by_this_process()
    for name in [*names, SUMMARY_NAME]:
        (outputs / f"{name}.out").unlink(missing_ok=True)
    summary = predict_folder(predictor, str(inputs), str(outputs), progress=False)
    read = _bytes_read_by_this_process() - read_before

    assert (summary.done, summary.failed) == (3, 2)
    assert summary.failures == {
        "bomb.png": "image is 8000x8000 = 64,000,000 pixels, over the limit of 50,000,000 "
        "(possible decompression bomb)",
        "huge.png": "image is 400,000,000 pixels, over the limit of 50,000,000 "
        "(possible decompression bomb)",
    }
    assert read < 4 * 1024**2, f"{read:,} bytes read"  # two headers and three small images


def test_a_pipe_among_the_images_is_refused_and_the_run_goes_on(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    _write_images(inputs)
    os.mkfifo(inputs / "pipe.png")  # reading it would wait for a writer for ever
    summary = predict_folder(
        InProcessPredictor(FakeRunner()), str(inputs), str(outputs), progress=False
    )
    assert (summary.done, summary.failed) == (3, 1)
    assert summary.failures == {
        "pipe.png": "not a regular file (a pipe, socket or device), so it is not read"
    }


def test_a_truncated_image_still_gets_the_decoders_precise_reason(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    _write_images(inputs)
    whole = encode(scene(64, 64, seed=9))
    (inputs / "cut.png").write_bytes(whole[: len(whole) // 2])
    summary = predict_folder(
        InProcessPredictor(FakeRunner()), str(inputs), str(outputs), progress=False
    )
    assert summary.failed == 1 and summary.failures["cut.png"].startswith("truncated PNG")
