"""One test per problem `boxtune data validate` must report, each with file, record and field."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boxtune.data import check_dataset, read_dataset, validate_dataset
from boxtune.data.issues import Issue
from boxtune.errors import DatasetError


def issues(root: Path, code: str | None = None) -> list[Issue]:
    report = check_dataset(root).report
    return [i for i in report.issues if code is None or i.code == code]


def only(root: Path, code: str) -> Issue:
    found = issues(root, code)
    assert len(found) == 1, [i.render() for i in issues(root)]
    return found[0]


def rewrite(root: Path, edit) -> None:
    doc = json.loads((root / "annotations.json").read_text())
    edit(doc)
    (root / "annotations.json").write_text(json.dumps(doc))


def noise_png(width: int = 100, height: int = 80) -> bytes:
    array = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_good_dataset_has_no_errors(good_dataset: Path) -> None:
    report = check_dataset(good_dataset).report
    assert report.ok, report.render()
    assert report.codes() <= {"rare-class"}


def test_missing_images_folder(raw_dataset) -> None:
    root = raw_dataset({}, {"images": [], "annotations": []}, images_dir=False)
    issue = only(root, "missing-images-dir")
    assert issue.file == "images/" and "images/" in issue.hint


def test_missing_annotations_names_other_json_files(raw_dataset, make_image) -> None:
    root = raw_dataset({"a.png": make_image(10, 10)}, None)
    (root / "instances_train.json").write_text("{}")
    issue = only(root, "missing-annotations")
    assert issue.file == "annotations.json"
    assert "instances_train.json" in issue.hint and "convert --from coco" in issue.hint


def test_invalid_json_reports_line_and_column(raw_dataset) -> None:
    root = raw_dataset({}, '{\n  "images": [\n    {"id": 1,, "file_name": "a.png"}\n  ]\n}')
    issue = only(root, "invalid-json")
    assert issue.record == "line 3, column 14"  # the second comma
    assert "line 3, column 14" in issue.message


def test_missing_and_wrongly_typed_keys(good_dataset: Path) -> None:
    def edit(doc):
        del doc["images"][0]["width"]
        doc["images"][1]["id"] = "2"
        doc["images"][2]["height"] = 47.5
        del doc["annotations"][0]["bbox"]

    rewrite(good_dataset, edit)
    found = {(i.code, i.record, i.field) for i in issues(good_dataset)}
    assert ("missing-key", "images[0] (id 1)", "width") in found
    assert ("wrong-type", "images[1]", "id") in found
    assert ("wrong-type", "images[2] (id 3)", "height") in found
    assert ("missing-key", "annotations[0] (image_id 1)", "bbox") in found


def test_top_level_keys_missing_or_not_arrays(raw_dataset) -> None:
    root = raw_dataset({}, {"images": {"a": 1}})
    found = {(i.code, i.field) for i in issues(root)}
    assert ("wrong-type", "images") in found and ("missing-key", "annotations") in found
    root2 = raw_dataset({}, "[1, 2]", name="list")
    assert only(root2, "wrong-type").message.startswith("top level is a JSON array")


def test_duplicate_image_ids(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["images"][2].update(id=1))
    issue = only(good_dataset, "duplicate-image-id")
    assert issue.record == "images[2] (id 1)" and "images[0]" in issue.message


def test_annotation_with_unknown_image_id(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["annotations"][1].update(image_id=99))
    issue = only(good_dataset, "unknown-image-id")
    assert issue.record == "annotations[1] (image_id 99)" and issue.field == "image_id"


def test_listed_file_missing_on_disk(good_dataset: Path) -> None:
    (good_dataset / "images" / "b.png").unlink()
    issue = only(good_dataset, "missing-file")
    assert issue.record == "images[1] (id 2)" and issue.field == "file_name"
    assert "images/b.png" in issue.message


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "sub/../../outside.png"])
def test_file_name_escaping_the_folder_is_rejected(good_dataset: Path, name: str) -> None:
    (good_dataset.parent / "outside.png").write_bytes(noise_png())
    rewrite(good_dataset, lambda doc: doc["images"][0].update(file_name=name))
    issue = only(good_dataset, "path-escapes")
    assert issue.record == "images[0] (id 1)" and issue.field == "file_name"


def test_symlink_pointing_outside_is_rejected(good_dataset: Path) -> None:
    outside = good_dataset.parent / "secret.png"
    outside.write_bytes(noise_png())
    (good_dataset / "images" / "a.png").unlink()
    os.symlink(outside, good_dataset / "images" / "a.png")
    issue = only(good_dataset, "path-escapes")
    assert "symlink" in issue.message
    # A symlink that stays inside the dataset is fine.
    (good_dataset / "images" / "a.png").unlink()
    os.symlink(good_dataset / "images" / "b.png", good_dataset / "images" / "a.png")
    assert not issues(good_dataset, "path-escapes")


def test_unreadable_and_truncated_images(good_dataset: Path) -> None:
    (good_dataset / "images" / "a.png").write_bytes(b"definitely not a png")
    (good_dataset / "images" / "b.png").write_bytes(noise_png()[:3000])
    found = {i.file: i for i in issues(good_dataset, "unreadable-image")}
    assert set(found) == {"images/a.png", "images/b.png"}
    assert "truncated" in found["images/b.png"].message
    assert found["images/b.png"].record == "image id 2"


def test_declared_size_mismatch_and_swapped_hint(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["images"][0].update(width=80, height=100))
    issue = only(good_dataset, "size-mismatch")
    assert "declared 80x100" in issue.message and "100x80" in issue.message
    assert "swapped" in issue.hint and issue.field == "width/height"


def test_degenerate_boxes(good_dataset: Path) -> None:
    def edit(doc):
        doc["annotations"][0]["bbox"] = [10, 10, 10, 75]  # zero width
        doc["annotations"][1]["bbox"] = [90, 70, 60, 20]  # flipped corners

    rewrite(good_dataset, edit)
    found = issues(good_dataset, "degenerate-bbox")
    assert [i.record for i in found] == [
        "annotations[0] (image_id 1)",
        "annotations[1] (image_id 1)",
    ]
    assert all(i.field == "bbox" for i in found)


def test_boxes_slightly_outside_are_clipped_with_warning(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["annotations"][0].update(bbox=[-1.5, 10, 101, 40]))
    warning = only(good_dataset, "bbox-clipped")
    assert warning.severity == "warning"
    ds = read_dataset(good_dataset)
    assert ds.boxes_for(1)[0].bbox == (0.0, 10.0, 100.0, 40.0)
    assert any(w.code == "bbox-clipped" for w in ds.warnings)


def test_boxes_far_outside_are_errors(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["annotations"][0].update(bbox=[10, 10, 150, 40]))
    issue = only(good_dataset, "bbox-outside-image")
    assert "100x80" in issue.message and issue.severity == "error"


def test_nan_inf_and_non_numeric_coordinates(good_dataset: Path) -> None:
    text = (good_dataset / "annotations.json").read_text()
    doc = json.loads(text)
    doc["annotations"][0]["bbox"] = [float("nan"), 1, 5, 5]
    doc["annotations"][1]["bbox"] = [1, 1, float("inf"), 5]
    doc["annotations"][2]["bbox"] = ["10", 1, 5, None]
    (good_dataset / "annotations.json").write_text(json.dumps(doc))  # writes NaN / Infinity
    assert "NaN" in (good_dataset / "annotations.json").read_text()
    assert [i.record for i in issues(good_dataset, "non-finite-bbox")] == [
        "annotations[0] (image_id 1)",
        "annotations[1] (image_id 1)",
    ]
    assert only(good_dataset, "non-numeric-bbox").record == "annotations[2] (image_id 2)"


def test_coco_xywh_boxes_are_named_explicitly(good_dataset: Path) -> None:
    # [x, y, w, h] = [60, 20, 30, 50]: as corners xmax < xmin.
    rewrite(good_dataset, lambda doc: doc["annotations"][1].update(bbox=[60, 20, 30, 50]))
    issue = only(good_dataset, "coco-xywh-bbox")
    assert "COCO [x, y, width, height]" in issue.message
    assert "convert --from coco" in issue.hint


def test_a_whole_coco_file_gets_one_summary(raw_dataset, make_image) -> None:
    files = {f"{i}.png": make_image(200, 100) for i in range(4)}
    doc = {
        "images": [
            {"file_name": f"{i}.png", "height": 100, "width": 200, "id": i} for i in range(4)
        ],
        "annotations": [
            {"image_id": i, "bbox": [120, 50, 40, 30], "category_id": 1} for i in range(4)
        ],
    }
    root = raw_dataset(files, doc)
    assert len(issues(root, "coco-xywh-bbox")) == 4
    assert "4 of 4 boxes" in only(root, "coco-xywh-file").message


def test_normalized_boxes(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["annotations"][0].update(bbox=[0.1, 0.2, 0.5, 0.6]))
    issue = only(good_dataset, "normalized-bbox")
    assert "normalized" in issue.message and "multiply" in issue.hint


@pytest.mark.parametrize("value", [1.5, "1", "cat", None, True])
def test_non_integer_category_ids(good_dataset: Path, value) -> None:
    rewrite(good_dataset, lambda doc: doc["annotations"][0].update(category_id=value))
    issue = only(good_dataset, "non-integer-category-id")
    assert issue.field == "category_id" and issue.record == "annotations[0] (image_id 1)"


def test_category_id_missing_from_categories(good_dataset: Path) -> None:
    rewrite(good_dataset, lambda doc: doc["annotations"][0].update(category_id=3))
    assert 'add {"id": 3' in only(good_dataset, "unknown-category-id").hint


@pytest.mark.parametrize("fmt", ["PPM", "TGA"])  # Pillow reads them; boxtune does not
def test_unsupported_image_formats(good_dataset: Path, make_image, fmt: str) -> None:
    make_image(100, 80).save(good_dataset / "images" / "a.png", format=fmt)
    issue = only(good_dataset, "unsupported-format")
    assert fmt in issue.message and issue.file == "images/a.png"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding(good_dataset: Path) -> None:
    (good_dataset / "images" / "a.png").write_bytes(_png_header_only(40_000, 40_000))
    rewrite(good_dataset, lambda doc: doc["images"][0].update(width=40_000, height=40_000))
    issue = only(good_dataset, "too-many-pixels")
    assert "1600000000 pixels" in issue.message.replace(",", "")
    assert "BOXTUNE_MAX_IMAGE_PIXELS" in issue.hint


def test_pixel_limit_follows_the_environment(good_dataset: Path, monkeypatch) -> None:
    monkeypatch.setenv("BOXTUNE_MAX_IMAGE_PIXELS", "5000")
    assert len(issues(good_dataset, "too-many-pixels")) == 2  # the two 100x80 images


def test_warnings_are_listed_but_do_not_fail(good_dataset: Path, make_image) -> None:
    make_image(20, 20).save(good_dataset / "images" / "stray.png")
    report = check_dataset(good_dataset).report
    assert report.ok
    stray = [i for i in report.warnings if i.code == "unreferenced-file"]
    assert [i.file for i in stray] == ["images/stray.png"]
    rare = [i for i in report.warnings if i.code == "rare-class"]
    assert {i.record for i in rare} == {"category 1", "category 2"}
    assert "has only 2 box(es)" in rare[0].message
    read_dataset(good_dataset)  # warnings never raise


def test_every_problem_is_reported_at_once(good_dataset: Path) -> None:
    def edit(doc):
        doc["images"].append({"file_name": "ghost.png", "height": 5, "width": 5, "id": 1})
        doc["annotations"][0]["bbox"] = [0.1, 0.1, 0.2, 0.2]
        doc["annotations"][1]["category_id"] = "dog"
        doc["annotations"][2]["image_id"] = 77

    rewrite(good_dataset, edit)
    (good_dataset / "images" / "b.png").unlink()
    codes = {i.code for i in check_dataset(good_dataset).report.errors}
    assert {
        "duplicate-image-id",
        "normalized-bbox",
        "non-integer-category-id",
        "unknown-image-id",
        "missing-file",
    } <= codes
    with pytest.raises(DatasetError) as info:
        read_dataset(good_dataset)
    assert "5 error(s)" in str(info.value)


def test_validate_dataset_report_json(good_dataset: Path) -> None:
    report = validate_dataset(good_dataset)
    data = report.to_json()
    assert data["ok"] is True and data["errors"] == []
    assert {"severity", "code", "message", "file", "record", "field", "hint"} <= set(
        data["warnings"][0]
    )


def test_duplicate_and_tiny_boxes_are_warnings(good_dataset: Path) -> None:
    def edit(doc):
        doc["annotations"].append(dict(doc["annotations"][0]))
        doc["annotations"].append({"image_id": 2, "bbox": [40, 40, 41, 60], "category_id": 2})

    rewrite(good_dataset, edit)
    duplicate = only(good_dataset, "duplicate-bbox")
    assert duplicate.severity == "warning" and duplicate.record == "annotations[3] (image_id 1)"
    assert "annotations[0]" in duplicate.message
    assert only(good_dataset, "tiny-bbox").record == "annotations[4] (image_id 2)"
    assert len(read_dataset(good_dataset).annotations) == 4  # the duplicate is not kept


def test_no_document_crashes_the_validator(raw_dataset, make_image) -> None:
    """Fuzz: any JSON value in any field gives a report, never an exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = raw_dataset({"a.png": make_image(30, 20)}, {"images": [], "annotations": []})
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 50),
        st.text(max_size=6),
        st.floats(allow_nan=True, allow_infinity=True),
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=8,
    )
    image = st.fixed_dictionaries(
        {},
        optional={
            "id": values | st.integers(0, 3),
            "file_name": values | st.just("a.png"),
            "width": values | st.just(30),
            "height": values | st.just(20),
        },
    )
    box = st.lists(st.one_of(st.floats(-50, 50), st.integers(-5, 40), scalars), max_size=6)
    annotation = st.fixed_dictionaries(
        {},
        optional={
            "image_id": values | st.integers(0, 3),
            "bbox": values | box,
            "category_id": values | st.integers(0, 3),
        },
    )
    document = st.fixed_dictionaries(
        {},
        optional={
            "images": values | st.lists(image | values, max_size=4),
            "annotations": values | st.lists(annotation | values, max_size=6),
            "categories": values
            | st.lists(
                st.fixed_dictionaries(
                    {}, optional={"id": values | st.integers(0, 3), "name": values}
                ),
                max_size=3,
            ),
        },
    )

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(document)
    def check(doc) -> None:
        (root / "annotations.json").write_text(json.dumps(doc))
        result = check_dataset(root)
        assert (result.dataset is None) == (not result.report.ok)
        for issue in result.report.issues:
            assert issue.message and issue.file and issue.hint

    check()
