"""`boxtune data …` through the real console script and through main()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from boxtune.cli import main as cli


def test_validate_ok_prints_summary_and_exits_zero(sample_dir: Path, capsys) -> None:
    assert cli(["data", "validate", str(sample_dir)]) == 0
    out = capsys.readouterr().out
    assert "0 error(s)" in out and "OK: the dataset is valid" in out


def test_validate_errors_exit_nonzero_with_file_record_field_hint(
    good_dataset: Path, capsys
) -> None:
    doc = json.loads((good_dataset / "annotations.json").read_text())
    doc["annotations"][1]["bbox"] = [0.1, 0.2, 0.3, 0.4]
    (good_dataset / "annotations.json").write_text(json.dumps(doc))
    (good_dataset / "images" / "stray.png").write_bytes(
        (good_dataset / "images" / "a.png").read_bytes()
    )
    assert cli(["data", "validate", str(good_dataset)]) == 1
    out = capsys.readouterr().out
    assert (
        "error: annotations.json, annotations[1] (image_id 1), field 'bbox': bbox "
        "[0.1, 0.2, 0.3, 0.4] looks normalized"
    ) in out
    assert "hint: multiply x by the image width" in out
    assert "warning: images/stray.png" in out
    assert "1 error(s), " in out


def test_validate_json_output(good_dataset: Path, capsys) -> None:
    (good_dataset / "images" / "a.png").unlink()
    assert cli(["data", "validate", "--json", str(good_dataset)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["errors"][0]["code"] == "missing-file"
    assert report["errors"][0]["record"] == "images[0] (id 1)"


def test_validate_folds_long_runs_unless_all(raw_dataset, make_image, capsys) -> None:
    doc = {
        "images": [{"file_name": "a.png", "height": 10, "width": 10, "id": 1}],
        "annotations": [{"image_id": 1, "bbox": [5, 5, 5, 9], "category_id": 1}] * 30,
    }
    root = raw_dataset({"a.png": make_image(10, 10)}, doc)
    assert cli(["data", "validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.count("error: ") == 20 and "and 10 more 'degenerate-bbox'" in out
    assert cli(["data", "validate", "--all", str(root)]) == 1
    assert capsys.readouterr().out.count("error: ") == 30


def test_stats_human_and_json(sample_dir: Path, capsys) -> None:
    assert cli(["data", "stats", str(sample_dir)]) == 0
    out = capsys.readouterr().out
    for word in (
        "images    40",
        "circle",
        "triangle",
        "square",
        "star",
        "box width",
        "small (<32x32 px)",
    ):
        assert word in out
    assert cli(["data", "stats", "--json", str(sample_dir)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["images"] == 40
    assert sum(c["boxes"] for c in stats["classes"]) == stats["boxes"]
    assert sum(stats["box_size_buckets"].values()) == stats["boxes"]
    assert stats["box_width"]["min"] <= stats["box_width"]["median"] <= stats["box_width"]["max"]


def test_stats_on_an_invalid_dataset_points_to_validate(good_dataset: Path, capsys) -> None:
    (good_dataset / "annotations.json").write_text("{")
    assert cli(["data", "stats", str(good_dataset)]) == 1
    err = capsys.readouterr().err
    assert "invalid JSON" in err and "boxtune data validate" in err


def test_sample_and_preview_via_the_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("boxtune")
    result = subprocess.run(
        [str(exe), "data", "sample", str(tmp_path / "s"), "--images", "6", "--seed", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "s" / "images").iterdir())) == 6
    result = subprocess.run(
        [
            str(exe),
            "data",
            "preview",
            str(tmp_path / "s"),
            str(tmp_path / "sheet.png"),
            "--count",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sheet.png").stat().st_size > 1000


def test_data_without_action_prints_help(capsys) -> None:
    assert cli(["data"]) == 2
    assert "validate" in capsys.readouterr().out
