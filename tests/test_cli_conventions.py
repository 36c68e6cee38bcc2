"""The command-line conventions of cwebp/avifenc/cjxl: - for stdin/stdout, several inputs,
--quiet, --threads, and --bpp picking a bundled model."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite_cli.main import cli

from .conftest import PARITY
from .test_api import photo
from .test_cli import assert_one_line_error


def invoke(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin)


def test_stdin_to_stdout_gives_the_same_stream_and_image_as_files(tmp_path, parity_weights):
    png = (PARITY / "image.png").read_bytes()
    piped = invoke("compress", "-", "-", "--model", parity_weights, stdin=png)
    assert piped.exit_code == 0, piped.output
    assert invoke("compress", PARITY / "image.png", tmp_path / "f.cod", "--model", parity_weights).exit_code == 0
    assert piped.stdout_bytes == (tmp_path / "f.cod").read_bytes()
    assert "128x192" in piped.stderr  # the summary goes to stderr when the data goes to stdout
    back = invoke("decompress", "-", "-", "--model", parity_weights, stdin=piped.stdout_bytes)
    assert back.exit_code == 0, back.output
    image = Image.open(io.BytesIO(back.stdout_bytes))
    assert image.format == "PNG"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(cod_lite.decode(piped.stdout_bytes, model=parity_weights)))
    webp = invoke("decompress", "-", "-", "--format", "webp", "--model", parity_weights, stdin=piped.stdout_bytes)
    assert Image.open(io.BytesIO(webp.stdout_bytes)).format == "WEBP"


def test_empty_or_foreign_stdin_is_one_line(parity_weights):
    assert_one_line_error(invoke("decompress", "-", "out.png", stdin=b""), "standard input is empty")
    assert_one_line_error(invoke("compress", "-", "out.cod", "--model", parity_weights, stdin=b"not an image"), "not a recognised image")


def test_several_inputs_fill_a_folder_and_a_bad_one_does_not_stop_the_rest(tmp_path, parity_weights):
    for i in range(2):
        Image.fromarray(photo(32, 48, seed=i)).save(tmp_path / f"p{i}.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    inputs = [tmp_path / "p0.png", tmp_path / "bad.png", tmp_path / "p1.png"]
    result = invoke("compress", *inputs, tmp_path / "out", "--model", parity_weights)
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.cod", "p1.cod"]
    assert "failed: " in result.stderr and "1 of 3 files failed" in result.stderr
    result = invoke("decompress", tmp_path / "out" / "p0.cod", tmp_path / "out" / "p1.cod", tmp_path / "img", "--format", "jpg", "-q", "--model", parity_weights)
    assert result.exit_code == 0 and result.stdout == ""  # --quiet
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["p0.jpg", "p1.jpg"]
    assert_one_line_error(invoke("compress", *inputs[:1], "-", tmp_path / "x", "--model", parity_weights), "single input")


def test_several_inputs_need_a_folder_and_distinct_names(tmp_path, parity_weights):
    (tmp_path / "a").mkdir()
    for folder in ("a", "."):
        Image.fromarray(photo(16, 16)).save(tmp_path / folder / "same.png")
    target = tmp_path / "file.cod"
    target.write_bytes(b"x")
    assert_one_line_error(invoke("compress", tmp_path / "same.png", tmp_path / "a" / "same.png", target), "must be a folder")
    assert_one_line_error(invoke("compress", tmp_path / "same.png", tmp_path / "a" / "same.png", tmp_path / "o"), "both write")


@pytest.mark.parametrize("target, expected", [(0.1, "cod-lite-s-0.125"), (0.06, "cod-lite-s-0.03"), (0.2, "cod-lite-s-0.125"), (0.005, "cod-lite-s-0.008")])
def test_bpp_picks_the_nearest_bundled_rate_on_a_log_scale(target, expected):
    assert cod_lite.model_for_bpp(target) == expected


def test_a_rate_below_the_bundled_models_is_refused_with_the_range(tmp_path):
    with pytest.raises(cod_lite.InputError, match=r"give a rate in 0.0039-0.25 \(the bundled models make 0.0078-0.12"):
        cod_lite.model_for_bpp(0.001)
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--bpp", 0.001), "no bundled model codes near")
    with pytest.raises(cod_lite.InputError, match="no bundled model"):
        cod_lite.encode(tmp_path / "p.png", bpp=0.001)


@pytest.mark.parametrize("target", [0.5, 0.3, 5])
def test_a_rate_above_the_bundled_models_points_to_the_authors_model(target, tmp_path):
    """cod-lite-s-0.5 is retired (AVIF beat it at its rate): 0.5 bpp is the authors' official:0.5."""
    with pytest.raises(cod_lite.InputError, match=r"they make 0.0078-0.12\): use the authors' model for that rate, model='official:0.5'"):
        cod_lite.model_for_bpp(target)
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--bpp", target), "--model official:0.5 (downloaded once)")
    assert not (tmp_path / "p.cod").exists()


