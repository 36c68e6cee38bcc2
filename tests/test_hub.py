"""`official:RATE` models against a local server that answers like the Hugging Face hub: the first
use downloads, checks and imports; later uses are offline; bad downloads are refused or retried."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import cod_lite
from cod_lite.errors import CheckpointError, ModelNotFoundError
from cod_lite.weights import read_metadata
from cod_lite.zoo.hub import cache_dir as hub_cache_dir
from cod_lite_cli.main import cli

from .conftest import PARITY
from .test_cli import assert_one_line_error

pytest.importorskip("huggingface_hub")  # the [test] extra installs it; a user without it gets the hint (tested below)

COMMIT = "c0ffee" * 6 + "abcd"


class MockHub:
    """Serves files under /zhaoyangjia/CoD_Lite/resolve/<revision>/<name> with the hub's headers
    (X-Repo-Commit, ETag = sha256 of the true bytes); `faults` lists what the next GETs do."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.faults, self.requests = files, [], []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002
                pass

            def _file(self) -> bytes | None:
                match = re.match(r"^/zhaoyangjia/CoD_Lite/resolve/[^/]+/(.+)$", self.path.split("?")[0])
                return hub.files.get(match.group(1)) if match else None

            def _headers(self, data: bytes, length: int) -> None:
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path))
                data = self._file()
                self.send_response(200 if data is not None else 404)
                self._headers(data or b"", len(data or b""))

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path))
                data = self._file()
                if data is None:
                    self.send_response(404)
                    self._headers(b"", 0)
                    return
                fault = hub.faults.pop(0) if hub.faults and self.path.endswith(".pt") else None
                self.send_response(200)
                self._headers(data, len(data))
                if fault == "corrupt":
                    self.wfile.write(data[:100] + bytes([data[100] ^ 1]) + data[101:])
                elif fault == "cut":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gets(self, suffix: str) -> int:
        return sum(1 for method, path in self.requests if method == "GET" and path.endswith(suffix))


@pytest.fixture
def hub(official_pt, monkeypatch):
    """The parity fixture published under the official file names of the 0.0312 model."""
    server = MockHub({"CoD_Lite_bpp_0_0312.pt": official_pt.read_bytes(), "CoD_Lite_bpp_0_0312.yaml": (PARITY / "config.yaml").read_bytes()})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.server.shutdown()


def test_first_use_downloads_imports_and_records_the_source(hub, parity_codec, official_pt):
    codec = cod_lite.load_model("official:0.0312", precision="fp32")
    assert codec.name == "official:0.0312" and hub.gets(".pt") == 1 and hub.gets(".yaml") == 1
    np.testing.assert_array_equal(codec.quantize(PARITY / "image.png"), parity_codec.quantize(PARITY / "image.png"))
    np.testing.assert_array_equal(np.asarray(codec.decode(codec.encode(PARITY / "image.png"))),
                                  np.asarray(parity_codec.decode(parity_codec.encode(PARITY / "image.png"))))
    info = json.loads(read_metadata(codec.path)["info"])
    assert info["sha256"] == hashlib.sha256(official_pt.read_bytes()).hexdigest()
    assert info["revision"] == COMMIT and info["repository"] == "zhaoyangjia/CoD_Lite"
    assert codec.path.suffix == ".safetensors" and codec.path.parent == cod_lite.user_model_dir()


def test_later_uses_are_offline_and_streams_find_the_model(hub, monkeypatch):
    data = cod_lite.encode(PARITY / "image.png", "official:0.03120", precision="fp32")
    hub.server.shutdown()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    assert cod_lite.decode(data).size == (128, 192)  # found by the identity the stream carries
    assert cod_lite.load_model("official:0.0312").name == "official:0.0312" and len(hub.requests) == before
    listed = CliRunner().invoke(cli, ["models", "--official"]).stdout
    assert re.search(r"official:0\.0312 .* imported, \d+ MiB", listed) and "official:0.5 " in listed


def test_a_corrupted_download_is_fetched_again_and_a_persistent_one_refused(hub):
    hub.faults = ["corrupt"]
    assert cod_lite.load_model("official:0.0312").name == "official:0.0312"
    assert hub.gets(".pt") == 2
    (cod_lite.user_model_dir() / "official-0.0312.safetensors").unlink()
    shutil.rmtree(hub_cache_dir())  # the good blob would be reused
    hub.faults = ["corrupt", "corrupt"]
    with pytest.raises(CheckpointError, match="do not match their sha256"):
        cod_lite.load_model("official:0.0312", precision="fp32")


def test_an_interrupted_download_is_resumed(hub):
    hub.faults = ["cut"]
    assert cod_lite.load_model("official:0.0312").name == "official:0.0312"
    assert hub.gets(".pt") >= 2


def test_offline_without_the_cache_is_one_line(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not downloaded yet.*HF_HUB_OFFLINE"):
        cod_lite.load_model("official:0.0312")
    image = tmp_path / "i.png"
    image.write_bytes((PARITY / "image.png").read_bytes())
    result = CliRunner().invoke(cli, ["compress", str(image), str(tmp_path / "o.cod"), "--model", "official:0.0312"])
    assert_one_line_error(result, "codlite import-official")
    assert not (tmp_path / "o.cod").exists() and hub.gets(".pt") == 0


def test_unknown_names_and_a_missing_hub_library_are_one_line(monkeypatch):
    with pytest.raises(ModelNotFoundError, match="no official model 'official:0.2'"):
        cod_lite.load_model("official:0.2")
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    with pytest.raises(ModelNotFoundError, match=r'pip install "cod-lite\[hub\]"'):
        cod_lite.load_model("official:0.5")
