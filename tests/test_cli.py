"""`codlite` as a user meets it: round trips, refusals with one-line errors, atomic outputs."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from cod_lite.weights import load_weights, save_weights
from cod_lite_cli.main import cli

from .conftest import PARITY


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codlite: error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def cod_file(tmp_path, parity_weights):
    out = tmp_path / "image.cod"
    result = run("compress", PARITY / "image.png", out, "--model", parity_weights)
    assert result.exit_code == 0, result.output
    return out


def test_compress_decompress_info(tmp_path, parity_weights, cod_file):
    assert "128x192" in run("info", cod_file).output
    assert "adaptive" in run("info", cod_file).output  # no prior: the adaptive coder beat fixed-length
    png = tmp_path / "back.png"
    result = run("decompress", cod_file, png, "--model", parity_weights)
    assert result.exit_code == 0, result.output
    assert Image.open(png).size == (128, 192)


def test_existing_output_is_kept_unless_forced(tmp_path, parity_weights, cod_file):
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")
    assert_one_line_error(run("decompress", cod_file, target, "--model", parity_weights), "already exists")
    assert target.read_bytes() == b"precious"
    assert run("decompress", cod_file, target, "--model", parity_weights, "--force").exit_code == 0
    assert Image.open(target).size == (128, 192)


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, parity_weights):
    # the inputs are garbage: an error about them would mean the work had started
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an image, not a stream")
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"precious")
    assert_one_line_error(run("compress", junk, taken, "--model", parity_weights), "already exists")
    assert_one_line_error(run("compress", junk, tmp_path / "no" / "x.cod", "--model", parity_weights), "does not exist")
    assert_one_line_error(run("decompress", junk, tmp_path / "x.gif", "--model", parity_weights), "unknown suffix '.gif'")
    assert_one_line_error(run("decompress", junk, taken, "--model", parity_weights), "already exists")
    assert_one_line_error(run("fit-prior", parity_weights, tmp_path, "-o", taken), "already exists")
    assert_one_line_error(run("convert", tmp_path, tmp_path / "out", "-d", "--format", "gif"), "cannot write images as 'gif'")
    assert taken.read_bytes() == b"precious" and not (tmp_path / "out").exists()


def mutations(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    return {
        "truncated": data[: len(data) - 7],
        "flipped": bytes(flipped),
        "random": random.Random(1).randbytes(200),
        "empty": b"",
        "png": (PARITY / "image.png").read_bytes(),
    }


@pytest.mark.parametrize("kind", ["truncated", "flipped", "random", "empty", "png"])
def test_damaged_or_foreign_streams(tmp_path, parity_weights, cod_file, kind):
    bad = tmp_path / f"{kind}.cod"
    bad.write_bytes(mutations(cod_file.read_bytes())[kind])
    out = tmp_path / "out.png"
    assert_one_line_error(run("decompress", bad, out, "--model", parity_weights))
    assert_one_line_error(run("info", bad))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_stream_from_another_model(tmp_path, parity_weights, cod_file):
    config, state, _ = load_weights(parity_weights)
    state["final_layer.linear.bias"] += 0.5
    other = save_weights(tmp_path / "other.safetensors", config, state)
    assert_one_line_error(run("decompress", cod_file, tmp_path / "o.png", "--model", other), "stream was made with model")


def test_stream_whose_model_is_not_installed(tmp_path, cod_file):
    assert_one_line_error(run("decompress", cod_file, tmp_path / "o.png"), "made by model 'parity'", "which no cod-lite release has shipped")


def test_non_image_and_unwritable_output(tmp_path, parity_weights):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert_one_line_error(run("compress", text, tmp_path / "x.cod", "--model", parity_weights))
    assert not (tmp_path / "x.cod").exists()
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert_one_line_error(run("compress", PARITY / "image.png", blocker / "x.cod", "--model", parity_weights), "cannot write")
    assert_one_line_error(run("compress", tmp_path / "missing.png", tmp_path / "y.cod", "--model", parity_weights))


def test_over_limit_and_empty_images(tmp_path, parity_weights, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setenv("CODLITE_MAX_PIXELS", "1000")
    assert_one_line_error(run("compress", tmp_path / "big.png", tmp_path / "big.cod", "--model", parity_weights), "limit")
    assert not (tmp_path / "big.cod").exists()


def test_reference_format(tmp_path, parity_weights):
    out = tmp_path / "ref.png"
    assert_one_line_error(run("decompress", PARITY / "image.cod", out, "--reference-format"), "--model")
    result = run("decompress", PARITY / "image.cod", out, "--reference-format", "--model", parity_weights, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    expected = load_file(str(PARITY / "expected.safetensors"))["image_out"].numpy()
    assert np.abs(np.asarray(Image.open(out)).astype(int) - expected).max() <= 1


def test_import_official_installs_a_named_model(tmp_path, official_pt):
    result = run("import-official", official_pt, "--config", PARITY / "config.yaml", "--encoder-channels", 32, "--name", "parity")
    assert result.exit_code == 0, result.output
    assert "parity" in run("models").output
    assert run("compress", PARITY / "image.png", tmp_path / "a.cod", "--model", "parity").exit_code == 0
    assert run("decompress", tmp_path / "a.cod", tmp_path / "a.png").exit_code == 0  # model found from the stream


def test_import_official_with_prior_data_writes_smaller_streams(tmp_path, official_pt):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        base = np.linspace(0, 255, 192 * 256 * 3).reshape(192, 256, 3) * rng.uniform(0.3, 1)
        Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "p.safetensors"
    result = run("import-official", official_pt, "--config", PARITY / "config.yaml", "--encoder-channels", 32, "-o", out, "--prior-data", folder)
    assert result.exit_code == 0, result.output
    assert "index prior" in result.output
    assert run("compress", folder / "0.png", tmp_path / "a.cod", "--model", out).exit_code == 0
    info = run("info", tmp_path / "a.cod").output
    assert "prior" in info, info  # method 1 or 2 beat fixed-length on an image like the fitting set


def test_import_official_bad_checkpoint(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"nope")
    assert_one_line_error(run("import-official", tmp_path / "bad.pt", "--config", PARITY / "config.yaml", "-o", tmp_path / "m.safetensors"))
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("command", [[], ["compress"], ["decompress"], ["info"], ["models"], ["import-official"], ["fit-prior"]])
def test_help_everywhere(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_installed_console_script(tmp_path, parity_weights):
    """The real `codlite` executable: exit codes and stderr as a shell sees them."""
    exe = shutil.which("codlite") or pytest.fail("codlite is not installed: run the README's install command")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run([exe, "compress", str(PARITY / "image.png"), str(tmp_path / "a.cod"), "--model", str(parity_weights)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([exe, "info", str(PARITY / "image.png")], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "not a cod-lite stream" in bad.stderr
