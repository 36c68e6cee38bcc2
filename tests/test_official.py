"""Importing official checkpoints: containers, strictness, and safety."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

import cod_lite
from cod_lite.errors import CheckpointError
from cod_lite.models.sampling import Sampling
from cod_lite.official import config_from_official, read_official_config, read_official_sampler
from cod_lite.weights import load_weights

from .conftest import PARITY

ARGS = yaml.safe_load((PARITY / "config.yaml").read_text())["model"]["net"]["init_args"]


def official_state() -> dict[str, torch.Tensor]:
    return {f"net.{k}": v for k, v in load_file(str(PARITY / "state_dict.safetensors")).items()}


@pytest.mark.parametrize("container", ["lightning", "deepspeed", "flat"])
def test_three_containers_import_to_identical_weights(tmp_path, parity_weights, container):
    state = official_state()
    state["disc.head.weight"] = torch.zeros(3)  # non-codec entries of the last stage are ignored
    state["real_denoiser.x"] = torch.zeros(2)
    wrapped = {"lightning": {"state_dict": state}, "deepspeed": {"module": state}, "flat": state}[container]
    torch.save(wrapped, tmp_path / "ckpt.pt")
    out = cod_lite.import_official(tmp_path / "ckpt.pt", ARGS, tmp_path / "m.safetensors", encoder_channels=32)
    _, _, meta = load_weights(out)
    _, _, ref = load_weights(parity_weights)
    assert meta["weights_sha256"] == ref["weights_sha256"]


def test_imported_file_records_config_and_loads_by_path(parity_weights):
    config, state, _ = load_weights(parity_weights)
    assert (config.ds, config.codebook_bits, config.hidden_size, config.encoder_channels) == (16, 8, 64, 32)
    codec = cod_lite.load_model(parity_weights)
    assert codec.config["ds"] == 16 and codec.config["codebook_bits"] == 8
    assert codec.config["hidden_size"] == 64 and codec.config["name"] == "parity"


def test_missing_and_mis_shaped_keys_are_named(tmp_path):
    state = official_state()
    del state["net.final_layer.linear.bias"]
    state["net.blocks.0.conv1.weight"] = torch.zeros(5, 5, 1, 1)
    state["net.blocks.9.conv1.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        cod_lite.import_official(tmp_path / "bad.pt", ARGS, tmp_path / "m.safetensors", encoder_channels=32)
    msg = str(err.value)
    assert "missing key(s): final_layer.linear.bias" in msg
    assert "unexpected key(s): blocks.9.conv1.weight" in msg
    assert "mis-shaped key(s): blocks.0.conv1.weight (5, 5, 1, 1) != (64, 64, 1, 1)" in msg
    assert not (tmp_path / "m.safetensors").exists()


def test_wrong_encoder_width_is_refused_and_the_default_reads_it(tmp_path, official_pt):
    with pytest.raises(CheckpointError, match="mis-shaped"):
        cod_lite.import_official(official_pt, ARGS, tmp_path / "m.safetensors", encoder_channels=128)
    path = cod_lite.import_official(official_pt, ARGS, tmp_path / "m.safetensors")  # width read from the checkpoint: 32
    assert cod_lite.load_model(path).model_config.encoder_channels == 32


def test_checkpoint_without_codec_keys(tmp_path):
    torch.save({"state_dict": {"model.weight": torch.zeros(2)}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="no 'net.' tensors"):
        cod_lite.import_official(tmp_path / "x.pt", ARGS, tmp_path / "m.safetensors", encoder_channels=32)


class Exploit:
    """Unpickling this would call `exploded` -- a stand-in for os.system."""

    def __reduce__(self):
        return (_explode, ("ran",))


CALLS: list[str] = []


def _explode(arg: str) -> dict:
    CALLS.append(arg)
    return {}


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Exploit()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="refusing to load"):
        cod_lite.import_official(path, ARGS, tmp_path / "m.safetensors", encoder_channels=32)
    assert CALLS == []
    # the same file *would* run code when loaded unsafely: the test's premise holds
    with open(path, "rb") as f:
        pickle.load(f)
    assert CALLS == ["ran"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({**ARGS, "pred": "v"}, "unsupported setting pred='v'"),
        ({**ARGS, "light": False}, "unsupported setting light=False"),
        ({**ARGS, "ds": 12}, "ds must be one of"),
        ({**ARGS, "bogus": 1}, "unknown model settings: bogus"),
    ],
)
def test_unsupported_configs(tmp_path, official_pt, args, message):
    with pytest.raises(CheckpointError, match=message):
        cod_lite.import_official(official_pt, args, tmp_path / "m.safetensors", encoder_channels=32)


def test_yaml_that_is_not_a_config(tmp_path, official_pt):
    (tmp_path / "c.yaml").write_text("hello: [1, 2")
    with pytest.raises(CheckpointError, match="not a CoD-Lite config"):
        cod_lite.import_official(official_pt, tmp_path / "c.yaml", tmp_path / "m.safetensors", encoder_channels=32)


def test_training_only_args_are_ignored(tmp_path, official_pt):
    args = {**ARGS, "net_ckpt_path": "/x.pt", "fix_encoder": True, "noise_level": 0.0}
    out = cod_lite.import_official(official_pt, args, tmp_path / "m.safetensors", encoder_channels=32)
    assert out.exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError):
        cod_lite.import_official(tmp_path / "junk.pt", ARGS, tmp_path / "m.safetensors", encoder_channels=32)


# -- the authors' multi-step pre-trained model (CoD_Lite_pretrain.pt): layout derived ------------
def pretrain_yaml(tmp_path, sampler: dict | None = None, **overrides) -> str:
    """A Lightning config in the layout of the authors' pre-training configs: model.denoiser
    (a DConv, ds and codebook_bits left to their defaults unless given) + model.diffusion_sampler."""
    args = {k: v for k, v in ARGS.items() if k not in ("ds", "codebook_bits")}
    args.update(overrides)
    model = {"denoiser": {"class_path": "cod.models.pixel_cnn.DConv", "init_args": args}}
    if sampler is not None:
        model["diffusion_sampler"] = {"class_path": "cod.diffusion.EulerSampler", "init_args": sampler}
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump({"model": model}))
    return path


AUTHORS_SAMPLER = {
    "num_steps": 100, "guidance": 3.0, "guidance_interval_min": 0.1, "guidance_interval_max": 1.0,
    "scheduler": "cod.diffusion.LinearScheduler", "last_step": 0.04, "w_scheduler": "cod.diffusion.LinearScheduler",
    "guidance_fn": "cod.diffusion.simple_guidance_fn", "step_fn": "cod.diffusion.ode_step_fn",
}


def test_pretrain_checkpoint_imports_its_ema_weights_as_multi_step(tmp_path, parity_weights):
    ema = {f"ema_denoiser.{k[4:]}": v for k, v in official_state().items()}
    raw = {f"denoiser.{k[len('ema_denoiser.'):]}": v + 1 for k, v in ema.items()}  # the non-EMA copy differs
    trainer = {"diffusion_trainer.proj.0.0.weight": torch.zeros(4, 4)}
    torch.save({"state_dict": {**raw, **ema, **trainer}}, tmp_path / "CoD_Lite_pretrain.pt")
    config = pretrain_yaml(tmp_path, AUTHORS_SAMPLER, ds=16, codebook_bits=8)
    out = cod_lite.import_official(tmp_path / "CoD_Lite_pretrain.pt", config, tmp_path / "pre.safetensors", encoder_channels=32)
    _, _, meta = load_weights(out)
    assert meta["weights_sha256"] == load_weights(parity_weights)[2]["weights_sha256"]  # the EMA tensors, unchanged
    assert meta["sampling"] == Sampling(steps=100, t0_input="noise", last_step=0.04, guidance=3.0, guidance_interval=(0.1, 1.0))
    assert meta["info"]["prefix"] == "ema_denoiser."
    codec = cod_lite.load_model(out)
    data = codec.encode(PARITY / "image.png")
    a = np.asarray(codec.decode(data, steps=3, seed=5))
    assert np.array_equal(a, np.asarray(codec.decode(data, steps=3, seed=5)))
    assert not np.array_equal(a, np.asarray(codec.decode(data, steps=3, seed=6)))


def test_pretrain_yaml_defaults_and_paper_sampler(tmp_path):
    config = pretrain_yaml(tmp_path)  # no ds/bits: the reference's defaults; no sampler: the paper's
    assert config_from_official(read_official_config(config), "x", 32).ds == 32
    assert config_from_official(read_official_config(config), "x", 32).codebook_bits == 4
    assert read_official_sampler(config) == Sampling(steps=25, t0_input="noise", guidance=3.0, guidance_interval=(0.1, 1.0))


def test_pretrain_with_another_step_function_is_refused(tmp_path):
    torch.save({"state_dict": {f"ema_denoiser.{k[4:]}": v for k, v in official_state().items()}}, tmp_path / "p.pt")
    config = pretrain_yaml(tmp_path, {**AUTHORS_SAMPLER, "timeshift": 3.0}, ds=16, codebook_bits=8)
    with pytest.raises(CheckpointError, match="unsupported sampler setting timeshift=3.0"):
        cod_lite.import_official(tmp_path / "p.pt", config, tmp_path / "m.safetensors", encoder_channels=32)


def test_one_step_checkpoints_stay_one_step(parity_weights):
    assert load_weights(parity_weights)[2]["sampling"] is None


# -- ds-32 regression fixture (tests/data/parity_ds32: expected outputs are ours, see its README) --
DS32 = PARITY.parent / "parity_ds32"


def ds32_state() -> dict[str, torch.Tensor]:
    """The fixture's weights as floats: 4-bit tensors unpacked (q - 8) * 2^-exp, the rest as stored."""
    from safetensors import safe_open

    with safe_open(str(DS32 / "state_dict.safetensors"), "pt") as f:
        packed = json.loads(f.metadata()["packed"])
    state = load_file(str(DS32 / "state_dict.safetensors"))
    for key, (shape, exp) in packed.items():
        nibbles = torch.stack([state[key] & 15, state[key] >> 4], dim=1).flatten()[: int(np.prod(shape))]
        state[key] = (nibbles.float() - 8).reshape(shape) * 2.0**-exp
    return state


