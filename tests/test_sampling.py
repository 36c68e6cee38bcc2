"""Multi-step decoding: the sampler's schedule, seeds, the one-step refusal, and a tiny model
trained with the rectified-flow pretrain stage decoded end to end (API and CLI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite.errors import CheckpointError, InputError
from cod_lite.models.config import ModelConfig
from cod_lite.models.sampling import Sampling, make_noise, sample, time_grid
from cod_lite.train.export import export
from cod_lite.train.loop import TrainSettings, train
from cod_lite.weights import load_weights, read_metadata, save_weights
from cod_lite_cli.main import cli

from .conftest import PARITY, write_photos

TINY = ModelConfig(name="tiny-rf", ds=16, codebook_bits=4, hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"), 3, 64)


@pytest.fixture(scope="module")
def pretrain_model(photos, tmp_path_factory):
    """A tiny model after 3 steps of the pretrain stage: random-ish, but a real rectified-flow file."""
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    settings = TrainSettings(stage="pretrain", data=str(photos), out=str(out), steps=3, batch_size=2, crop=32, warmup=1, log_every=1, save_every=1000)
    return train(settings, TINY)


@pytest.fixture(scope="module")
def codec(pretrain_model):
    return cod_lite.load_model(pretrain_model, precision="fp32")  # the exact network: comparable to net.reconstruct


@pytest.fixture(scope="module")
def stream(codec):
    return codec.encode(PARITY / "image.png", colour=False)  # 128x192; pixels the network's alone


# -- the sampler itself ------------------------------------------------------------------------
def test_time_grid_is_the_references_euler_grid():
    assert time_grid(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert time_grid(1, 0.04).tolist() == [0.0, 1.0]  # one step: last_step = 1
    grid = time_grid(25, 0.04)  # the paper's 25 steps with the authors' last_step: uniform
    assert torch.allclose(grid, torch.arange(26) / 25)
    grid = time_grid(100, 0.04)
    assert len(grid) == 101 and abs(float(grid[-2]) - 0.96) < 1e-6 and grid[-1] == 1


@pytest.mark.parametrize("steps, factor", [(4, 0.0), (25, (1 / 25) * (1 - 20 / 25))])
def test_euler_steps_and_the_velocity_clamp_in_closed_form(steps, factor):
    """With a network that always predicts c, x_N - c = factor (eps - c): the product of the
    steps' (1 - dt / max(1 - t, 0.05)); the clamp only bites when 1 - t < 0.05 (25 steps)."""
    c = torch.full((1, 3, 16, 16), 0.3)
    eps = make_noise(5, 16, 16)
    out = sample(lambda x, t, cond: c, None, eps, steps, Sampling(t0_input="noise"))
    assert torch.allclose(out - c, factor * (eps - c), atol=1e-6)


def test_t0_zeros_feeds_zeros_and_no_time_first():
    seen = []

    def denoise(x, t, cond):
        seen.append((float(x.abs().max()), None if t is None else float(t[0])))
        return torch.zeros_like(x)

    sample(denoise, None, make_noise(1, 16, 16), 3, Sampling())
    assert seen[0] == (0.0, None)  # the one-step codec's input: x_t = 0 on the cached t = 0 path
    assert seen[1][0] > 0 and seen[1][1] == pytest.approx(1 / 3)


def test_noise_rule_and_seed_checks():
    a, b = make_noise(7, 32, 48), make_noise(7, 32, 48)
    assert a.shape == (1, 3, 32, 48) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, make_noise(8, 32, 48))
    generator = torch.Generator("cpu").manual_seed(7)  # the documented rule, spelled out
    assert torch.equal(a, torch.randn((1, 3, 32, 48), generator=generator))
    for bad in (-1, 2**63, 1.5, True):
        with pytest.raises(InputError, match="seed must be"):
            make_noise(bad, 16, 16)