def test_a_retired_model_decodes_its_streams_and_makes_no_new_ones(tmp_path):
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--model", "cod-lite-s-0.5"),
                          "cod-lite-s-0.5 is retired: it decodes the streams it made but makes no new ones")
    assert not (tmp_path / "p.cod").exists()
    codec = cod_lite.load_model("cod-lite-s-0.5")
    with pytest.raises(cod_lite.InputError, match="retired"):
        codec.encode_many([photo(32, 32)])
    # a stream it made before its retirement (the golden stream of the bundled file) still decodes, exactly
    info = next(m for m in cod_lite.available_models() if m.name == "cod-lite-s-0.5")
    golden = Path(__file__).parent / "data" / "golden" / f"cod-lite-s-0.5-{info.weights_sha256[:16]}"
    decoded = np.asarray(codec.decode(Path(f"{golden}.cod").read_bytes()))
    assert np.array_equal(decoded, np.asarray(Image.open(f"{golden}.png")))
    listed = invoke("models").output
    assert "cod-lite-s-0.5 (retired: decodes)" in listed and "cod-lite-s-0.125 (default)" in listed
    assert info.retired is not None and all(m.retired is None for m in cod_lite.available_models() if m.name != "cod-lite-s-0.5")


def test_bpp_flag_and_its_refusals(tmp_path):
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    result = invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--bpp", "0.03", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert cod_lite.inspect((tmp_path / "p.cod").read_bytes()).model == "cod-lite-s-0.03"
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "q.cod", "--bpp", "0.1", "--model", "default"), "give one of --model, --bpp and --quality")
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "q.cod", "--bpp", "-1"), "positive")
    assert not (tmp_path / "q.cod").exists()


# -- what cwebp/avifenc/zstd users expect (issue 48) ----------------------------------------------


def test_a_missing_output_is_named(tmp_path):
    result = invoke("compress", tmp_path / "photo.png")
    assert result.exit_code == 2 and "missing OUTPUT after" in result.output and "Missing argument 'INPUT" not in result.output
    assert "missing INPUT and OUTPUT" in invoke("decompress").output


def _on_a_terminal(args: list[str], cwd) -> subprocess.CompletedProcess:
    """Run codlite with stdout on a pseudo-terminal (what a user's shell gives it)."""
    import pty

    exe = shutil.which("codlite") or pytest.fail("codlite is not installed: run the README's install command")
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([exe, *args], stdout=secondary, stderr=subprocess.PIPE, cwd=cwd, timeout=120)
    finally:
        os.close(secondary)
        os.close(primary)
    return done


def test_binary_data_is_not_written_to_a_terminal(tmp_path, parity_weights):
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    done = _on_a_terminal(["compress", "p.png", "-", "--model", str(parity_weights)], tmp_path)
    assert done.returncode == 1 and b"refusing to write a .cod stream to a terminal" in done.stderr
    stream = cod_lite.encode(tmp_path / "p.png", parity_weights)
    (tmp_path / "p.cod").write_bytes(stream)
    done = _on_a_terminal(["decompress", "p.cod", "-", "--model", str(parity_weights)], tmp_path)
    assert done.returncode == 1 and b"refusing to write image data to a terminal" in done.stderr