@pytest.fixture(scope="module")
def ds32(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds32")
    state = ds32_state()
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, root / "one.pt")
    torch.save({"state_dict": {f"ema_denoiser.{k}": v for k, v in state.items()}}, root / "pre.pt")
    one = cod_lite.import_official(root / "one.pt", DS32 / "config.yaml", root / "one.safetensors", encoder_channels=32)
    pre = cod_lite.import_official(root / "pre.pt", DS32 / "pretrain.yaml", root / "pre.safetensors", encoder_channels=32)
    exact = {"precision": "fp32"}  # the fixture pins the exact network
    return cod_lite.load_model(one, **exact), cod_lite.load_model(pre, **exact), load_file(str(DS32 / "expected.safetensors"))


def test_ds32_fixture_uses_the_official_key_layout():
    """Every key is an official 0.0039 key; the official keys missing are only those of the
    DiCo blocks and head blocks this small model does not have."""
    import gzip

    lines = gzip.decompress((PARITY.parent / "official_keys" / "keys_bpp_0_0039.txt.gz").read_bytes()).decode().splitlines()
    official = {line.split("\t")[0][4:] for line in lines if line.strip()}
    ours = set(ds32_state())
    assert ours <= official
    assert all(k.startswith(("blocks.", "dec_net.res_blocks.")) for k in official - ours)
    assert "y_embedder.decoder.ada.block.conv2.weight" in ours and "y_embedder.encoder.down_block_3.2.conv.weight" in ours


