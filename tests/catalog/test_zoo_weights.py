"""Finding the TF2 zoo checkpoint and the TF Hub SavedModel of a catalog model from their
tarballs: hand-placed, downloaded from a real local HTTP server, given as a path or an s3:// URI
(a real S3-protocol server); sha256 recorded on first use and checked later; extracted once."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest
from tests.s3_server import s3_env, s3_server  # noqa: F401 (fixtures)

from boxtune import storage
from boxtune.catalog import (
    cached_weights_path,
    get_spec,
    resolve_hub_saved_model,
    resolve_weights,
    resolve_zoo_checkpoint,
)
from boxtune.catalog.tarballs import extract_once, extraction_root, record_path
from boxtune.errors import ModelError

ZOO_ID = "tensorflow-od1-ssd-mobilenet-v2-fpnlite-320x320-coco17-tpu-8"
ZOO_NAME = "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"
HUB_ID = "tensorflow-od-efficientdet-d0-1"
HUB_HANDLE = "tensorflow/efficientdet/d0/1"
CHECKPOINT_FILES = {
    "checkpoint/checkpoint": b'model_checkpoint_path: "ckpt-0"\n',
    "checkpoint/ckpt-0.index": b"index bytes",
    "checkpoint/ckpt-0.data-00000-of-00001": b"variable values " * 1000,
    "pipeline.config": b"model { ssd { num_classes: 90 } }\n",
    "saved_model/saved_model.pb": b"a graph",
    "saved_model/variables/variables.index": b"sm index",
}
SAVED_MODEL_FILES = {
    "saved_model.pb": b"hub graph",
    "variables/variables.index": b"hub index",
    "variables/variables.data-00000-of-00001": b"hub values " * 500,
}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    for name in ("BOXTUNE_OFFLINE", "BOXTUNE_TF_ZOO_BASE_URL", "BOXTUNE_TFHUB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; records the GET paths."""
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=root))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def pack(target: Path, files: dict[str, bytes], *, top: str | None = ZOO_NAME, dot=False) -> Path:
    """A .tar.gz holding ``files`` under ``top/`` (folders as entries, like ``tar czf``);
    ``dot``: names written as ``tar -C DIR .`` writes them (``./``, ``./name``)."""
    prefix = "./" if dot else (f"{top}/" if top else "")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        folders = {"."} if dot else ({top} if top else set())
        for name in files:
            parts = name.split("/")[:-1]
            folders |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder if folder == "." else prefix + folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def placed_zoo_tarball(**kwargs) -> Path:
    spec = get_spec(ZOO_ID)
    return pack(cached_weights_path(spec), CHECKPOINT_FILES, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the zoo checkpoint --------------------------------------------------------------------


def test_a_hand_placed_tarball_is_used_offline_extracted_once_and_its_hash_recorded(
    home, monkeypatch
):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    tarball = placed_zoo_tarball()
    assert tarball == home / "weights" / f"{ZOO_NAME}.tar.gz"
    digest = sha256(tarball)

    prefix = resolve_zoo_checkpoint(get_spec(ZOO_ID))
    folder = extraction_root() / f"{ZOO_NAME}-{digest[:16]}"
    assert prefix == folder / ZOO_NAME / "checkpoint" / "ckpt-0"
    checkpoint = prefix.parent
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "checkpoint",
        "ckpt-0.data-00000-of-00001",
        "ckpt-0.index",
    ]
    assert (checkpoint / "ckpt-0.index").read_bytes() == b"index bytes"
    assert (folder / ZOO_NAME / "pipeline.config").read_bytes().startswith(b"model {")
    assert not (folder / ZOO_NAME / "saved_model").exists()  # not needed: not extracted
    assert record_path(tarball).read_text().strip() == digest
    assert not list(extraction_root().glob(".*partial*"))

    marker = checkpoint / "ckpt-0.index"
    marker.write_bytes(b"touched")  # a second use reuses the extraction as it is
    assert resolve_zoo_checkpoint(get_spec(ZOO_ID)) == prefix
    assert marker.read_bytes() == b"touched"


