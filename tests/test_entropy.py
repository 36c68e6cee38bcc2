"""Entropy coding of index grids: lossless for every method, deterministic, exact forever, robust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cod_lite
from cod_lite import bitstream
from cod_lite.entropy.coding import METHOD_ADAPTIVE, METHOD_CONTEXT, METHOD_FIXED, METHOD_STATIC, decode_grid, encode_grid
from cod_lite.entropy.prior import IndexPrior
from cod_lite.errors import BitstreamError, CheckpointError

GOLDEN = Path(__file__).parent / "data" / "entropy_golden.npz"
ADAPTIVE_GOLDEN = Path(__file__).parent / "data" / "adaptive_golden.npz"
METHODS = (METHOD_FIXED, METHOD_STATIC, METHOD_CONTEXT, METHOD_ADAPTIVE)


def smooth_grid(rng: np.random.Generator, h: int, w: int, k: int) -> np.ndarray:
    """Spatially correlated indices with a skewed histogram, like a VQ grid of a photo."""
    field = np.kron(rng.normal(size=(h // 4 + 2, w // 4 + 2)), np.ones((4, 4)))[:h, :w] + 0.3 * rng.normal(size=(h, w))
    return np.clip(((field + 3) / 6 * k).astype(np.int64), 0, k - 1)


@pytest.fixture(scope="module", params=[16, 256])
def fitted(request):
    k = request.param
    rng = np.random.default_rng(k)
    grids = [smooth_grid(rng, 24, 32, k) for _ in range(24)]
    return k, IndexPrior.fit(grids, k), rng


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 5), (16, 24)])
@pytest.mark.parametrize("kind", ["uniform", "smooth", "constant"])
def test_round_trip_every_method(fitted, shape, kind):
    k, prior, rng = fitted
    bits = k.bit_length() - 1
    grid = {
        "uniform": rng.integers(0, k, size=shape),
        "smooth": smooth_grid(rng, *shape, k),
        "constant": np.full(shape, k - 1),
    }[kind]
    for method in METHODS:
        got_method, payload = encode_grid(grid, bits, prior, (method,))
        assert got_method == method
        assert np.array_equal(decode_grid(method, payload, shape, bits, prior), grid)


def test_context_prior_beats_static_beats_fixed_on_correlated_grids(fitted):
    k, prior, rng = fitted
    bits = k.bit_length() - 1
    grid = smooth_grid(rng, 48, 64, k)
    sizes = {m: len(encode_grid(grid, bits, prior, (m,))[1]) for m in METHODS}
    assert sizes[METHOD_CONTEXT] < sizes[METHOD_STATIC] < sizes[METHOD_FIXED]
    assert encode_grid(grid, bits, prior) == (METHOD_CONTEXT, encode_grid(grid, bits, prior, (METHOD_CONTEXT,))[1])


def test_uniform_noise_falls_back_to_fixed_length(fitted):
    k, prior, rng = fitted
    grid = rng.integers(0, k, size=(32, 32))
    method, payload = encode_grid(grid, k.bit_length() - 1, prior)
    assert method == METHOD_FIXED
    assert len(payload) == 32 * 32 * (k.bit_length() - 1) // 8


def test_golden_streams_decode_identically_forever():
    """Streams written by cod-lite 0.1: any change to the prior arithmetic or the coder breaks this."""
    golden = np.load(GOLDEN)
    for k in (16, 256):
        prior = IndexPrior.from_arrays({key[len(f"k{k}_prior_") :]: golden[key] for key in golden.files if key.startswith(f"k{k}_prior_")})
        grid = golden[f"k{k}_grid"]
        for method in (METHOD_STATIC, METHOD_CONTEXT):
            payload = golden[f"k{k}_method{method}"].tobytes()
            assert np.array_equal(decode_grid(method, payload, grid.shape, k.bit_length() - 1, prior), grid)
            assert encode_grid(grid, k.bit_length() - 1, prior, (method,))[1] == payload


def test_payload_names_its_prior(fitted):
    k, prior, rng = fitted
    grid = smooth_grid(rng, 8, 8, k)
    _, payload = encode_grid(grid, k.bit_length() - 1, prior, (METHOD_CONTEXT,))
    other = IndexPrior.fit([smooth_grid(rng, 8, 8, k) for _ in range(3)], k)
    with pytest.raises(BitstreamError, match="coded with index prior"):
        decode_grid(METHOD_CONTEXT, payload, grid.shape, k.bit_length() - 1, other)
    with pytest.raises(BitstreamError, match="has no index prior"):
        decode_grid(METHOD_CONTEXT, payload, grid.shape, k.bit_length() - 1, None)
    with pytest.raises(BitstreamError, match="unsupported entropy-coding method 7"):
        decode_grid(7, payload, grid.shape, k.bit_length() - 1, prior)


def test_damaged_payloads_never_crash(fitted):
    """With the CRC bypassed, any payload decodes to valid indices or raises BitstreamError."""
    k, prior, rng = fitted
    shape = (12, 16)
    _, payload = encode_grid(smooth_grid(rng, *shape, k), k.bit_length() - 1, prior, (METHOD_CONTEXT,))
    for trial in range(200):
        data = bytearray(payload)
        if trial % 3 == 0:
            data = data[: rng.integers(0, len(data))]
        elif trial % 3 == 1:
            data[4 + rng.integers(0, len(data) - 4)] ^= 1 << rng.integers(0, 8)
        else:
            data += bytes(rng.integers(0, 256, size=4 * rng.integers(1, 4)).astype(np.uint8))
        for method in METHODS:
            try:
                grid = decode_grid(method, bytes(data), shape, k.bit_length() - 1, prior)
            except BitstreamError:
                continue
            assert grid.shape == shape and grid.min() >= 0 and grid.max() < k


# -- through the codec ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prior_codec(parity_weights, tmp_path_factory) -> cod_lite.Codec:
    folder = tmp_path_factory.mktemp("prior_images")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = np.linspace(0, 255, 192 * 256 * 3).reshape(192, 256, 3)
        image = np.clip(base * rng.uniform(0.3, 1) + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
        cod_lite.image_io.save_image(image, folder / f"{i}.png")
    out = tmp_path_factory.mktemp("with_prior") / "parity_prior.safetensors"
    return cod_lite.load_model(cod_lite.fit_prior(parity_weights, folder, out, progress=False), precision="fp32")  # compared with the fp32 parity codec


def test_fitting_a_prior_keeps_the_model_identity(parity_codec, prior_codec):
    assert prior_codec.identity == parity_codec.identity
    assert prior_codec.prior is not None and parity_codec.prior is None
    image = np.full((64, 80, 3), 90, np.uint8)
    old = parity_codec.encode(image)  # fixed-length: the model without a prior still decodes the other's streams
    assert np.array_equal(np.asarray(prior_codec.decode(old)), np.asarray(parity_codec.decode(old)))


def test_codec_streams_round_trip_and_pick_the_smallest(prior_codec):
    base = np.linspace(0, 255, 192 * 256 * 3).reshape(192, 256, 3)
    image = np.clip(base * 0.7 + np.random.default_rng(9).normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
    data = prior_codec.encode(image)
    header = bitstream.parse(data)
    assert header.method in (METHOD_STATIC, METHOD_CONTEXT)
    fixed = prior_codec.encode(image, methods=(METHOD_FIXED,))
    assert len(data) < len(fixed)
    assert np.array_equal(np.asarray(prior_codec.decode(data)), np.asarray(prior_codec.decode(fixed)))


def test_encoding_is_identical_with_1_and_2_threads(prior_codec):
    image = np.random.default_rng(3).integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [prior_codec.encode(image, methods=(m,)) for m in METHODS]
        torch.set_num_threads(2)
        two = [prior_codec.encode(image, methods=(m,)) for m in METHODS]
    finally:
        torch.set_num_threads(threads)
    assert one == two
    assert one == [prior_codec.encode(image, methods=(m,)) for m in METHODS]


def test_tampered_prior_in_weight_file_is_refused(prior_codec, tmp_path):
    from safetensors.torch import load_file, save_file

    from cod_lite.weights import read_metadata

    tensors = load_file(str(prior_codec.path))
    tensors["prior.weights"] = tensors["prior.weights"] + 1
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=read_metadata(prior_codec.path))
    with pytest.raises(CheckpointError, match="index prior does not match"):
        cod_lite.load_model(bad)


def test_cli_fit_prior_and_info(parity_weights, tmp_path):
    import subprocess

    folder = tmp_path / "imgs"
    folder.mkdir()
    cod_lite.image_io.save_image(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8), folder / "a.png")
    out = tmp_path / "m.safetensors"
    run = subprocess.run(["codlite", "fit-prior", str(parity_weights), str(folder), "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "index prior" in run.stdout
    again = subprocess.run(["codlite", "fit-prior", str(parity_weights), str(folder), "-o", str(out)], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
    empty = subprocess.run(["codlite", "fit-prior", str(parity_weights), str(tmp_path / "nothing"), "-o", str(tmp_path / "x.safetensors")], capture_output=True, text=True)
    assert empty.returncode != 0 and "no images" in empty.stderr


@pytest.mark.parametrize("method", [METHOD_STATIC, METHOD_CONTEXT])
def test_the_most_compressible_grid_still_meets_the_payload_floor(method):
    """A constant grid of the likeliest index is the shortest payload the bundled prior can make;
    it decodes, and a payload cut below the floor is refused before any decoding."""
    from cod_lite.entropy.coding import min_payload_bytes

    prior = cod_lite.load_model("default").prior
    likeliest = int(np.argmax(prior.static_frequencies()))
    grid = np.full((300, 420), likeliest, dtype=np.int64)
    _, payload = encode_grid(grid, 8, prior, (method,))
    assert len(payload) >= min_payload_bytes(grid.size, 256) > 100
    np.testing.assert_array_equal(decode_grid(method, payload, grid.shape, 8, prior), grid)
    with pytest.raises(BitstreamError, match="too short"):
        decode_grid(method, payload[:8], (3000, 4200), 8, prior)


def test_chunked_context_coding_equals_one_table_per_pass(fitted, monkeypatch):
    """Frequencies are built CHUNK positions at a time (bounded memory); the bytes do not depend on it."""
    from cod_lite.entropy import coding

    k, prior, rng = fitted
    grid = smooth_grid(rng, 90, 130, k)
    bits = k.bit_length() - 1
    _, whole = encode_grid(grid, bits, prior, (METHOD_CONTEXT,))
    monkeypatch.setattr(coding, "CHUNK", 97)
    _, chunked = encode_grid(grid, bits, prior, (METHOD_CONTEXT,))
    assert chunked == whole
    np.testing.assert_array_equal(decode_grid(METHOD_CONTEXT, whole, grid.shape, bits, prior), grid)


def test_adaptive_streams_decode_identically_forever():
    """Method-3 streams written on 2026-12-06: any change to the adaptive tables breaks this."""
    golden = np.load(ADAPTIVE_GOLDEN)
    for k in (16, 256):
        grid, payload = golden[f"k{k}_grid"], golden[f"k{k}_payload"].tobytes()
        assert np.array_equal(decode_grid(METHOD_ADAPTIVE, payload, grid.shape, k.bit_length() - 1, None), grid)
        assert encode_grid(grid, k.bit_length() - 1, None, (METHOD_ADAPTIVE,))[1] == payload


def test_models_without_a_prior_get_adaptive_coding_when_it_saves(fitted):
    k, _, rng = fitted
    bits = k.bit_length() - 1
    grid = smooth_grid(rng, 48, 64, k)
    method, payload = encode_grid(grid, bits, None)  # no prior: fixed-length or adaptive
    assert method == METHOD_ADAPTIVE and len(payload) < grid.size * bits / 8
    noise = rng.integers(0, k, size=(16, 16))
    assert encode_grid(noise, bits, None)[0] == METHOD_FIXED  # nothing to learn: the reference packing


def test_adaptive_payload_floor_refuses_a_tiny_stream_for_a_huge_grid():
    with pytest.raises(BitstreamError, match="too short"):
        decode_grid(METHOD_ADAPTIVE, bytes(8), (3000, 4000), 8, None)
