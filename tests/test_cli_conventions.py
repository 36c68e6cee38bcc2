"""The command-line conventions of cwebp/avifenc/cjxl: - for stdin/stdout, several inputs,
--quiet, --threads, and --bpp picking a bundled model."""

from __future__ import annotations

import io

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


@pytest.mark.parametrize("target, expected", [(0.1, "cod-lite-s-0.125"), (0.06, "cod-lite-s-0.03"), (0.9, "cod-lite-s-0.5"), (0.005, "cod-lite-s-0.008")])
def test_bpp_picks_the_nearest_bundled_rate_on_a_log_scale(target, expected):
    assert cod_lite.model_for_bpp(target) == expected


@pytest.mark.parametrize("target", [5, 0.001, 1.5])
def test_a_rate_no_bundled_model_comes_near_is_refused_with_the_range(target, tmp_path):
    with pytest.raises(cod_lite.InputError, match=r"give a rate in 0.0039.*-1 \(the bundled models make 0.0078.*-0.5"):
        cod_lite.model_for_bpp(target)
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--bpp", target), "no bundled model codes near")
    with pytest.raises(cod_lite.InputError, match="no bundled model"):
        cod_lite.encode(tmp_path / "p.png", bpp=target)


def test_bpp_flag_and_its_refusals(tmp_path):
    Image.fromarray(photo(32, 32)).save(tmp_path / "p.png")
    result = invoke("compress", tmp_path / "p.png", tmp_path / "p.cod", "--bpp", "0.5", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert cod_lite.inspect((tmp_path / "p.cod").read_bytes()).model == "cod-lite-s-0.5"
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "q.cod", "--bpp", "0.5", "--model", "default"), "not both")
    assert_one_line_error(invoke("compress", tmp_path / "p.png", tmp_path / "q.cod", "--bpp", "-1"), "positive")
    assert not (tmp_path / "q.cod").exists()