def test_a_tarball_that_changed_after_first_use_is_refused(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    tarball = placed_zoo_tarball()
    first = sha256(tarball)
    resolve_zoo_checkpoint(get_spec(ZOO_ID))
    pack(tarball, {**CHECKPOINT_FILES, "checkpoint/ckpt-0.index": b"other index"})
    with pytest.raises(ModelError, match="sha256 mismatch") as err:
        resolve_zoo_checkpoint(get_spec(ZOO_ID))
    text = str(err.value)
    assert first in text and sha256(tarball) in text and str(tarball) in text
    assert f"{ZOO_NAME}.tar.gz.sha256" in text  # how to accept the new file
    record_path(tarball).unlink()
    assert resolve_zoo_checkpoint(get_spec(ZOO_ID)).parent.joinpath(
        "ckpt-0.index"
    ).read_bytes() == (b"other index")


def test_a_missing_tarball_is_downloaded_from_the_zoo_url(server, home, monkeypatch):
    root, base_url, hits = server
    served = pack(root / "mirror" / f"{ZOO_NAME}.tar.gz", CHECKPOINT_FILES)
    monkeypatch.setenv("BOXTUNE_TF_ZOO_BASE_URL", f"{base_url}/mirror/")
    prefix = resolve_zoo_checkpoint(get_spec(ZOO_ID))
    assert hits == [f"/mirror/{ZOO_NAME}.tar.gz"]
    tarball = home / "weights" / f"{ZOO_NAME}.tar.gz"
    assert tarball.read_bytes() == served.read_bytes()
    assert record_path(tarball).read_text().strip() == sha256(served)
    assert prefix.with_name("ckpt-0.index").is_file()
    assert resolve_zoo_checkpoint(get_spec(ZOO_ID)) == prefix
    assert len(hits) == 1  # the second use needs no network


def test_offline_the_error_names_the_url_the_file_and_the_folder(home, monkeypatch):
    spec = get_spec(ZOO_ID)
    url = f"http://download.tensorflow.org/models/object_detection/tf2/20200711/{ZOO_NAME}.tar.gz"
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        resolve_zoo_checkpoint(spec)
    text = str(err.value)
    assert url in text and f"{ZOO_NAME}.tar.gz" in text and str(home / "weights") in text
    assert "BOXTUNE_OFFLINE" in text

    monkeypatch.delenv("BOXTUNE_OFFLINE")  # a server that is not there: the same names
    monkeypatch.setenv("BOXTUNE_TF_ZOO_BASE_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ModelError) as err:
        resolve_zoo_checkpoint(spec)
    text = str(err.value)
    assert "127.0.0.1" in text and f"{ZOO_NAME}.tar.gz" in text and str(home / "weights") in text
    assert not (home / "weights" / f"{ZOO_NAME}.tar.gz").exists()


def test_a_corrupt_tarball_is_a_clear_error(home, monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    tarball = placed_zoo_tarball()
    tarball.write_bytes(tarball.read_bytes()[:300])  # cut short
    with pytest.raises(ModelError, match="corrupt") as err:
        resolve_zoo_checkpoint(get_spec(ZOO_ID))
    assert str(tarball) in str(err.value) and "download it again" in str(err.value)
    assert not record_path(tarball).exists()  # a file that never worked is not pinned
    assert not [p for p in extraction_root().iterdir() if p.name != ".locks"]

    tarball.write_bytes(b"<html>a proxy's login page</html>")
    with pytest.raises(ModelError, match="corrupt"):
        resolve_zoo_checkpoint(get_spec(ZOO_ID))


def test_a_corrupt_download_is_not_kept(server, home, monkeypatch):
    root, base_url, _ = server
    (root / f"{ZOO_NAME}.tar.gz").write_bytes(b"not a tarball at all")
    monkeypatch.setenv("BOXTUNE_TF_ZOO_BASE_URL", base_url)
    with pytest.raises(ModelError, match="corrupt"):
        resolve_zoo_checkpoint(get_spec(ZOO_ID))
    assert not list((home / "weights").glob(f"{ZOO_NAME}.tar.gz*"))


def test_a_tarball_without_the_checkpoint_says_what_it_holds(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    pack(cached_weights_path(get_spec(ZOO_ID)), {"saved_model/saved_model.pb": b"x"})
    with pytest.raises(ModelError, match=r"holds no checkpoint/ckpt-0\.index") as err:
        resolve_zoo_checkpoint(get_spec(ZOO_ID))
    assert f"{ZOO_NAME}/saved_model/saved_model.pb" in str(err.value)

    files = {k: v for k, v in CHECKPOINT_FILES.items() if ".data-" not in k}
    pack(cached_weights_path(get_spec(ZOO_ID)), files)
    record_path(cached_weights_path(get_spec(ZOO_ID))).unlink(missing_ok=True)
    with pytest.raises(ModelError, match="incomplete: there are no data files"):
        resolve_zoo_checkpoint(get_spec(ZOO_ID))


def test_an_unsafe_tarball_is_refused(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    tarball = cached_weights_path(get_spec(ZOO_ID))
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as archive:
        link = tarfile.TarInfo(f"{ZOO_NAME}/checkpoint/ckpt-0.index")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(ModelError, match="not a tarball boxtune extracts") as err:
        resolve_zoo_checkpoint(get_spec(ZOO_ID))
    assert "not a regular file" in str(err.value)


def test_any_top_folder_and_dot_slash_names_are_normalised(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    for kwargs in ({"top": "my_model"}, {"top": None}, {"dot": True}):
        tarball = placed_zoo_tarball(**kwargs)
        record_path(tarball).unlink(missing_ok=True)
        prefix = resolve_zoo_checkpoint(get_spec(ZOO_ID))
        assert prefix.parts[-3:] == (ZOO_NAME, "checkpoint", "ckpt-0"), kwargs
        assert prefix.with_name("ckpt-0.index").read_bytes() == b"index bytes"
        assert prefix.parent.parent.joinpath("pipeline.config").is_file()


def test_weights_given_as_a_tarball_a_folder_a_prefix_or_an_index(tmp_path):
    spec = get_spec(ZOO_ID)
    tarball = pack(tmp_path / "elsewhere" / "any-name.tar.gz", CHECKPOINT_FILES)
    prefix = resolve_zoo_checkpoint(spec, tarball)
    assert prefix.with_name("ckpt-0.index").is_file()
    assert record_path(tarball).read_text().strip() == sha256(tarball)  # recorded beside it
    assert not cached_weights_path(spec).exists()

    extracted = prefix.parent.parent  # …/<zoo_name>, as extracted from the zoo tarball
    assert resolve_zoo_checkpoint(spec, extracted) == prefix
    assert resolve_zoo_checkpoint(spec, extracted.parent) == prefix  # the folder above it
    assert resolve_zoo_checkpoint(spec, prefix.parent) == prefix  # checkpoint/ itself
    assert resolve_zoo_checkpoint(spec, prefix) == prefix
    assert resolve_zoo_checkpoint(spec, str(prefix) + ".index") == prefix

    with pytest.raises(ModelError, match="not found"):
        resolve_zoo_checkpoint(spec, tmp_path / "missing.tar.gz")
    with pytest.raises(ModelError, match=r"folder holds no checkpoint/ckpt-0\.index"):
        resolve_zoo_checkpoint(spec, tmp_path / "elsewhere")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "ckpt-0.index").write_bytes(b"x")
    with pytest.raises(ModelError, match="no data files"):
        resolve_zoo_checkpoint(spec, lonely)


def test_weights_given_as_an_http_url_are_downloaded_once(server, home):
    root, base_url, hits = server
    pack(root / "copy.tar.gz", CHECKPOINT_FILES)
    spec = get_spec(ZOO_ID)
    prefix = resolve_zoo_checkpoint(spec, f"{base_url}/copy.tar.gz")
    assert resolve_zoo_checkpoint(spec, f"{base_url}/copy.tar.gz") == prefix
    assert hits == ["/copy.tar.gz"]
    assert not cached_weights_path(spec).exists()  # a URL's copy lives apart


def test_weights_from_s3_a_tarball_or_a_checkpoint_prefix(s3_env, tmp_path):  # noqa: F811
    bucket = s3_env.create_bucket("zoo-weights")
    tarball = pack(tmp_path / f"{ZOO_NAME}.tar.gz", CHECKPOINT_FILES)
    storage.upload(tarball, f"s3://{bucket}/models/{ZOO_NAME}.tar.gz")
    spec = get_spec(ZOO_ID)
    prefix = resolve_zoo_checkpoint(spec, f"s3://{bucket}/models/{ZOO_NAME}.tar.gz")
    assert prefix.with_name("ckpt-0.index").read_bytes() == b"index bytes"
    assert prefix.parts[-4] == f"{ZOO_NAME}-{sha256(tarball)[:16]}"

    storage.upload(prefix.parent, f"s3://{bucket}/extracted/checkpoint")
    remote = resolve_zoo_checkpoint(spec, f"s3://{bucket}/extracted/checkpoint/ckpt-0")
    assert remote.name == "ckpt-0" and remote.with_name("ckpt-0.index").is_file()
    assert remote != prefix  # a local copy of the remote folder
    folder = resolve_zoo_checkpoint(spec, f"s3://{bucket}/extracted")
    assert folder.with_name("ckpt-0.data-00000-of-00001").is_file()


def test_resolve_weights_pins_unpublished_hashes_on_first_use(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    spec = get_spec(ZOO_ID)
    tarball = placed_zoo_tarball()
    assert resolve_weights(spec) == tarball
    assert record_path(tarball).read_text().strip() == sha256(tarball)
    tarball.write_bytes(b"changed")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        resolve_weights(spec)


def test_an_interrupted_extraction_leaves_nothing_behind():
    def build(staging: Path) -> None:
        (staging / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        extract_once("key-1", build)
    assert not [p for p in extraction_root().iterdir() if p.name != ".locks"]
    done = extract_once("key-1", lambda staging: (staging / "whole").write_text("y"))
    assert done == extraction_root() / "key-1" and (done / "whole").read_text() == "y"


# --- TF Hub SavedModels --------------------------------------------------------------------


def test_a_hub_tarball_in_tf_hubs_format_gives_the_saved_model_folder(home, monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    spec = get_spec(HUB_ID)
    tarball = pack(cached_weights_path(spec), SAVED_MODEL_FILES, dot=True)
    assert tarball.name == "tensorflow_efficientdet_d0_1.tar.gz"
    with tarfile.open(tarball) as archive:
        assert archive.getnames()[:2] == [".", "./variables"]  # as TF Hub serves them
    folder = resolve_hub_saved_model(spec)
    assert folder.name == "saved_model" and folder.parent.parent == extraction_root()
    assert (folder / "saved_model.pb").read_bytes() == b"hub graph"
    assert (folder / "variables" / "variables.data-00000-of-00001").is_file()
    assert record_path(tarball).read_text().strip() == sha256(tarball)
    assert resolve_hub_saved_model(spec, folder) == folder  # a SavedModel folder as is


def test_a_zoo_tarball_serves_as_the_hub_model_of_the_same_network(tmp_path):
    spec = get_spec("tensorflow-od-ssd-mobilenet-v2-fpnlite-320x320-1")
    folder = resolve_hub_saved_model(spec, pack(tmp_path / "zoo.tar.gz", CHECKPOINT_FILES))
    assert sorted(p.name for p in folder.iterdir()) == ["saved_model.pb", "variables"]


def test_a_hub_model_is_downloaded_from_the_configured_base_url(server, home, monkeypatch):
    root, base_url, hits = server
    pack(root / "hub" / HUB_HANDLE, SAVED_MODEL_FILES, dot=True)  # served at …/d0/1
    monkeypatch.setenv("BOXTUNE_TFHUB_BASE_URL", f"{base_url}/hub")
    folder = resolve_hub_saved_model(get_spec(HUB_ID))
    assert hits == [f"/hub/{HUB_HANDLE}?tf-hub-format=compressed"]
    assert (folder / "saved_model.pb").is_file()
    assert (home / "weights" / "tensorflow_efficientdet_d0_1.tar.gz").is_file()


def test_hub_errors_name_the_download_and_what_is_missing(home, monkeypatch):
    spec = get_spec(HUB_ID)
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        resolve_hub_saved_model(spec)
    text = str(err.value)
    assert f"https://tfhub.dev/{HUB_HANDLE}?tf-hub-format=compressed" in text
    assert "tensorflow_efficientdet_d0_1.tar.gz" in text and str(home / "weights") in text
    pack(cached_weights_path(spec), {"README": b"nothing useful"}, dot=True)
    with pytest.raises(ModelError, match=r"holds no saved_model\.pb"):
        resolve_hub_saved_model(spec)
    with pytest.raises(ModelError, match="is not a TF Hub model"):
        resolve_hub_saved_model(get_spec(ZOO_ID))
    with pytest.raises(ModelError, match="not a TF2 Detection Model Zoo model"):
        resolve_zoo_checkpoint(spec)