def test_sampling_record_round_trip_and_damage(tmp_path):
    record = Sampling(steps=25, t0_input="noise", last_step=0.04, guidance=3.0)
    assert Sampling.from_json(record.to_json()) == record
    for bad in ('{"method": "ddpm"}', '{"method": "rectified-flow", "steps": 0}', '{"method": "rectified-flow", "bogus": 1}', "[1"):
        with pytest.raises(ValueError):
            Sampling.from_json(bad)
    path = save_weights(tmp_path / "m.safetensors", TINY, _tiny_state(), sampling=record)
    assert load_weights(path)[2]["sampling"] == record
    data = path.read_bytes().replace(b'\\"steps\\": 25', b'\\"steps\\": -2')
    (tmp_path / "bad.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError, match="bad sampling record"):
        load_weights(tmp_path / "bad.safetensors")


def _tiny_state() -> dict[str, torch.Tensor]:
    from cod_lite.models.network import CodLiteNet

    torch.manual_seed(1)
    return CodLiteNet(TINY).state_dict()


# -- which models take steps -------------------------------------------------------------------
def test_pretrain_stage_files_are_multi_step_and_export_keeps_it(pretrain_model, tmp_path):
    assert load_weights(pretrain_model)[2]["sampling"] == Sampling()
    out = export(pretrain_model, tmp_path / "exported.safetensors", name="rf")
    assert load_weights(out)[2]["sampling"] == Sampling()
    assert '"sampling"' in (tmp_path / "exported.json").read_text()


def test_one_step_model_refuses_more_steps(parity_codec):
    data = parity_codec.encode(PARITY / "image.png")
    assert parity_codec.sampling is None and parity_codec.steps_for(None) == 1
    with pytest.raises(InputError, match="one-step codec: it decodes with 1 step, not 2"):
        parity_codec.decode(data, steps=2)
    with pytest.raises(InputError, match="one-step codec"):
        cod_lite.decode(data, model=parity_codec, steps=4)
    assert np.array_equal(np.asarray(parity_codec.decode(data, steps=1)), np.asarray(parity_codec.decode(data)))
    with pytest.raises(InputError, match="steps must be a positive integer"):
        parity_codec.decode(data, steps=0)


def test_cli_one_step_refusal_is_one_line(tmp_path, parity_weights):
    runner = CliRunner()
    cod = tmp_path / "x.cod"
    assert runner.invoke(cli, ["compress", str(PARITY / "image.png"), str(cod), "--model", str(parity_weights)]).exit_code == 0
    result = runner.invoke(cli, ["decompress", str(cod), str(tmp_path / "x.png"), "--model", str(parity_weights), "--steps", "3"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codlite: error:") and "one-step codec" in lines[0]
    assert not (tmp_path / "x.png").exists()


# -- decoding a pretrain-stage model -----------------------------------------------------------
def test_one_step_of_a_pretrain_model_is_the_plain_t0_decode(codec, stream):
    indices, height, width = codec.decode_indices(stream)
    with torch.inference_mode():
        plain = codec.net.reconstruct(torch.from_numpy(indices)[None])
    expected = ((plain + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)[0, :height, :width].numpy()
    for image in (codec.decode(stream), codec.decode(stream, steps=1), codec.decode(stream, steps=1, seed=99)):
        assert np.array_equal(np.asarray(image), expected)
    fast = cod_lite.load_model(codec.path)  # default precision: steps=1 is that one-step pass too
    assert np.array_equal(np.asarray(fast.decode(stream, steps=1, seed=5)), np.asarray(fast.decode(stream)))


def test_round_trip_with_steps_is_deterministic_per_seed(codec, stream):
    a = np.asarray(codec.decode(stream, steps=3, seed=1))
    assert a.shape == (192, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, np.asarray(codec.decode(stream, steps=3, seed=1)))
    assert not np.array_equal(a, np.asarray(codec.decode(stream, steps=3, seed=2)))
    assert not np.array_equal(a, np.asarray(codec.decode(stream, steps=1)))
    assert np.array_equal(np.asarray(codec.decode(stream, steps=3)), np.asarray(codec.decode(stream, steps=3, seed=0)))
    assert np.array_equal(a, np.asarray(cod_lite.decode(stream, model=codec, steps=3, seed=1)))
    many = codec.decode_many([stream, stream], steps=3, seed=1)  # one batch of two: same noise, batched sums
    assert np.array_equal(many[0], many[1])
    diff = np.abs(many[0].astype(int) - a.astype(int))
    assert diff.max() <= 1 and (diff > 0).sum() <= 0.001 * diff.size


def test_streams_do_not_depend_on_sampling(codec, stream, pretrain_model, tmp_path):
    """The same tensors saved without the record are a one-step codec with the same identity:
    identical streams, identical one-step pixels; only the decoder's options differ."""
    config, state, meta = load_weights(pretrain_model)
    plain = save_weights(tmp_path / "plain.safetensors", config, state)
    one_step = cod_lite.load_model(plain, precision="fp32")
    assert one_step.identity == codec.identity and one_step.sampling is None
    assert one_step.encode(PARITY / "image.png", colour=False) == stream
    assert np.array_equal(np.asarray(one_step.decode(stream)), np.asarray(codec.decode(stream, steps=1)))
    assert "sampling" in read_metadata(pretrain_model) and "sampling" not in read_metadata(plain)


def test_cli_steps_and_seed_match_the_api(codec, stream, pretrain_model, tmp_path):
    cod = tmp_path / "s.cod"
    cod.write_bytes(stream)
    out = tmp_path / "s.png"
    result = CliRunner().invoke(cli, ["decompress", str(cod), str(out), "--model", str(pretrain_model), "--steps", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(codec.decode(stream, steps=3, seed=1)))


def test_convert_decompresses_a_folder_with_steps_and_seed(codec, stream, pretrain_model, parity_weights, tmp_path):
    src, dst = tmp_path / "streams", tmp_path / "images"
    (src / "sub").mkdir(parents=True)
    for name in ("a.cod", "sub/b.cod"):
        (src / name).write_bytes(stream)
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", str(src), str(dst), "-d", "--model", str(pretrain_model), "--steps", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    expected = np.asarray(codec.decode(stream, steps=3, seed=1))
    for name in ("a.png", "sub/b.png"):
        assert np.array_equal(np.asarray(Image.open(dst / name)), expected)
    # steps belong to decoding; a one-step model refuses them once, before any file is written
    result = runner.invoke(cli, ["convert", str(src), str(tmp_path / "x"), "--steps", "3"])
    assert result.exit_code == 1 and "need --decompress" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["convert", str(src), str(tmp_path / "y"), "-d", "--model", str(parity_weights), "--steps", "3"])
    assert result.exit_code == 1 and "one-step codec" in result.output and not (tmp_path / "y").exists()


def test_steps_tile_a_large_image_like_the_untiled_sampler(codec, pretrain_model, stream, monkeypatch):
    """Above max_memory, each step runs the per-pixel head in patch tiles (the trunk untiled)."""
    from cod_lite.models.sampling import SAMPLE_STATE_BYTES, sample_bytes

    state = SAMPLE_STATE_BYTES * 192 * 128
    untiled = sample_bytes(codec.model_config, 192, 128)
    small = cod_lite.load_model(pretrain_model, max_memory=state + (untiled - state) // 4, precision="fp32")
    calls = []
    head = small.net.head
    monkeypatch.setattr(small.net, "head", lambda *a: calls.append(a[0].shape) or head(*a))
    tiled = np.asarray(small.decode(stream, steps=3, seed=1))
    assert len(calls) > 3 and all(shape[-1] * shape[-2] < 192 * 128 for shape in calls)  # several tiles per step
    diff = np.abs(tiled.astype(int) - np.asarray(codec.decode(stream, steps=3, seed=1)).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.001  # the same image up to summation order
    with pytest.raises(InputError, match="sampling state alone"):
        cod_lite.load_model(pretrain_model, max_memory="1M").decode(stream, steps=2)
    assert cod_lite.load_model(pretrain_model, max_memory="1M").decode(stream).size == (128, 192)  # one step still tiles


def test_guidance_uses_the_unconditional_branch(parity_codec):
    """A t0-noise, guided record (the kind of the authors' pre-trained model), put on the parity
    model's weights (whose random codebook tells the all -1 image from a photo)."""
    stream = parity_codec.encode(PARITY / "image.png")
    guided = cod_lite.Codec(parity_codec.net, parity_codec.weights_sha256, parity_codec.path)
    guided.sampling = Sampling(steps=4, t0_input="noise", guidance=3.0)
    plain = cod_lite.Codec(parity_codec.net, parity_codec.weights_sha256, parity_codec.path)
    plain.sampling = Sampling(steps=4, t0_input="noise")
    g = np.asarray(guided.decode(stream, seed=3))
    assert np.array_equal(g, np.asarray(guided.decode(stream, seed=3)))
    assert not np.array_equal(g, np.asarray(plain.decode(stream, seed=3)))
    # t0 "noise": even one step depends on the noise, unlike our t0 "zeros" models
    assert not np.array_equal(np.asarray(plain.decode(stream, steps=1, seed=1)), np.asarray(plain.decode(stream, steps=1, seed=2)))
