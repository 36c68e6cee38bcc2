"""Streams made by any release decode with this one (`cod_lite.zoo.registry`, docs/format.md).

Every weight identity the registry lists has a golden stream in tests/data/golden (made with those
weights, colour side information included) and its exact decoding. The superseded files come from
the release archive, which a local HTTP server serves here from this checkout's git history, as
`tools/weight_registry.py --export` builds it; they are fetched, checked and decoded as a user's
`codlite fetch-model` would.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite import zoo
from cod_lite.zoo import registry
from cod_lite_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"


def test_the_registry_holds_every_bundled_file_as_current_and_its_history():
    entries = registry.entries()
    by_identity = {e.weights_sha256: e for e in entries}
    assert len(by_identity) == len(entries)  # one entry per identity
    bundled = [m for m in zoo.available_models() if m.origin == "bundled"]
    assert {m.name for m in bundled} == {"cod-lite-s-0.008", "cod-lite-s-0.03", "cod-lite-s-0.125", "cod-lite-s-0.5"}
    for model in bundled:  # a replaced bundled file without a registry entry fails here
        entry = by_identity.get(model.weights_sha256)
        assert entry is not None, f"{model.name} {model.weights_sha256[:16]} is not in the registry: run tools/weight_registry.py"
        assert entry.replaced_by is None and entry.model == model.name
        assert hashlib.sha256(model.path.read_bytes()).hexdigest() == entry.file_sha256
    for entry in entries:  # every superseded identity points at a later one of the same model
        if entry.replaced_by:
            assert by_identity[entry.replaced_by].model == entry.model and by_identity[entry.replaced_by].date >= entry.date
    releases = {tuple(map(int, e.release.split("."))) for e in entries}
    assert max(releases) <= tuple(map(int, cod_lite.__version__.split(".")))
    assert len(entries) >= 32  # the identities of the history up to 0.2.0 never leave


def _golden_name(entry: registry.Entry) -> str:
    return registry.archive_name(entry.model, entry.weights_sha256).removesuffix(".safetensors")


def test_every_registered_identity_has_a_golden_stream():
    names = {p.stem for p in GOLDEN.glob("*.cod")}
    missing = [_golden_name(e) for e in registry.entries() if _golden_name(e) not in names]
    assert not missing, f"no golden stream for {missing}: run tools/weight_registry.py --golden tests/data/golden"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The release archive of every superseded file, from git, on a local HTTP server."""
    folder = tmp_path_factory.mktemp("archive")
    if not (ROOT / ".git").exists():
        pytest.fail("the golden-stream test rebuilds the archive from git history: run it in a git checkout (CI clones)")
    for entry in registry.entries():
        if entry.replaced_by:
            data = subprocess.run(["git", "-C", str(ROOT), "show", f"{entry.commit}:{entry.path}"], check=True, capture_output=True).stdout
            (folder / registry.archive_name(entry.model, entry.weights_sha256)).write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CODLITE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.slow
def test_every_golden_stream_decodes_after_fetching_what_it_names(archive, home, monkeypatch):
    folder, url = archive
    monkeypatch.setenv(registry.ARCHIVE_ENV, url)
    for entry in registry.entries():
        stream = (GOLDEN / f"{_golden_name(entry)}.cod").read_bytes()
        expected = np.asarray(Image.open(GOLDEN / f"{_golden_name(entry)}.png"))
        about = cod_lite.inspect(stream)
        assert about.model_release == entry.release and about.model_current == (entry.replaced_by is None)
        if entry.replaced_by:  # not installed: the message says what to run, then that works
            assert not about.model_installed
            with pytest.raises(cod_lite.ModelNotFoundError, match=f"codlite fetch-model {entry.identity}"):
                cod_lite.decode(stream)
            assert cod_lite.fetch_model(entry.identity) == home / "models" / "archive" / f"{_golden_name(entry)}.safetensors"
            assert cod_lite.inspect(stream).model_installed
        decoded = np.asarray(cod_lite.decode(stream, precision="fp32")).astype(int)
        assert decoded.shape == expected.shape
        diff = np.abs(decoded - expected)
        assert diff.mean() < 0.1 and diff.max() <= 4, (entry.identity, diff.mean(), diff.max())  # fp32 on another CPU: summation order


def test_a_superseded_model_is_fetched_once_checked_and_then_offline(archive, home, monkeypatch):
    folder, url = archive
    entry = next(e for e in registry.entries() if e.replaced_by)
    stream = (GOLDEN / f"{_golden_name(entry)}.cod").read_bytes()
    # no archive set: the one-line error says how to set one
    monkeypatch.delenv(registry.ARCHIVE_ENV, raising=False)
    monkeypatch.setattr(registry, "_registry", lambda: {**json.loads(registry.REGISTRY_PATH.read_text()), "archive_url": ""})
    with pytest.raises(cod_lite.ModelNotFoundError, match="no archive is set"):
        cod_lite.fetch_model(entry.identity)
    # a server whose file differs from the registered one: refused, nothing kept
    bad = folder.parent / "bad"
    bad.mkdir(exist_ok=True)
    (bad / registry.archive_name(entry.model, entry.weights_sha256)).write_bytes(b"not the weights")
    monkeypatch.setenv(registry.ARCHIVE_ENV, bad.as_uri())
    with pytest.raises(cod_lite.ModelNotFoundError, match="does not hold the registered file"):
        cod_lite.fetch_model(entry.identity)
    assert not (home / "models" / "archive").exists() or not any((home / "models" / "archive").iterdir())
    # the command line: fetched once from the archive, then decoded with no archive at all
    monkeypatch.setenv(registry.ARCHIVE_ENV, url)
    result = CliRunner().invoke(cli, ["fetch-model", entry.identity])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(registry.ARCHIVE_ENV, "http://127.0.0.1:9/")  # nothing listens: any download would fail
    assert np.asarray(cod_lite.decode(stream)).shape == (48, 80, 3)
    info = CliRunner().invoke(cli, ["info", str(GOLDEN / f"{_golden_name(entry)}.cod")])
    assert f"cod-lite {entry.release}, since replaced; installed" in info.output


def test_messages_name_what_to_install(home, tmp_path):
    entry = next(e for e in registry.entries() if e.replaced_by)
    stream = (GOLDEN / f"{_golden_name(entry)}.cod").read_bytes()
    cod = tmp_path / "old.cod"
    cod.write_bytes(stream)
    result = CliRunner().invoke(cli, ["decompress", str(cod), str(tmp_path / "x.png")])
    assert result.exit_code != 0
    assert f"shipped in cod-lite {entry.release}" in result.output and f"codlite fetch-model {entry.identity}" in result.output
    assert "import-official" not in result.output and "Traceback" not in result.output
    # an identity no release shipped: a model of the user's own or an official one
    with pytest.raises(cod_lite.ModelNotFoundError, match="which no cod-lite release has shipped"):
        zoo.find_by_identity("my-model", bytes.fromhex("0123456789abcdef"))
    info = CliRunner().invoke(cli, ["info", str(cod)])
    assert f"not installed here: codlite fetch-model {entry.identity}" in info.output
    with pytest.raises(cod_lite.ModelNotFoundError, match="no cod-lite release shipped weights"):
        cod_lite.fetch_model("0123456789abcdef")
