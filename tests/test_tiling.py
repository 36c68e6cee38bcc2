"""Tiled inference: tile layout, when tiling switches on, how close tiles stay, --max-memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cod_lite import InputError, tiling
from cod_lite.codec import Codec
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet, to_uint8
from cod_lite_cli.main import cli

from .conftest import PARITY
from .test_cli import assert_one_line_error

SAMPLE = Path(__file__).parents[1] / "examples" / "sample.png"  # 384x256 photo


def tiny_codec(ds: int, budget: int | str = tiling.DEFAULT_MAX_MEMORY, **overrides) -> Codec:
    torch.manual_seed(0)
    settings = dict(ds=ds, codebook_bits=6, hidden_size=32, hidden_size_x=8, num_blocks=3, num_cond_blocks=2, encoder_channels=32, codebook_dim=16)
    net = CodLiteNet(ModelConfig(name="tiny", **{**settings, **overrides}))
    return Codec(net, "00" * 32, max_memory=budget, precision="fp32")  # tiled passes run fp32


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


@pytest.fixture
def spy(monkeypatch):
    """Which tiled passes ran."""
    calls = []
    for name in ("quantize_tiled", "reconstruct_tiled"):
        real = getattr(tiling, name)
        monkeypatch.setattr(tiling, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    return calls


@pytest.mark.parametrize("length,unit,count,margin", [(384, 128, 3, 128), (400, 128, 2, 128), (96, 16, 5, 0), (16, 16, 1, 32)])
def test_spans_tile_the_axis(length, unit, count, margin):
    spans = tiling.spans(length, unit, count, margin)
    assert len(spans) == count
    assert spans[0][2] == 0 and spans[-1][3] == length
    for (start, stop, core_start, core_stop), following in zip(spans, spans[1:] + [None]):
        assert core_start % unit == 0 and core_start < core_stop
        assert start == max(0, core_start - margin) and stop == min(length, core_stop + margin)
        assert start % unit == 0  # tiles start on window boundaries too
        if following:
            assert following[2] == core_stop


def test_layout_takes_the_largest_tiles_that_fit():
    tiles = tiling.layout(1024, 1536, 128, 128, lambda h, w: h * w <= 512 * 512)
    assert max((r[1] - r[0]) * (c[1] - c[0]) for r, c in tiles) <= 512 * 512
    assert len(tiles) == 4 * 6  # two-unit cores plus one-unit margins: 512x512 at most
    assert len(tiling.layout(1024, 1536, 128, 128, lambda h, w: True)) == 1
    assert tiling.layout(64, 64, 16, 0, lambda h, w: False) == tiling.layout(64, 64, 16, 0, lambda h, w: h * w <= 256)


def test_below_the_budget_nothing_changes(photo, spy):
    codec = tiny_codec(4)
    height, width = photo.shape[:2]
    indices = codec.quantize(photo)
    out = codec.reconstruct(indices, height, width)
    with torch.inference_mode():
        x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
        expected = codec.net.quantize(x)[0].numpy()
        expected_out = to_uint8(codec.net.reconstruct(torch.from_numpy(indices)[None]))[0].numpy()
    assert spy == []
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(out, expected_out)


def test_tiled_encoding_stays_close(photo, spy):
    """ds 4: 128 px windows, so a 2 MB budget gives 3x2 cores of one window, each with a one-window margin.
    Measured on this random model: 95.2% of the indices agree; decoding them differs by mean 0.8, max 58."""
    height, width = photo.shape[:2]
    untiled = tiny_codec(4)
    tiled = tiny_codec(4, "2M")
    indices = tiled.quantize(photo)
    reference = untiled.quantize(photo)
    assert spy == ["quantize_tiled"]
    assert (indices == reference).mean() > 0.93
    diff = np.abs(tiled.reconstruct(indices, height, width).astype(int) - untiled.reconstruct(reference, height, width))
    assert diff.mean() < 1.5


def test_tiled_condition_decoding_stays_close(photo, spy):
    """Condition decoder in window tiles (ds 4 at 2 MB); measured on this random model: mean 0.17, max 19."""
    height, width = photo.shape[:2]
    indices = tiny_codec(4).quantize(photo)
    diff = np.abs(tiny_codec(4, "2M").reconstruct(indices, height, width).astype(int) - tiny_codec(4).reconstruct(indices, height, width))
    assert spy == ["reconstruct_tiled"]
    assert diff.mean() < 0.4 and diff.max() <= 40


@pytest.mark.parametrize("cond_blocks", [2, 0])
def test_pixel_tiles_are_exact(photo, spy, cond_blocks):
    """At ds 16 the condition fits and only the pixel head is tiled: the trunk runs untiled once,
    so tiles reproduce the untiled decoding exactly."""
    height, width = photo.shape[:2]
    untiled = tiny_codec(16, num_cond_blocks=cond_blocks)
    indices = untiled.quantize(photo)
    budget = tiling.reconstruct_bytes(untiled.model_config, height, width) // 3
    tiled = tiny_codec(16, budget, num_cond_blocks=cond_blocks)
    np.testing.assert_array_equal(tiled.reconstruct(indices, height, width), untiled.reconstruct(indices, height, width))
    assert spy == ["reconstruct_tiled"]
    assert not any(block._forward_hooks for block in tiled.net.blocks)  # hooks removed


def test_pixel_tiles_are_exact_with_the_seam_refiner(photo, spy):
    """The refiner looks 5 px across patch borders; tiles grow by a patch, so they match the untiled
    pass up to float rounding (its convs sum in another order on another size: measured 9 of
    98,304 pixels off by one level)."""
    height, width = photo.shape[:2]
    untiled = tiny_codec(16, refine_channels=8)
    torch.nn.init.normal_(untiled.net.refine.conv2.weight, std=0.1)  # a trained-looking, non-zero refiner
    indices = untiled.quantize(photo)
    budget = tiling.reconstruct_bytes(untiled.model_config, height, width) // 3
    tiled = Codec(untiled.net, "00" * 32, max_memory=budget, precision="fp32")
    expected = untiled.reconstruct(indices, height, width)
    diff = np.abs(tiled.reconstruct(indices, height, width).astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert spy == ["reconstruct_tiled"]
    untiled.net.refine = None
    assert np.abs(untiled.reconstruct(indices, height, width).astype(int) - expected).max() > 5  # the refiner did act


@pytest.mark.parametrize("text,size", [("4G", 4 << 30), ("512m", 512 << 20), ("1.5GiB", 3 << 29), ("2 MB", 2 << 20), ("1000", 1000), (7, 7)])
def test_parse_memory(text, size):
    assert tiling.parse_memory(text) == size


@pytest.mark.parametrize("bad", ["", "0", "-1G", "lots", "4X", "1e9", True])
def test_parse_memory_refuses(bad):
    with pytest.raises(InputError, match="max memory"):
        tiling.parse_memory(bad)


def test_cli_max_memory(tmp_path, parity_weights):
    runner = CliRunner()
    stream, back = tmp_path / "a.cod", tmp_path / "a.png"
    result = runner.invoke(cli, ["compress", str(PARITY / "image.png"), str(stream), "-m", str(parity_weights), "--max-memory", "64M"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["decompress", str(stream), str(back), "-m", str(parity_weights), "--max-memory", "64M"])
    assert result.exit_code == 0, result.output
    assert Image.open(back).size == (128, 192)


@pytest.mark.parametrize("command", ["compress", "decompress", "convert"])
def test_cli_bad_max_memory_is_one_line(tmp_path, parity_weights, command):
    src = PARITY / "image.png" if command != "convert" else PARITY
    result = CliRunner().invoke(cli, [command, str(src), str(tmp_path / "out"), "-m", str(parity_weights), "--max-memory", "lots"])
    assert_one_line_error(result, "max memory", "'lots'")
