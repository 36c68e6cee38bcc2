"""The authors' reference outputs, reproduced through the public API (parity_A fixture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cod_lite import bitstream
from cod_lite.entropy.packing import pack_indices

from .conftest import PARITY

CASES = ["", "_wide"]


def expected(case: str) -> dict[str, torch.Tensor]:
    return load_file(str(PARITY / f"expected{case}.safetensors"))


@pytest.mark.parametrize("case", CASES)
def test_quantize_gives_reference_indices_exactly(parity_codec, case):
    image = PARITY / f"image{case}.png"
    indices = parity_codec.quantize(image)
    ref = expected(case)["indices"].numpy()
    assert indices.dtype == np.int64
    assert indices.shape == (Image.open(image).height // 16, Image.open(image).width // 16)
    np.testing.assert_array_equal(indices.ravel(), ref)


@pytest.mark.parametrize("case", CASES)
def test_reconstruct_within_one_of_reference(parity_codec, case):
    e = expected(case)
    height, width = e["image_out"].shape[:2]
    indices = e["indices"].numpy().reshape(height // 16, width // 16)
    out = parity_codec.reconstruct(indices, height, width)
    assert out.dtype == np.uint8 and out.shape == (height, width, 3)
    diff = np.abs(out.astype(int) - e["image_out"].numpy().astype(int))
    assert diff.max() <= 1
    assert (diff > 0).sum() <= 0.001 * diff.size  # a handful of round-half-up boundary pixels


@pytest.mark.parametrize("case", CASES)
def test_network_matches_reference_tensors(parity_codec, case):
    """Intermediate tensors at the fixture's suggested tolerances."""
    e = expected(case)
    net = parity_codec.net
    x = torch.from_numpy(np.asarray(Image.open(PARITY / f"image{case}.png").convert("RGB")).copy())
    x = x.permute(2, 0, 1)[None].float() / 255
    idx = e["indices"].reshape(1, *e["z"].shape[-2:])
    with torch.inference_mode():
        assert (net.y_embedder.encoder(x) - e["z"]).abs().max() < 2e-4
        assert (net.y_embedder.decode(idx) - e["cond"]).abs().max() < 1e-4
        assert (net.reconstruct(idx) - e["x_hat"]).abs().max() < 1e-4


@pytest.mark.parametrize("case", CASES)
def test_reference_packing_and_cod_file(parity_codec, case):
    e = expected(case)
    assert pack_indices(e["indices"].numpy(), 8) == (PARITY / f"bitstream{case}.bin").read_bytes()
    data = (PARITY / f"image{case}.cod").read_bytes()
    width, height, payload = bitstream.read_reference_cod(data)
    assert (height, width) == tuple(e["image_out"].shape[:2])
    image = np.asarray(parity_codec.decode_reference(data))
    diff = np.abs(image.astype(int) - e["image_out"].numpy().astype(int))
    assert diff.max() <= 1


def test_batch_of_two_equals_single_images(parity_codec):
    """Batches > 1 give the same result as one image at a time (no batch-1 assumptions)."""
    e = expected("")
    net = parity_codec.net
    a = e["indices"].reshape(12, 8)
    b = torch.flip(a, dims=[0])  # a second, different index map of the same shape
    with torch.inference_mode():
        both = net.reconstruct(torch.stack([a, b]))
        single_a = net.reconstruct(a[None])
        single_b = net.reconstruct(b[None])
    assert (both[0] - single_a[0]).abs().max() < 1e-5
    assert (both[1] - single_b[0]).abs().max() < 1e-5
    assert not torch.allclose(both[0], both[1])
