"""The fast paths against eager fp32 on tiny random models: `compile=True`, and the precision
policy (`precision=`, `cod_lite.kernels.fast`).

Compiling takes a while on a CPU (about 30 s here with a warm inductor cache, minutes cold), so
one small image serves every check.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite.codec import Codec
from cod_lite.errors import InputError
from cod_lite.kernels import fast
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet, to_uint8
from cod_lite_cli.main import cli

SAMPLE = Path(__file__).parents[1] / "examples" / "sample.png"


@pytest.fixture(scope="module")
def codecs() -> tuple[Codec, Codec]:
    torch.manual_seed(0)
    config = ModelConfig(name="tiny", codebook_bits=6, hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32, codebook_dim=16)
    net = CodLiteNet(config)
    return Codec(net, "00" * 32, precision="fp32"), Codec(copy.deepcopy(net), "00" * 32, compile=True)


@pytest.mark.slow
def test_compiled_matches_eager(codecs):
    eager, fast = codecs
    image = np.asarray(Image.open(SAMPLE).convert("RGB"))[:64, :96]
    indices = fast.quantize(image)
    np.testing.assert_array_equal(indices, eager.quantize(image))
    diff = np.abs(fast.reconstruct(indices, 64, 96).astype(int) - eager.reconstruct(indices, 64, 96))
    assert diff.max() <= 1
    assert fast.inference.compiled and not eager.inference.compiled
    # a second image of the same size reuses the compiled graphs: same answers again
    flipped = np.ascontiguousarray(image[::-1])
    np.testing.assert_array_equal(fast.quantize(flipped), eager.quantize(flipped))


# -- precision policy (cod_lite.kernels.fast) ----------------------------------------------------

BF16 = torch.bfloat16


@pytest.fixture(scope="module")
def tiny_net() -> CodLiteNet:
    """A tiny random model with a pixel-head block and a seam refiner (every part of the fast path)."""
    torch.manual_seed(1)
    config = ModelConfig(
        name="tiny", codebook_bits=6, hidden_size=32, hidden_size_x=8, num_blocks=3, num_cond_blocks=1,
        encoder_channels=32, codebook_dim=16, refine_channels=8,
    )
    net = CodLiteNet(config).eval()
    with torch.no_grad():
        net.refine.conv2.weight.normal_(0, 0.05)  # zero-initialised: give the refiner something to do
    return net


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[:64, :96]


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: native)
    # without native bf16, auto is the exact encoder and the fp32 fast decoder, never emulated (slow) bf16
    expected = tuple(BF16 if p in fast.AUTO_BF16_PHASES else torch.float32 for p in ("encode", "decode")) if native else (None, torch.float32)
    assert fast.phase_dtypes("auto", torch.device("cpu")) == expected
    assert fast.phase_dtypes("fp32", torch.device("cpu")) == (None, None)
    assert fast.phase_dtypes("bf16", torch.device("cpu")) == (BF16, BF16)  # asked for: even where emulated


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_is_bf16_where_the_gpu_has_it(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: not supported)  # the CPU must not matter
    dtypes = fast.phase_dtypes("auto", torch.device("cuda"))
    assert dtypes == (tuple(BF16 if p in fast.AUTO_BF16_PHASES else torch.float32 for p in ("encode", "decode")) if supported else (None, torch.float32))


def test_cpu_detection_reads_the_flags():
    fast.cpu_has_native_bf16.cache_clear()
    try:
        assert fast.cpu_has_native_bf16() == (
            bool({"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split())) and torch.backends.mkldnn.is_available()
        )
    finally:
        fast.cpu_has_native_bf16.cache_clear()


def test_unknown_precision_is_one_error(tiny_net):
    with pytest.raises(InputError, match="unknown precision 'half'; use one of auto, fp32, bf16"):
        cod_lite.load_model("default", precision="half")
    with pytest.raises(InputError, match="unknown precision"):
        Codec(tiny_net, "00" * 32, precision="fp16")
    with pytest.raises(InputError, match="compile=True runs the fp32 network"):
        Codec(tiny_net, "00" * 32, compile=True, precision="bf16")


def test_exact_mode_is_the_fp32_network_bit_for_bit(tiny_net, image):
    codec = Codec(tiny_net, "00" * 32, precision="fp32")
    assert codec.precision == "fp32" and codec.inference.encode_dtype is None and codec.inference.decode_dtype is None
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        indices = tiny_net.quantize(x)
        pixels = to_uint8(tiny_net.reconstruct(indices))[0].numpy()
    np.testing.assert_array_equal(codec.quantize(image), indices[0].numpy())
    np.testing.assert_array_equal(codec.reconstruct(indices[0].numpy(), 64, 96), pixels)


def test_fused_head_in_fp32_equals_the_network_head(tiny_net):
    """The restructured pixel head is the same function: only summation order differs."""
    torch.manual_seed(2)
    cond = torch.randn(2, 32, 4, 6)
    with torch.inference_mode():
        trunk = tiny_net.trunk(cond.new_zeros(2, 3, 64, 96), None, cond)
        expected = tiny_net.head(cond.new_zeros(2, 3, 64, 96), cond, trunk)
        got = fast._FusedHead(tiny_net, torch.float32)(cond, trunk)
        np.testing.assert_allclose(tiny_net.trunk_at_zero(cond).numpy(), trunk.numpy(), atol=1e-5)
    assert expected.abs().max() > 0.1  # a head that does something
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def test_region_means_are_the_decoded_pixels_they_sample(tiny_net, image):
    """The colour fit's cheap decode: the head at REGION_SAMPLE's pixels only, which are exactly the
    full decode's there (no refiner), averaged per patch; networks with a refiner decode whole."""
    net = copy.deepcopy(tiny_net)
    net.refine, net.config = None, ModelConfig(**{**tiny_net.config.to_dict(), "refine_channels": 0})
    codec = Codec(net, "00" * 32, precision="auto")
    assert codec.inference.region_means is not None
    assert Codec(tiny_net, "00" * 32).inference.region_means is None  # the refiner moves region colours
    assert Codec(net, "00" * 32, precision="fp32").inference.region_means is None
    indices = codec.quantize(image)
    full = codec.reconstruct(indices, 64, 96)
    with torch.inference_mode():
        means = codec.inference.region_means(torch.from_numpy(indices)[None])[0].numpy()
    sampled = full.reshape(4, 16, 6, 16, 3).transpose(0, 2, 1, 3, 4).reshape(4, 6, 256, 3)[:, :, fast.REGION_SAMPLE.numpy()]
    np.testing.assert_allclose(means, sampled.mean(2), atol=1 / 64)  # +-1 level on a pixel (summation order)
    assert len(set(fast.REGION_SAMPLE.tolist())) == 64
    assert {(p // 16 // 2, p % 16 // 2) for p in fast.REGION_SAMPLE.tolist()} == {(r, c) for r in range(8) for c in range(8)}  # one per 2x2 cell
    # what encode fits on: within a few levels of the whole decode's region means, and its stream decodes
    assert np.abs(codec._decoded_regions(indices, 64, 96) - full.reshape(4, 16, 6, 16, 3).mean((1, 3))).mean() < 8
    assert np.asarray(codec.decode(codec.encode(image))).shape == image.shape


@pytest.mark.parametrize("grid", [(5, 7), (40, 70)])  # one global window; padded 32x32 windows
def test_fast_blocks_in_fp32_equal_the_network_blocks(grid):
    from cod_lite.models.condition_codec import AttnBlock, ResnetBlock

    torch.manual_seed(3)
    blocks = torch.nn.Sequential(ResnetBlock(32, 64), AttnBlock(64), ResnetBlock(64)).eval()
    twin = fast._with_fast_blocks(blocks)
    assert isinstance(twin[1], fast._FastAttention) and twin[1].norm is blocks[1].norm  # shares the weights
    assert isinstance(twin[0], fast._FastResnetBlock) and twin[2].block is blocks[2]
    assert isinstance(blocks[1], AttnBlock)  # the network itself is untouched
    x = torch.randn(2, 32, *grid)
    with torch.inference_mode():
        expected, got = blocks(x), twin(x)
    assert got.is_contiguous() and expected.abs().max() > 0.1
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert (twin(x).float() - expected).abs().max() < 0.05  # its bf16 form: the guarantee judges it


def test_auto_without_native_bf16_is_the_fp32_fast_path(monkeypatch, tiny_net, image):
    """What a CPU without avx512_bf16/AMX gets by default: the restructured head in fp32, whose
    images equal the exact network's up to summation order."""
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: False)
    codec = Codec(tiny_net, "00" * 32)
    exact = Codec(tiny_net, "00" * 32, precision="fp32")
    assert codec.precision == "encode fp32, decode fp32 fast" and codec.inference.decode_dtype == torch.float32
    assert not isinstance(codec._reconstruct.__self__, CodLiteNet)  # the fused head runs, not net.reconstruct
    indices = exact.quantize(image)
    np.testing.assert_array_equal(codec.quantize(image), indices)  # the exact encoder: identical streams
    diff = np.abs(codec.reconstruct(indices, 64, 96).astype(int) - exact.reconstruct(indices, 64, 96))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_bf16_stays_close_to_fp32(tiny_net, image):
    exact = Codec(tiny_net, "00" * 32, precision="fp32")
    half = Codec(tiny_net, "00" * 32, precision="bf16")
    assert half.precision == "bf16"
    indices = exact.quantize(image)
    # the VQ choice is fp32 on the bf16 encoder's output: most cells keep their codeword
    assert (half.quantize(image) == indices).mean() >= 0.9
    diff = np.abs(half.reconstruct(indices, 64, 96).astype(int) - exact.reconstruct(indices, 64, 96))
    assert diff.mean() <= 1.0 and diff.max() <= 8  # measured: mean 0.30, max 2 (indices agree 95.8 %)
    # the exact path is unchanged by the bf16 one having run on the same network
    np.testing.assert_array_equal(exact.reconstruct(indices, 64, 96), Codec(tiny_net, "00" * 32, precision="fp32").reconstruct(indices, 64, 96))


def test_streams_do_not_depend_on_precision(tiny_net, image):
    exact = Codec(tiny_net, "00" * 32, precision="fp32")
    half = Codec(tiny_net, "00" * 32, precision="bf16")
    for encoder, decoder in ((exact, half), (half, exact)):
        stream = encoder.encode(image, colour=False)  # the pixels are the network's alone
        indices, height, width = decoder.decode_indices(stream)
        np.testing.assert_array_equal(indices, encoder.quantize(image))
        decoded = np.asarray(decoder.decode(stream))
        assert decoded.shape == image.shape
        np.testing.assert_array_equal(decoded, decoder.reconstruct(indices, height, width))


def test_cli_precision_flag(tmp_path):
    runner = CliRunner()
    stream, out = tmp_path / "s.cod", tmp_path / "s.png"
    result = runner.invoke(cli, ["compress", str(SAMPLE), str(stream), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert stream.read_bytes() == cod_lite.load_model("default", precision="fp32").encode(SAMPLE)
    result = runner.invoke(cli, ["decompress", str(stream), str(out), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    expected = cod_lite.load_model("default", precision="bf16").decode(stream.read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    result = runner.invoke(cli, ["compress", str(SAMPLE), str(tmp_path / "x.cod"), "--precision", "half"])
    assert result.exit_code == 2 and "'half' is not one of" in result.output
    assert not (tmp_path / "x.cod").exists()