def test_ds32_fixture_reproduces_its_outputs(ds32):
    one, _, e = ds32
    assert (one.model_config.ds, one.model_config.codebook_bits) == (32, 4)
    indices = one.quantize(DS32 / "image.png")
    np.testing.assert_array_equal(indices.ravel(), e["indices"].numpy())
    image = torch.from_numpy(np.array(Image.open(DS32 / "image.png"))).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        assert (one.net.y_embedder.encoder(image) - e["z"]).abs().max() < 2e-4
        assert (one.net.y_embedder.decode(torch.from_numpy(indices)[None]) - e["cond"]).abs().max() < 1e-4
    height, width = e["image_out"].shape[:2]
    diff = np.abs(one.reconstruct(indices, height, width).astype(int) - e["image_out"].numpy().astype(int))
    assert diff.max() <= 1 and (diff > 0).sum() <= 0.001 * diff.size


def test_ds32_pretrain_layout_samples_as_recorded(ds32):
    _, pre, e = ds32
    assert pre.sampling == Sampling(steps=4, t0_input="noise", guidance=3.0, guidance_interval=(0.1, 1.0))
    height, width = e["image_out"].shape[:2]
    out = pre.reconstruct(e["indices"].numpy().reshape(height // 32, width // 32), height, width, seed=0)
    diff = np.abs(out.astype(int) - e["sample_4steps_seed0"].numpy().astype(int))
    assert diff.max() <= 1 and (diff > 0).sum() <= 0.001 * diff.size
