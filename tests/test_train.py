"""Training stages end to end on tiny models: losses fall, runs resume, DDP runs, exports load."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import cod_lite
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet
from cod_lite.train.data import CropSampler
from cod_lite.train.export import export
from cod_lite.train.loop import TrainSettings, load_matching, train
from cod_lite.train.objectives import make_objective
from cod_lite.weights import load_weights, save_weights

TINY = ModelConfig(name="tiny", ds=16, codebook_bits=4, hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    (root / "nested").mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 40), (80, 96), (64, 64), (90, 70)]):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 3 + 40 * i, y * 2, (x + y) % 64 * 4], -1) + rng.normal(0, 8, (h, w, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / ("nested" if i % 2 else ".") / f"im{i}.png")
    (root / "notes.txt").write_text("not an image: ignored")
    return root


def settings(folder, out, stage, **kw) -> TrainSettings:
    values = dict(steps=40, batch_size=4, crop=32, lr=2e-3, warmup=1, log_every=10, save_every=1000, restart_every=10)
    values.update(kw)
    return TrainSettings(stage=stage, data=str(folder), out=str(out), **values)


def fixed_batch_l1(net: CodLiteNet, folder) -> float:
    x = CropSampler(folder, 32, seed=123).batch(8)
    net.eval()
    with torch.no_grad():
        idx = net.quantize(x)
        return float((net.reconstruct(idx) - (x * 2 - 1)).abs().mean())


@pytest.mark.parametrize("stage", ["onestep", "pretrain"])
def test_stage_lowers_the_codec_error(folder, tmp_path, stage):
    torch.manual_seed(0)
    before = fixed_batch_l1(CodLiteNet(TINY), folder)
    path = train(settings(folder, tmp_path / stage, stage, t0_fraction=0.5), TINY)
    config, state, meta = load_weights(path)
    trained = CodLiteNet(config)
    trained.load_state_dict(state)
    after = fixed_batch_l1(trained, folder)
    assert after < 0.8 * before, (before, after)
    assert meta["info"]["stage"] == stage and meta["info"]["steps"] == 40
    log = [json.loads(line) for line in (tmp_path / stage / "train.log").read_text().splitlines() if line.startswith("{")]
    assert [r["step"] for r in log] == [10, 20, 30, 40]


def test_onestep_with_perceptual_loss_runs(folder, tmp_path):
    path = train(settings(folder, tmp_path / "p", "onestep", steps=3, lpips_alex=0.5, log_every=1), TINY)
    log = [json.loads(line) for line in (tmp_path / "p" / "train.log").read_text().splitlines()]
    assert all(r["lpips_alex"] > 0 for r in log) and path.exists()


def test_dists_loss_trains_and_is_logged(folder, tmp_path):
    path = train(settings(folder, tmp_path / "d", "onestep", steps=3, dists=1.0, log_every=1), TINY)
    log = [json.loads(line) for line in (tmp_path / "d" / "train.log").read_text().splitlines()]
    assert path.exists() and len(log) == 3 and all(0 < row["dists"] < 1 for row in log)


def test_dists_loss_is_zero_for_the_target_and_pulls_a_flat_patch_towards_texture(folder, tmp_path):
    from cod_lite.train.objectives import make_objective

    objective = make_objective(CodLiteNet(TINY), settings(folder, tmp_path, "onestep", dists=1.0, l1=0.0))
    target = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    same, _ = objective.one_step_terms(target.clone(), target)
    assert same["dists"].abs() < 1e-4
    flat = torch.zeros_like(target).requires_grad_(True)
    flat_terms, total = objective.one_step_terms(flat, target)
    total.backward()
    assert flat_terms["dists"] > 0.1 and flat.grad.abs().sum() > 0


def test_pretrain_perceptual_terms_judge_the_t0_samples_only(folder, tmp_path):
    torch.manual_seed(0)
    x = CropSampler(folder, 32, seed=5).batch(4)
    assert TrainSettings(stage="pretrain", data="d", out="o").l1 == 0 and TrainSettings(stage="onestep", data="d", out="o").l1 == 1
    for fraction, expect_terms in ((1.0, True), (0.0, False)):
        objective = make_objective(CodLiteNet(TINY), settings(folder, tmp_path, "pretrain", t0_fraction=fraction, l1=1.0, lpips_alex=0.5))
        losses, *_ = objective(x)
        assert ("l1" in losses and "lpips_alex" in losses) is expect_terms
        extra = losses["l1"] + 0.5 * losses["lpips_alex"] if expect_terms else 0.0
        torch.testing.assert_close(losses["total"], losses["mse"] + extra + losses["vq"])
    path = train(settings(folder, tmp_path / "mixed", "pretrain", steps=4, t0_fraction=0.5, lpips_alex=0.5, log_every=2), TINY)
    log = [json.loads(line) for line in (tmp_path / "mixed" / "train.log").read_text().splitlines()]
    assert all(r["mse"] > 0 for r in log) and load_weights(path)[2]["sampling"]  # still a multi-step model


def test_restarts_can_be_switched_off_for_fine_tuning(folder, tmp_path):
    path = train(settings(folder, tmp_path / "n", "onestep", steps=3, restart_every=0, log_every=1), TINY)
    assert path.exists() and "restart" not in (tmp_path / "n" / "train.log").read_text()


def test_resume_continues_the_step_count(folder, tmp_path):
    train(settings(folder, tmp_path / "r", "onestep", steps=3, log_every=1), TINY)
    train(settings(folder, tmp_path / "r", "onestep", steps=5, log_every=1), TINY)
    state = torch.load(tmp_path / "r" / "last_state.pt", weights_only=True)
    assert state["step"] == 5
    steps = [json.loads(line)["step"] for line in (tmp_path / "r" / "train.log").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_resume_refuses_a_changed_objective(folder, tmp_path):
    train(settings(folder, tmp_path / "r", "onestep", steps=2), TINY)
    with pytest.raises(ValueError, match=r"l1=1\.0 \(this command: 0\.5\)"):
        train(settings(folder, tmp_path / "r", "onestep", steps=4, l1=0.5), TINY)
    assert torch.load(tmp_path / "r" / "last_state.pt", weights_only=True)["step"] == 2
    train(settings(folder, tmp_path / "r", "onestep", steps=3, lr=1e-3), TINY)  # schedule options may change
    assert torch.load(tmp_path / "r" / "last_state.pt", weights_only=True)["step"] == 3


def test_export_fp16_is_a_loadable_model(folder, tmp_path):
    path = train(settings(folder, tmp_path / "e", "onestep", steps=2), TINY)
    out = export(path, tmp_path / "m.safetensors", name="tiny-exported")
    codec = cod_lite.load_model(out)
    assert codec.name == "tiny-exported"
    assert out.stat().st_size < 0.6 * path.stat().st_size
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["training"]["dtype"] == "float16" and record["training"]["steps"] == 2
    image = np.asarray(Image.open(next(folder.glob("*.png"))).convert("RGB"))
    assert codec.decode(codec.encode(image)).size == (image.shape[1], image.shape[0])
    with pytest.raises(cod_lite.OutputError, match="already exists"):
        export(path, out)  # an export never replaces a model file unasked
    assert export(path, out, name="again", overwrite=True) == out and cod_lite.load_model(out).name == "again"


def test_export_int8_halves_the_file_and_keeps_the_decoder(folder, tmp_path):
    path = train(settings(folder, tmp_path / "q", "onestep", steps=2), TINY)
    half = export(path, tmp_path / "half.safetensors")
    small = export(path, tmp_path / "small.safetensors", precision="int8")
    assert small.stat().st_size < 0.7 * half.stat().st_size
    assert json.loads(small.with_suffix(".json").read_text())["training"]["dtype"].startswith("int8")
    a, b = cod_lite.load_model(half), cod_lite.load_model(small)
    assert a.identity != b.identity  # different stored weights, so streams name the one they need
    image = np.asarray(Image.open(next(folder.glob("*.png"))).convert("RGB"))
    indices = a.quantize(image)
    h, w = image.shape[:2]
    diff = np.abs(a.reconstruct(indices, h, w).astype(int) - b.reconstruct(indices, h, w).astype(int))
    assert diff.mean() < 1.0, diff.mean()
    with pytest.raises(ValueError, match="precision"):
        export(path, tmp_path / "x.safetensors", precision="int4")


def test_unknown_stage(folder, tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        make_objective(CodLiteNet(TINY), settings(folder, tmp_path, "bogus"))
    with pytest.raises(ValueError, match="needs --teacher"):
        make_objective(CodLiteNet(TINY), settings(folder, tmp_path, "distill"))


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_feature_alignment_loss_falls(folder, tmp_path):
    torch.manual_seed(0)
    train(settings(folder, tmp_path / "a", "onestep", steps=40, align=1.0), TINY)
    log = read_log(tmp_path / "a" / "train.log")
    assert log[-1]["align"] < 0.8 * log[0]["align"], [r["align"] for r in log]


def test_distill_with_adversarial_loss_changes_the_student(folder, tmp_path):
    torch.manual_seed(0)
    teacher = train(settings(folder, tmp_path / "t", "pretrain", steps=20, t0_fraction=0.5), TINY)
    student = train(
        settings(folder, tmp_path / "s", "distill", steps=20, lr=5e-4, teacher=str(teacher), init=str(teacher),
                 teacher_steps=4, adversarial=0.1, align=0.5, log_every=5),
        TINY,
    )
    log = read_log(tmp_path / "s" / "train.log")
    assert {"distill", "gan_g", "gan_d", "align", "l1"} <= set(log[-1])
    assert all(np.isfinite(r["total"]) and r["gan_d"] >= 0 for r in log)
    assert log[-1]["gan_d"] < log[0]["gan_d"] or log[-1]["distill"] < log[0]["distill"]
    before, after = load_weights(teacher)[1], load_weights(student)[1]
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > 0.5 * len(before)
    # resume restores the discriminator and its optimiser
    state = torch.load(tmp_path / "s" / "last_state.pt", weights_only=True)
    assert any(k.startswith("discriminator.") for k in state["aux"]) and "d_optimizer" in state


def test_init_from_another_rate_loads_the_shared_tensors(folder, tmp_path):
    source = train(settings(folder, tmp_path / "src", "onestep", steps=1), TINY)
    other = CodLiteNet(ModelConfig(**{**TINY.to_dict(), "ds": 32}))
    loaded = load_matching(other, load_weights(source)[1])
    assert 0.5 * len(other.state_dict()) < loaded < len(other.state_dict())


def test_ddp_two_cpu_processes(folder, tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "cod_lite.train", "onestep", "--data", str(folder), "--out", str(tmp_path / "ddp"), "--steps", "3",
        "--batch-size", "2", "--crop", "32", "--log-every", "1", "--ds", "16", "--bits", "4", "--hidden", "32",
        "--hidden-x", "8", "--blocks", "2", "--cond-blocks", "1",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (tmp_path / "ddp" / "train.log").read_text().splitlines()]
    assert steps == [1, 2, 3]  # one log: only rank 0 writes
    load_weights(tmp_path / "ddp" / "last.safetensors")


def test_freeze_encoder_keeps_the_indices_and_trains_a_smaller_decoder(folder, tmp_path):
    torch.manual_seed(0)
    source = train(settings(folder, tmp_path / "big", "onestep", steps=20), TINY)
    small = ModelConfig(**{**TINY.to_dict(), "hidden_size_x": 4, "num_blocks": 1})
    path = train(settings(folder, tmp_path / "small", "onestep", steps=30, init=str(source), freeze_encoder=True, log_every=5), small)
    before, after = load_weights(source)[1], load_weights(path)[1]
    frozen = [k for k in after if k.startswith(("y_embedder.encoder.", "y_embedder.bottleneck."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    nets = []
    for config, state in ((TINY, before), (small, after)):
        nets.append(CodLiteNet(config))
        nets[-1].load_state_dict(state)
    x = CropSampler(folder, 32, seed=7).batch(4)
    with torch.no_grad():
        assert torch.equal(nets[0].quantize(x), nets[1].quantize(x))
    log = read_log(tmp_path / "small" / "train.log")
    assert log[-1]["l1"] < log[0]["l1"], [r["l1"] for r in log]


def test_seam_loss_sees_only_the_steps_across_patch_borders():
    from cod_lite.train.losses import seam_loss

    target = torch.zeros(1, 3, 32, 48)
    inside = target.clone()
    inside[..., 3:9, 2:12] = 1.0  # an edge inside the first patch: no border pair changes
    assert seam_loss(inside, target, 16) == 0
    offset = target.clone()
    offset[..., :, 16:32] = 0.5  # the middle column of patches shifted: two column borders step by 0.5
    pairs_per_image = 3 * (32 * 2 + 48 * 1)  # channels x (rows x column borders + columns x row borders)
    assert seam_loss(offset, target, 16).item() == pytest.approx(3 * 32 * 2 * 0.5 / pairs_per_image)
    assert seam_loss(target, offset, 16) == 0  # one-sided: borders smoother than the photo's cost nothing


def test_mean_patch_is_what_every_patch_shares():
    from cod_lite.train.losses import mean_patch

    photo = torch.rand(2, 3, 64, 48)
    stamp = torch.zeros(16, 16)
    stamp[::2] = 0.25  # hatching: every other row of every patch brighter
    stamped = photo + stamp.repeat(4, 3)
    found = mean_patch(stamped, 16) - mean_patch(photo, 16)
    assert torch.allclose(found, (stamp - stamp.mean()).expand_as(found), atol=1e-6)
    assert mean_patch(torch.full((1, 3, 32, 32), 0.7), 16).abs().max() < 1e-6  # a flat image has none


def test_refiner_only_trains_the_refiner_at_its_own_rate(folder, tmp_path):
    torch.manual_seed(0)
    source = train(settings(folder, tmp_path / "base", "onestep", steps=10), TINY)
    refined = ModelConfig(**{**TINY.to_dict(), "refine_channels": 8})
    path = train(settings(folder, tmp_path / "refiner", "onestep", steps=30, init=str(source), refiner_only=True,
                          seam=1.0, refine_lr_scale=10.0, log_every=5), refined)
    before, after = load_weights(source)[1], load_weights(path)[1]
    assert all(torch.equal(before[k], after[k]) for k in before)  # everything but the refiner as loaded
    assert any(after[k].abs().sum() > 0 for k in after if k.startswith("refine.conv2."))  # starts at zero, moved
    log = read_log(tmp_path / "refiner" / "train.log")
    assert "seam" in log[0] and log[-1]["l1"] < log[0]["l1"], [r["l1"] for r in log]
    with pytest.raises(ValueError, match="refiner"):
        train(settings(folder, tmp_path / "none", "onestep", steps=2, refiner_only=True), TINY)


def test_crop_set_fills_its_budget_with_square_crops(folder, tmp_path, capsys):
    from cod_lite.train.__main__ import main

    main(["crops", str(folder), str(tmp_path / "c"), "--size", "45", "--max-mb", str(30_000 / 2**20)])
    files = sorted((tmp_path / "c").iterdir())
    assert len(files) > 4 and sum(f.stat().st_size for f in files) <= 30_000  # several passes over 4 photos
    sizes = {Image.open(f).size for f in files}
    assert sizes == {(45, 45), (40, 40)}  # the 48x40 photo gives its largest square
    assert CropSampler(tmp_path / "c", 32).batch(2).shape == (2, 3, 32, 32)
    assert main(["crops", str(folder), str(tmp_path / "c")]) == 1  # one line, no traceback
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_training_precision_auto_is_bf16_only_where_native(monkeypatch, native):
    """Emulated bf16 made a CPU training step ~9x slower than fp32 (docs/training.md): auto avoids it."""
    from cod_lite.kernels import fast
    from cod_lite.train.loop import trains_in_bf16

    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: native)
    assert trains_in_bf16("auto", torch.device("cpu")) is native
    assert trains_in_bf16("bf16", torch.device("cpu")) and not trains_in_bf16("fp32", torch.device("cpu"))


def test_export_scales_the_refiner_residual_and_records_it(folder, tmp_path):
    net = CodLiteNet(dataclasses.replace(TINY, refine_channels=4))
    torch.nn.init.normal_(net.refine.conv2.weight, std=0.1)
    run = save_weights(tmp_path / "run.safetensors", net.config, net.state_dict(), info={"steps": 1})
    full = export(run, tmp_path / "full.safetensors", precision="fp32")
    half = export(run, tmp_path / "half.safetensors", precision="fp32", refiner_scale=0.5)
    (_, a, _), (_, b, meta) = load_weights(full), load_weights(half)
    assert torch.allclose(b["refine.conv2.weight"], 0.5 * a["refine.conv2.weight"])
    assert torch.equal(b["refine.conv1.weight"], a["refine.conv1.weight"]) and meta["info"]["refiner_scale"] == 0.5
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    nets = [CodLiteNet(net.config) for _ in range(2)]
    for n, state in zip(nets, (a, b)):
        n.load_state_dict(state)
    with torch.no_grad():
        delta_full, delta_half = (n.refined(image) - image for n in nets)
    assert torch.allclose(delta_half, 0.5 * delta_full, atol=1e-6)
    plain = save_weights(tmp_path / "plain.safetensors", TINY, CodLiteNet(TINY).state_dict(), info={})
    with pytest.raises(ValueError, match="no seam refiner"):
        export(plain, tmp_path / "x.safetensors", refiner_scale=0.5)


def test_export_carries_the_prior_only_of_an_encoder_kept_frozen(folder, tmp_path):
    from cod_lite.train.__main__ import main

    base = save_weights(tmp_path / "base.safetensors", TINY, CodLiteNet(TINY).state_dict(), dtype=torch.float16, int8=True, info={})  # as exported
    source = cod_lite.fit_prior(base, folder, tmp_path / "source.safetensors", progress=False)
    frozen = train(settings(folder, tmp_path / "f", "onestep", steps=3, restart_every=0, init=str(source), freeze_encoder=True), TINY)
    out = tmp_path / "out.safetensors"
    assert main(["export", str(frozen), str(out), "--precision", "int8", "--prior-from", str(source)]) == 0
    old, new = cod_lite.load_model(source, precision="fp32"), cod_lite.load_model(out, precision="fp32")
    assert new.prior is not None and new.prior.digest == old.prior.digest and new.weights_sha256 != old.weights_sha256
    assert "carried over from source.safetensors" in json.loads(out.with_suffix(".json").read_text())["training"]["index_prior"]
    for photo in sorted(folder.rglob("*.png")):
        assert np.array_equal(new.quantize(photo), old.quantize(photo))
        assert len(new.encode(photo)) == len(old.encode(photo))  # same indices, same prior: same entropy-coded size
    moved = train(settings(folder, tmp_path / "m", "onestep", steps=3, restart_every=0, init=str(source)), TINY)
    for run, precision, error in ((moved, "int8", "encoder or codebook differs"), (frozen, "fp16", "encoder or codebook differs"),
                                  (frozen, "int8", "no index prior")):
        with pytest.raises(ValueError, match=error):
            export(run, tmp_path / "refused.safetensors", precision=precision, prior_from=base if error == "no index prior" else source)
    assert not (tmp_path / "refused.safetensors").exists()


def test_export_mixes_two_fine_tunes_and_keeps_what_they_share(folder, tmp_path):
    torch.manual_seed(1)
    a, b = CodLiteNet(TINY), CodLiteNet(TINY)
    b.y_embedder.load_state_dict(a.y_embedder.state_dict())  # one encoder and condition decoder, two denoisers
    first = save_weights(tmp_path / "a.safetensors", TINY, a.state_dict(), info={"steps": 1})
    second = save_weights(tmp_path / "b.safetensors", dataclasses.replace(TINY, name="other-name"), b.state_dict(), info={})
    out = export(first, tmp_path / "m.safetensors", precision="fp32", mix=second, mix_weight=0.25)
    (_, mixed, meta), (_, sa, _), (_, sb, other) = load_weights(out), load_weights(first), load_weights(second)
    key = "final_layer.linear.weight"
    assert not torch.equal(sa[key], sb[key]) and torch.allclose(mixed[key], 0.75 * sa[key] + 0.25 * sb[key], atol=1e-6)
    assert all(torch.equal(mixed[k], sa[k]) for k in sa if k.startswith("y_embedder."))  # shared tensors bit for bit
    assert meta["info"]["mix"] == {"file": "b.safetensors", "weights_sha256": other["weights_sha256"], "weight": 0.25}
    wider = save_weights(tmp_path / "w.safetensors", dataclasses.replace(TINY, hidden_size=64), CodLiteNet(dataclasses.replace(TINY, hidden_size=64)).state_dict())
    for bad, weight, error in ((wider, 0.5, "not the same architecture"), (second, 1.5, "mix weight")):
        with pytest.raises(ValueError, match=error):
            export(first, tmp_path / "refused.safetensors", mix=bad, mix_weight=weight)
    assert not (tmp_path / "refused.safetensors").exists()


def test_cli_init_keeps_the_init_files_architecture_unless_a_flag_changes_it(folder, tmp_path):
    from cod_lite.train.__main__ import main

    source = train(settings(folder, tmp_path / "src", "onestep", steps=1), dataclasses.replace(TINY, ds=32, refine_channels=8))
    common = ["--data", str(folder), "--steps", "1", "--batch-size", "2", "--crop", "64", "--init", str(source)]
    assert main(["onestep", "--out", str(tmp_path / "same"), *common]) == 0
    assert load_weights(tmp_path / "same" / "last.safetensors")[0] == load_weights(source)[0]
    assert main(["onestep", "--out", str(tmp_path / "other"), *common, "--ds", "16", "--name", "x"]) == 0
    changed = load_weights(tmp_path / "other" / "last.safetensors")[0]
    assert changed == dataclasses.replace(TINY, ds=16, refine_channels=8, name="x")
    # resuming keeps the run's architecture, not the --init file's
    assert main(["onestep", "--out", str(tmp_path / "other"), *common, "--steps", "2"]) == 0
    assert load_weights(tmp_path / "other" / "last.safetensors")[0] == changed


def test_region_colours_loss_sees_a_cast_but_not_a_zero_mean_texture():
    from cod_lite.train.losses import region_colours

    photo = torch.rand(1, 3, 32, 48)
    hatching = torch.zeros(16, 16)
    hatching[::2], hatching[1::2] = 0.2, -0.2
    assert torch.allclose(region_colours(photo + hatching.repeat(2, 3)), region_colours(photo), atol=1e-6)
    cast = photo.clone()
    cast[:, 2] -= 0.1
    assert torch.allclose(region_colours(cast) - region_colours(photo), torch.tensor([0, 0, -0.1]).view(1, 3, 1, 1).expand(1, 3, 2, 3), atol=1e-6)


def test_max_crop_draws_a_size_per_batch_within_bounds(tmp_path):
    for i, (h, w) in enumerate([(300, 400), (200, 260)]):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(tmp_path / f"p{i}.png")
    sampler = CropSampler(tmp_path, 64, seed=0, max_crop=256)
    shapes = {tuple(sampler.batch(2).shape) for _ in range(40)}
    assert len(shapes) > 5  # sizes vary
    for b, c, h, w in shapes:
        assert (b, c) == (2, 3) and 64 <= h <= 256 and 64 <= w <= 256 and h % 32 == 0 and w % 32 == 0
    assert {tuple(CropSampler(tmp_path, 64, seed=0).batch(2).shape) for _ in range(5)} == {(2, 3, 64, 64)}


def test_colour_loss_trains_and_is_logged(folder, tmp_path):
    path = train(settings(folder, tmp_path / "c", "onestep", steps=4, colour=2.0, max_crop=64, log_every=1), TINY)
    log = [json.loads(line) for line in (tmp_path / "c" / "train.log").read_text().splitlines()]
    assert path.exists() and len(log) == 4 and all(row["colour"] > 0 for row in log)
