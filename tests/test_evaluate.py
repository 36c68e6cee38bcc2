"""`cod_lite.evaluate` / `codlite evaluate`: pairing, known metric values, bpp, outputs, failures."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite import metrics
from cod_lite_cli.main import cli

from .test_blockiness import patternless


@pytest.fixture
def perceptual_home(isolated_home, weights_dir):
    (isolated_home / "perceptual").symlink_to(weights_dir, target_is_directory=True)


def _photo(seed: int, size: int = 176) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 3, yy * 3, (xx + yy) * 2], -1) + rng.normal(0, 10, (size, size, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    """ref/a.png, ref/sub/b.png; dec/a.png identical, dec/sub/b.webp off by exactly 1 everywhere,
    and a 128-byte stream dec/sub/b.cod for the rate."""
    ref, dec = tmp_path / "ref", tmp_path / "dec"
    (ref / "sub").mkdir(parents=True)
    (dec / "sub").mkdir(parents=True)
    a, b = _photo(0), _photo(1)
    b[b == 255] = 254
    Image.fromarray(a).save(ref / "a.png")
    Image.fromarray(b).save(ref / "sub" / "b.png")
    Image.fromarray(a).save(dec / "a.png")
    Image.fromarray(b + 1).save(dec / "sub" / "b.webp", lossless=True)
    (dec / "sub" / "b.cod").write_bytes(bytes(128))
    return ref, dec


def test_known_values_on_known_pairs(folders, perceptual_home):
    ref, dec = folders
    result = cod_lite.evaluate(ref, dec, progress=False)
    rows = {row["image"]: row for row in result.rows}
    assert set(rows) == {"a.png", "sub/b.png"} and not result.failed
    same, off_by_one = rows["a.png"], rows["sub/b.png"]
    assert same["psnr"] == math.inf
    assert same["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert same["lpips_alex"] == pytest.approx(0.0, abs=1e-6) and same["dists"] == pytest.approx(0.0, abs=1e-6)
    assert off_by_one["psnr"] == pytest.approx(10 * math.log10(255**2), abs=1e-9)  # MSE exactly 1
    assert 0 < off_by_one["lpips_vgg"] < 0.05
    assert same["bpp"] is None and off_by_one["bytes"] == 128
    assert off_by_one["bpp"] == pytest.approx(8 * 128 / 176**2)
    assert result.means["bpp"] == pytest.approx(8 * 128 / 176**2)
    # adding 1 everywhere changes no step: the decoded image's blockiness is its original's
    assert off_by_one["blockiness"] == pytest.approx(off_by_one["blockiness_ref"], rel=1e-12)
    assert off_by_one["blockiness_ref"] == metrics.blockiness(np.asarray(Image.open(ref / "sub" / "b.png")))


def test_cli_writes_table_csv_json_and_refuses_to_overwrite(folders, perceptual_home, tmp_path):
    ref, dec = folders
    prefix = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--out", str(prefix)])
    assert result.exit_code == 0, result.output
    assert "sub/b.png" in result.stdout and "mean" in result.stdout
    table = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert [r["image"] for r in table] == ["a.png", "sub/b.png", "mean"]
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["images"][0]["psnr"] is None  # infinite PSNR stays valid JSON
    assert doc["mean"]["bpp"] == pytest.approx(8 * 128 / 176**2)

    before = (tmp_path / "report.csv").read_bytes()
    again = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--out", str(prefix)])
    assert again.exit_code != 0 and "already exists" in again.stderr
    assert (tmp_path / "report.csv").read_bytes() == before


def test_missing_or_mismatched_decoded_images_are_reported_and_fail_the_run(folders, perceptual_home, tmp_path):
    ref, dec = folders
    (dec / "sub" / "b.webp").unlink()
    Image.fromarray(_photo(2, 32)).save(dec / "a.png")
    result = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "a.png: decoded size 32x32 differs" in result.stderr
    assert math.isnan(metrics.ms_ssim(_photo(3, 160), _photo(4, 160)))
    assert "no decoded image for 'sub/b.png'" in result.stderr
    assert "Traceback" not in result.output


def test_model_mode_round_trips_in_memory(folders, perceptual_home, parity_codec):
    ref, _ = folders
    result = cod_lite.evaluate(ref, model=parity_codec, progress=False)
    assert len(result.rows) == 2
    for row in result.rows:
        stream = parity_codec.encode(ref / row["image"])
        assert row["bytes"] == len(stream)
        decoded = np.asarray(parity_codec.decode(stream))
        assert row["psnr"] == pytest.approx(metrics.psnr(np.asarray(Image.open(ref / row["image"])), decoded))


def test_bad_arguments_are_one_line_errors(folders, tmp_path):
    ref, dec = folders
    runner = CliRunner()
    neither = runner.invoke(cli, ["evaluate", str(ref)])
    assert neither.exit_code != 0 and "give DEC_DIR, or --model" in neither.stderr
    missing = runner.invoke(cli, ["evaluate", str(tmp_path / "nope"), str(dec), "--out", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "is not a folder" in missing.stderr
    with pytest.raises(cod_lite.InputError, match="exactly one"):
        cod_lite.evaluate(ref, dec, model="default")


def test_tiny_images_give_nan_metrics_and_a_set_level_fid_failure(perceptual_home, tmp_path):
    # 20x20: below LPIPS-Alex's 31-pixel minimum, MS-SSIM's 161 and the 64-pixel FID patch
    ref, dec = tmp_path / "ref", tmp_path / "dec"
    ref.mkdir(), dec.mkdir()
    for i in range(2):
        Image.fromarray(_photo(i, 20)).save(ref / f"t{i}.png")
        Image.fromarray(_photo(i + 5, 20)).save(dec / f"t{i}.png")
    failures = []
    result = cod_lite.evaluate(ref, dec, fid=True, progress=False, on_failure=lambda *f: failures.append(f))
    assert len(result.rows) == 2 and all(math.isnan(r["lpips_alex"]) and math.isnan(r["ms_ssim"]) for r in result.rows)
    assert all(0 < r["lpips_vgg"] and 0 < r["dists"] for r in result.rows)
    assert [name for name, _ in result.failed] == ["FID/KID"] and failures == result.failed
    out = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--fid", "--out", str(tmp_path / "r")])
    assert out.exit_code == 1 and "FID/KID" in out.stderr and "Traceback" not in out.output
    assert (tmp_path / "r.csv").is_file()


def test_blockiness_of_decoded_and_original_in_rows_table_and_csv(perceptual_home, tmp_path):
    """A ramp decoded with a +0/+20 checkerboard over the 16x16 patches: blockiness 20 (docstring
    arithmetic in test_blockiness), its original exactly 1."""
    ref, dec = tmp_path / "ref", tmp_path / "dec"
    ref.mkdir(), dec.mkdir()
    yy, xx = np.mgrid[0:192, 0:192]
    ramp = (xx + yy) // 2 + 20  # steps of 0 or 1, in [20, 211]
    grid = ramp + 20 * ((yy // 16 + xx // 16) % 2)
    as_rgb = lambda y: np.repeat(y.astype(np.uint8)[..., None], 3, axis=2)  # noqa: E731
    Image.fromarray(as_rgb(ramp)).save(ref / "r.png")
    Image.fromarray(as_rgb(grid)).save(dec / "r.png")
    expected = metrics.blockiness(as_rgb(grid))
    assert expected > 10 and metrics.blockiness(as_rgb(ramp)) == pytest.approx(1.0, abs=0.05)

    row = cod_lite.evaluate(ref, dec, progress=False).rows[0]
    assert row["blockiness"] == expected and row["blockiness_ref"] == metrics.blockiness(as_rgb(ramp))
    out = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert "Block" in out.stdout and f"{expected:.3f}" in out.stdout
    table = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert float(table[0]["blockiness"]) == pytest.approx(expected) and float(table[-1]["blockiness_ref"]) == pytest.approx(row["blockiness_ref"])
    assert json.loads((tmp_path / "r.json").read_text())["mean"]["blockiness"] == pytest.approx(expected)


def test_pattern_of_decoded_and_original_in_rows_table_csv_and_json(perceptual_home, tmp_path):
    """Texture whose mean 16x16 cell is flat (pattern 0), decoded with a +-3 hatching stamped
    into every cell: pattern exactly 3 (test_blockiness)."""
    ref, dec = tmp_path / "ref", tmp_path / "dec"
    ref.mkdir(), dec.mkdir()
    yy, xx = np.mgrid[0:256, 0:256]
    as_rgb = lambda y: np.repeat(y.astype(np.uint8)[..., None], 3, axis=2)  # noqa: E731
    Image.fromarray(as_rgb(patternless())).save(ref / "t.png")
    Image.fromarray(as_rgb(patternless() + 3 * (-1) ** (yy + xx))).save(dec / "t.png")

    row = cod_lite.evaluate(ref, dec, progress=False).rows[0]
    assert row["pattern"] == pytest.approx(3.0, rel=1e-9) and row["pattern_ref"] == pytest.approx(0.0, abs=1e-9)
    out = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert "Pattern" in out.stdout and "3.00   0.00" in out.stdout
    table = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert float(table[0]["pattern"]) == pytest.approx(3.0) and float(table[-1]["pattern_ref"]) == pytest.approx(0.0, abs=1e-9)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["images"][0]["pattern_ref"] == pytest.approx(0.0, abs=1e-9) and doc["mean"]["pattern"] == pytest.approx(3.0)


def test_colour_error_of_a_cast_in_rows_table_and_json(perceptual_home, tmp_path):
    """A blue-shifted decode: its row, the table's dE column and the JSON carry metrics.colour_error."""
    ref, dec = tmp_path / "ref", tmp_path / "dec"
    ref.mkdir(), dec.mkdir()
    yy, xx = np.mgrid[0:64, 0:96]
    original = np.stack([xx * 2, yy * 3, 128 + 0 * xx], -1).astype(np.uint8)
    cast = original.copy()
    cast[..., 2] = 88
    Image.fromarray(original).save(ref / "t.png")
    Image.fromarray(cast).save(dec / "t.png")
    expected = metrics.colour_error(original, cast)
    assert expected > 10
    row = cod_lite.evaluate(ref, dec, progress=False).rows[0]
    assert row["colour"] == pytest.approx(expected, rel=1e-12)
    out = CliRunner().invoke(cli, ["evaluate", str(ref), str(dec), "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert "dE" in out.stdout and f"{expected:.2f}" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["mean"]["colour"] == pytest.approx(expected)
