"""The network's structure for every official configuration, and properties parity_A cannot show."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cod_lite
from cod_lite.models.config import OFFICIAL_RATES, ModelConfig, official_config
from cod_lite.models.network import CodLiteNet, dct_features
from cod_lite.official import check_state

KEYS = Path(__file__).parent / "data" / "official_keys"


def official_keys(label: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released checkpoint (lists read from the authors' files, `net.` removed)."""
    path = KEYS / f"keys_bpp_{label.replace('.', '_')}.txt.gz"
    out = {}
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        key, shape = line.split("\t")
        out[key.removeprefix("net.")] = tuple(int(s) for s in shape.strip("[]").split(",") if s.strip())
    return out


@pytest.mark.parametrize("label", sorted(OFFICIAL_RATES))
def test_official_configs_have_exactly_the_released_keys(label):
    with torch.device("meta"):
        net = CodLiteNet(official_config(label))
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == official_keys(label)
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in official_keys(label).items()}
    check_state(net, state)  # what import_official runs: no complaint


@pytest.mark.parametrize("ds", [4, 8, 16, 32])
@pytest.mark.parametrize("bits", [4, 8])
def test_every_ds_and_bits_round_trips_shapes(ds, bits):
    config = ModelConfig(ds=ds, codebook_bits=bits, hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32)
    net = CodLiteNet(config).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        idx = net.quantize(x)
        assert idx.shape == (2, 64 // ds, 96 // ds) and idx.max() < 2**bits
        cond = net.y_embedder.decode(idx)
        assert cond.shape == (2, 32, 4, 6)  # the condition is always at 1/16
        out = net.reconstruct(idx)
    assert out.shape == (2, 3, 64, 96) and torch.isfinite(out).all()


def test_windowed_attention_differs_from_global_on_wide_grids():
    """Above 32 cells the encoder attends in 32x32 windows: its output is not that of global attention."""
    from cod_lite.models import condition_codec

    torch.manual_seed(0)
    block = condition_codec.AttnBlock(32).eval()
    x = torch.randn(1, 32, 4, 40)
    windowed = block(x)
    limit = condition_codec.WINDOW
    try:
        condition_codec.WINDOW = 64  # make the whole grid one window: global attention
        global_ = block(x)
    finally:
        condition_codec.WINDOW = limit
    assert not torch.allclose(windowed, global_, atol=1e-4)
    small = torch.randn(1, 32, 8, 8)
    assert torch.equal(block(small), block(small))


def test_dct_features_follow_the_official_definition():
    f = dct_features(16)
    assert f.shape == (256, 64)
    assert torch.allclose(f[:, 0], torch.ones(256))  # fx = fy = 0
    # pixel (row 0, col 15): x = 1; feature fx=1 (8/7 cycles), fy=0 -> cos(pi * 8/7)
    assert f[15, 8].item() == pytest.approx(float(torch.cos(torch.tensor(torch.pi * 8 / 7))), abs=1e-6)


def test_train_mode_has_gradients_and_eval_caches():
    net = CodLiteNet(ModelConfig(hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32))
    idx = torch.randint(0, 256, (1, 2, 2))
    net.train()
    net.reconstruct(idx).square().mean().backward()
    assert net.blocks[0].adaLN_modulation[1].weight.grad is not None
    assert net.t0_modulation is None
    net.eval()
    with torch.inference_mode():
        net.reconstruct(idx)
    assert net.t0_modulation is not None
    net.train()
    assert net.t0_modulation is None  # stale once weights may change


def test_library_does_not_import_click():
    code = "import sys, cod_lite; cod_lite.encode; assert 'click' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_names_must_fit_in_a_stream_header():
    from cod_lite.official import config_from_official

    with pytest.raises(ValueError, match="1..255 UTF-8 bytes"):
        ModelConfig(name="é" * 128)  # 256 bytes
    with pytest.raises(cod_lite.CheckpointError, match="model name"):
        config_from_official({}, name="")


def test_the_seam_refiner_starts_as_the_identity_and_sees_across_patch_borders():
    config = ModelConfig(hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32)
    torch.manual_seed(0)
    plain = CodLiteNet(config).eval()
    refined = CodLiteNet(ModelConfig(**{**config.to_dict(), "refine_channels": 8})).eval()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("refine.") for k in missing) and missing and not unexpected
    idx = torch.randint(0, 256, (1, 4, 6))
    with torch.inference_mode():
        torch.testing.assert_close(refined.reconstruct(idx), plain.reconstruct(idx), rtol=0, atol=0)
        torch.nn.init.normal_(refined.refine.conv2.weight, std=0.1)
        image = torch.zeros(1, 3, 32, 48)
        image[..., 16:, :] = 1  # a step on the patch border at row 16
        delta = (refined.refine(image) - image).abs().amax(dim=(0, 1, 3))
    assert delta[10:22].min() > 0  # rows within 5 px of the border change
    assert refined.refine.RADIUS == 5


def test_configs_without_a_refiner_keep_their_old_form():
    assert "refine_channels" not in ModelConfig().to_dict()
    config = ModelConfig(refine_channels=16)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict(ModelConfig().to_dict()).refine_channels == 0
    with pytest.raises(ValueError, match="refine_channels"):
        ModelConfig(refine_channels=-1)


def test_group_norm_is_exact_for_channels_last_inputs():
    """torch's CPU channels_last GroupNorm drifts with the image size; ours normalises in NCHW."""
    from cod_lite.models.condition_codec import group_norm

    torch.manual_seed(0)
    norm = group_norm(32)
    x = torch.randn(1, 32, 512, 768) * 0.5 + 3.0  # a large mean, as real activations have
    with torch.no_grad():
        expected = norm(x)
        got = norm(x.contiguous(memory_format=torch.channels_last))
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
