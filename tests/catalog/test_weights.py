import dataclasses
import hashlib
import http.server
import socket
import threading
from functools import partial
from pathlib import Path

import pytest

from boxtune.catalog import DEFAULT_MODEL_ID, cached_weights_path, get_spec, resolve_weights
from boxtune.errors import ModelError

PAYLOAD = b"pretend these are weights " * 5000


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BOXTUNE_OFFLINE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; counts the GET requests."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

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


def _spec(url: str, sha256: str, file_name: str = "toy_detector-abc.pth"):
    base = get_spec("pytorch-od1-ssdlite320-mobilenet-v3-large")
    weights = dataclasses.replace(base.weights, url=url, sha256=sha256, file_name=file_name)
    return dataclasses.replace(base, weights=weights)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_packaged_weights_need_no_network():
    path = resolve_weights(get_spec(DEFAULT_MODEL_ID))
    assert path.is_file() and path.name == "efficientnet-lite0-57934424.pth"


def test_download_verifies_hash_prefix_and_caches(server, home):
    root, base_url, hits = server
    (root / "w.pth").write_bytes(PAYLOAD)
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    spec = _spec(f"{base_url}/w.pth", prefix)

    path = resolve_weights(spec)
    assert path == cached_weights_path(spec) == home / "weights" / spec.weights.file_name
    assert path.read_bytes() == PAYLOAD
    assert hits == ["/w.pth"]
    assert not list(path.parent.glob("*.part"))

    # The second call uses the cache: no new request.
    assert resolve_weights(spec) == path
    assert hits == ["/w.pth"]


def test_wrong_hash_is_rejected_and_nothing_is_kept(server):
    root, base_url, _ = server
    (root / "w.pth").write_bytes(PAYLOAD)
    spec = _spec(f"{base_url}/w.pth", "deadbeef")
    with pytest.raises(ModelError, match="sha256 mismatch") as err:
        resolve_weights(spec)
    assert base_url in str(err.value)
    target = cached_weights_path(spec)
    assert not target.exists()
    assert not list(target.parent.glob("*"))


def test_tampered_cached_file_is_rejected(home):
    spec = _spec("http://127.0.0.1:9/w.pth", hashlib.sha256(PAYLOAD).hexdigest()[:8])
    target = cached_weights_path(spec)
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD + b"x")
    with pytest.raises(ModelError, match="sha256 mismatch") as err:
        resolve_weights(spec)
    assert str(target) in str(err.value)


def test_offline_error_names_url_file_and_cache_path():
    url = f"http://127.0.0.1:{_free_port()}/models/toy_detector-abc.pth"
    spec = _spec(url, "abc")
    with pytest.raises(ModelError) as err:
        resolve_weights(spec)
    text = str(err.value)
    assert url in text
    assert "toy_detector-abc.pth" in text
    assert str(cached_weights_path(spec)) in text


def test_boxtune_offline_forbids_downloads(server, monkeypatch):
    root, base_url, hits = server
    (root / "w.pth").write_bytes(PAYLOAD)
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    with pytest.raises(ModelError, match="BOXTUNE_OFFLINE"):
        resolve_weights(_spec(f"{base_url}/w.pth", hashlib.sha256(PAYLOAD).hexdigest()))
    assert hits == []


def test_hand_placed_file_in_cache_is_used_offline(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    spec = _spec("http://127.0.0.1:9/x.pth", hashlib.sha256(PAYLOAD).hexdigest()[:8])
    target = cached_weights_path(spec)
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert resolve_weights(spec) == target


def test_explicit_path_is_verified(tmp_path):
    good = tmp_path / "good.pth"
    good.write_bytes(PAYLOAD)
    spec = _spec("http://127.0.0.1:9/x.pth", hashlib.sha256(PAYLOAD).hexdigest()[:8])
    assert resolve_weights(spec, good) == good
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"other")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        resolve_weights(spec, bad)
    with pytest.raises(ModelError, match="not found"):
        resolve_weights(spec, tmp_path / "missing.pth")


def test_explicit_http_uri_downloads(server):
    root, base_url, hits = server
    (root / "mirror.pth").write_bytes(PAYLOAD)
    spec = _spec("http://127.0.0.1:9/unreachable.pth", hashlib.sha256(PAYLOAD).hexdigest()[:8])
    path = resolve_weights(spec, f"{base_url}/mirror.pth")
    assert Path(path).read_bytes() == PAYLOAD and hits == ["/mirror.pth"]