def test_warnings_are_one_line_and_progress_needs_a_terminal(tmp_path, parity_weights):
    rgba = np.dstack([photo(32, 32), np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    result = invoke("compress", tmp_path / "a.png", tmp_path / "a.cod", "--model", parity_weights)
    assert result.exit_code == 0
    warning = [line for line in result.stderr.splitlines() if "alpha" in line]
    assert len(warning) == 1 and warning[0].startswith("codlite: warning:") and "UserWarning" not in result.stderr and ".py" not in result.stderr
    for i in range(3):
        Image.fromarray(photo(32, 32, seed=i)).save(tmp_path / f"p{i}.png")
    several = invoke("compress", *(tmp_path / f"p{i}.png" for i in range(3)), tmp_path / "out", "--model", parity_weights)
    folder = invoke("convert", tmp_path, tmp_path.parent / f"{tmp_path.name}-out", "--model", parity_weights)
    for run in (several, folder):  # stderr is no terminal here: no bars
        assert run.exit_code == 0 and "it/s" not in run.stderr and "%|" not in run.stderr


def test_an_offline_official_model_is_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    start = time.perf_counter()
    result = invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--model", "official:0.0312")
    assert time.perf_counter() - start < 5
    assert_one_line_error(result, "cannot be reached")


def test_models_marks_the_default_and_its_measured_rates():
    result = invoke("models")
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("cod-lite")}
    assert "(default)" in lines["cod-lite-s-0.125"] and sum("(default)" in line for line in lines.values()) == 1
    for name, info in ((m.name, m) for m in cod_lite.available_models() if m.origin == "bundled"):
        rates = cod_lite.zoo.measured_rates(info)
        assert rates is not None and rates["images"] == 24 and rates["min"] <= rates["mean"] <= rates["max"]
        assert f"Kodak {rates['min']:.4f}-{rates['max']:.4f} bpp" in lines[name]


def test_info_takes_several_files_and_speaks_json(tmp_path, parity_weights):
    for i in range(2):
        (tmp_path / f"s{i}.cod").write_bytes(cod_lite.encode(photo(32, 48, seed=i), parity_weights))
    (tmp_path / "bad.cod").write_bytes(b"nope")
    result = invoke("info", tmp_path / "s0.cod", tmp_path / "s1.cod", "--json")
    records = json.loads(result.output)
    assert result.exit_code == 0 and [r["file"] for r in records] == [str(tmp_path / "s0.cod"), str(tmp_path / "s1.cod")]
    assert records[0]["width"] == 48 and records[0]["bpp"] == pytest.approx(8 * records[0]["bytes"] / (32 * 48), abs=1e-5)
    mixed = invoke("info", tmp_path / "s0.cod", tmp_path / "bad.cod", tmp_path / "s1.cod")
    assert mixed.exit_code == 1 and mixed.stdout.count("model:") == 2 and "failed:" in mixed.stderr


def test_lossy_outputs_and_force_wording(tmp_path, parity_weights):
    (tmp_path / "s.cod").write_bytes(cod_lite.encode(photo(64, 96), parity_weights))
    sizes = {}
    for quality in ("20", "95"):
        out = tmp_path / f"q{quality}.jpg"
        assert invoke("decompress", tmp_path / "s.cod", out, "--quality", quality, "--model", parity_weights).exit_code == 0
        sizes[quality] = out.stat().st_size
    assert sizes["20"] < sizes["95"]
    avif = invoke("decompress", tmp_path / "s.cod", tmp_path / "s.avif", "--model", parity_weights)
    assert avif.exit_code == 0 and Image.open(tmp_path / "s.avif").format == "AVIF"
    assert_one_line_error(invoke("decompress", tmp_path / "s.cod", tmp_path / "s.png", "--quality", "50", "--model", parity_weights),
                          "quality applies to lossy outputs")
    assert_one_line_error(invoke("decompress", tmp_path / "s.cod", tmp_path / "s.avif", "--model", parity_weights), "replace it with --force")


def test_convert_takes_the_shared_options(tmp_path, parity_weights):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(photo(32, 48)).save(src / "a.png", icc_profile=b"icc!" * 16)
    result = invoke("convert", src, tmp_path / "s", "--bpp", "0.03", "--no-colour", "--metadata", "icc", "--threads", "1", "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    about = cod_lite.inspect(tmp_path / "s" / "a.cod")
    assert about.model == "cod-lite-s-0.03" and about.colour_bytes == 0 and about.metadata == {"icc": 64}
    back = invoke("convert", tmp_path / "s", tmp_path / "b", "-d", "--format", "webp", "--quality", "40", "--device", "cpu")
    assert back.exit_code == 0 and Image.open(tmp_path / "b" / "a.webp").info.get("icc_profile") == b"icc!" * 16
