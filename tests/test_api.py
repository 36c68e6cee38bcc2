"""The public API end to end, on the parity model: round trips, sizes, identity, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import cod_lite
from cod_lite import bitstream
from cod_lite.errors import BitstreamError, InputError, ModelNotFoundError
from cod_lite.weights import INT8_MIN_SIZE, INT8_SCALE_PREFIX, load_weights, quantize_int8, read_metadata, save_weights, weights_digest

from .conftest import PARITY


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like test image (gradients + a disc + mild noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) * 127 / max(height + width, 1)], -1)
    img[(y - height / 2) ** 2 + (x - width / 3) ** 2 < (min(height, width) / 4) ** 2] = (200, 40, 90)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (16, 16), (15, 300), (70, 5)])
def test_round_trip_any_size(parity_codec, size):
    image = photo(*size)
    data = parity_codec.encode(image)
    out = cod_lite.decode(data, model=parity_codec.path)
    assert out.size == (size[1], size[0]) and out.mode == "RGB"
    indices, height, width = parity_codec.decode_indices(data)
    np.testing.assert_array_equal(indices, parity_codec.quantize(image))
    assert (height, width) == size


def test_stream_layout_and_rate(parity_codec):
    # the reference packing (the default picks adaptive coding when smaller); colour chunk: test_colour_side_info
    data = parity_codec.encode(PARITY / "image.png", methods=(0,), colour=False)
    header = bitstream.parse(data)
    assert (header.width, header.height, header.method) == (128, 192, 0)
    assert header.model_name == "parity" and header.model_hash == parity_codec.identity
    assert len(header.payload) == 96  # 96 indices x 8 bits, exactly the reference packing
    assert header.payload == (PARITY / "bitstream.bin").read_bytes()
    assert len(data) - len(header.payload) < 40  # container overhead stays small


def test_inputs_path_pil_array_agree(parity_codec):
    path = PARITY / "image.png"
    a = parity_codec.encode(path)
    b = parity_codec.encode(Image.open(path))
    c = parity_codec.encode(np.asarray(Image.open(path).convert("RGB")))
    assert a == b == c
    assert parity_codec.encode(path) == a  # deterministic


def test_thread_count_does_not_change_indices(parity_codec):
    image = photo(64, 96, seed=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = parity_codec.encode(image)
        torch.set_num_threads(2)
        two = parity_codec.encode(image)
    finally:
        torch.set_num_threads(threads)
    assert one == two


def test_decode_finds_model_from_stream_identity(parity_weights, isolated_home):
    folder = cod_lite.user_model_dir()
    folder.mkdir(parents=True)
    shutil.copy(parity_weights, folder / "renamed-file.safetensors")
    assert "parity" in [m.name for m in cod_lite.available_models()]
    data = cod_lite.encode(PARITY / "image.png", model="parity")  # usable by name once installed
    assert cod_lite.decode(data).size == (128, 192)


def test_decode_names_the_missing_model(parity_codec):
    data = parity_codec.encode(photo(16, 16))
    with pytest.raises(ModelNotFoundError, match="made by model 'parity' .* which no cod-lite release has shipped"):
        cod_lite.decode(data)


def test_stream_from_other_weights_is_refused(parity_codec, parity_weights, tmp_path):
    config, state, _ = load_weights(parity_weights)
    state["final_layer.linear.bias"] = state["final_layer.linear.bias"] + 0.01  # same name, other weights
    other = cod_lite.load_model(save_weights(tmp_path / "other.safetensors", config, state))
    data = parity_codec.encode(photo(32, 32))
    with pytest.raises(BitstreamError, match="stream was made with model 'parity'"):
        other.decode(data)


def test_unknown_model_name():
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        cod_lite.load_model("nope")


def test_modulation_cache_follows_dtype(parity_weights):
    config, state, _ = load_weights(parity_weights)
    from cod_lite.models.network import CodLiteNet

    net = CodLiteNet(config)
    net.load_state_dict(state)
    net.eval()
    idx = torch.randint(0, 256, (1, 2, 3))
    with torch.inference_mode():
        ref = net.reconstruct(idx)
        assert net.t0_modulation is not None and net.t0_modulation.dtype == torch.float32
        net.double()
        assert net.t0_modulation.dtype == torch.float64
        out = net.reconstruct(idx)
    assert out.dtype == torch.float64
    assert (out.float() - ref).abs().max() < 1e-4


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 3), np.float32), "dtype float32"),
        (np.zeros((4, 4, 5), np.uint8), r"shape \(4, 4, 5\)"),
    ],
)
def test_bad_arrays(parity_codec, bad, message):
    with pytest.raises(InputError, match=message):
        parity_codec.encode(bad)


def test_not_an_image(parity_codec, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError):
        parity_codec.encode(tmp_path / "notes.txt")


def test_over_pixel_limit(parity_codec, monkeypatch):
    monkeypatch.setenv("CODLITE_MAX_PIXELS", "100")
    with pytest.raises(InputError, match="limit"):
        parity_codec.encode(photo(16, 16))


def test_stream_claiming_huge_size_is_refused(parity_codec, monkeypatch):
    header = bitstream.parse(parity_codec.encode(photo(16, 16)))
    huge = bitstream.StreamHeader(
        model_name=header.model_name, model_hash=header.model_hash, width=2**31 - 1, height=2**31 - 1,
        pad_mode=0, method=0, payload=header.payload,
    )
    with pytest.raises(BitstreamError, match="pixel limit"):
        parity_codec.decode(bitstream.serialize(huge))


def test_reconstruct_checks_its_arguments(parity_codec):
    with pytest.raises(InputError, match="do not fit"):
        parity_codec.reconstruct(np.zeros((3, 3), np.int64), 16, 16)
    with pytest.raises(InputError, match="0..255"):
        parity_codec.reconstruct(np.full((1, 1), 256), 16, 16)


def test_reference_cod_sizes_are_checked_against_the_model_unit():
    codec = cod_lite.load_model("default")  # ds 8: 8-pixel cells, but 16-pixel patches
    data = bitstream.write_reference_cod(24, 24, bytes(9))
    with pytest.raises(BitstreamError, match="not a multiple of 16"):
        codec.decode_reference(data)


def test_a_broken_file_in_the_model_folder_breaks_no_lookup(parity_weights, isolated_home):
    folder = cod_lite.user_model_dir()
    folder.mkdir(parents=True)
    shutil.copy(parity_weights, folder / "good.safetensors")
    bad = folder / "bad.safetensors"
    bad.write_bytes((2).to_bytes(8, "little") + b"[]")  # a header that is JSON but not an object
    with pytest.raises(cod_lite.CheckpointError, match="not a safetensors weight file"):
        cod_lite.load_model(bad)
    assert cod_lite.load_model("parity").name == "parity"


def test_module_functions_accept_a_loaded_codec(parity_codec):
    image = photo(32, 48)
    data = cod_lite.encode(image, model=parity_codec)
    assert data == parity_codec.encode(image)
    assert np.array_equal(np.asarray(cod_lite.decode(data, model=parity_codec)), np.asarray(parity_codec.decode(data)))


def test_int8_storage_is_per_channel_and_checked(parity_weights, tmp_path):
    t = torch.randn(8, 4, 3, 3) * torch.logspace(-3, 1, 8).view(-1, 1, 1, 1)  # channels of very different scale
    q, scale = quantize_int8(t)
    assert q.dtype == torch.int8 and scale.shape == (8,)
    err = (q.float() * scale.float().view(-1, 1, 1, 1) - t).abs().amax((1, 2, 3))
    assert torch.all(err <= scale.float() * 0.5001)  # rounding error only, relative to each channel
    config, state, _ = load_weights(parity_weights)
    path = save_weights(tmp_path / "q.safetensors", config, state, dtype=torch.float16, int8=True)
    _, loaded, _ = load_weights(path)
    assert all(v.dtype == torch.float32 for v in loaded.values()) and loaded.keys() == state.keys()
    big = [k for k, v in state.items() if v.dim() >= 2 and v.numel() >= INT8_MIN_SIZE]
    assert big and all(not torch.equal(loaded[k], state[k]) for k in big[:3])
    tensors = load_file(str(path))
    tensors[INT8_SCALE_PREFIX + big[0]] = tensors[INT8_SCALE_PREFIX + big[0]][:-1]  # scales of the wrong length
    metadata = dict(read_metadata(path), weights_sha256=weights_digest(tensors))  # consistent, yet malformed
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(cod_lite.CheckpointError, match="does not match its scales"):
        load_weights(tmp_path / "bad.safetensors")


def test_decode_and_inspect_take_what_encode_takes(tmp_path):
    """bytes, a path as str or Path, a binary file object; encode picks a model by bpp."""
    from pathlib import Path

    data = cod_lite.encode(photo(32, 48), bpp=0.03, precision="fp32")
    assert cod_lite.inspect(data).model == "cod-lite-s-0.03"
    stream = tmp_path / "x.cod"
    stream.write_bytes(data)
    expected = np.asarray(cod_lite.decode(data))
    for source in (str(stream), Path(stream), bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(np.asarray(cod_lite.decode(source)), expected)
        assert cod_lite.inspect(source).bytes == len(data)
    with open(stream, "rb") as f:
        np.testing.assert_array_equal(np.asarray(cod_lite.decode(f)), expected)
    with open(stream) as f, pytest.raises(cod_lite.InputError, match="binary mode"):
        cod_lite.decode(f)
    with pytest.raises(cod_lite.InputError, match="no such file"):
        cod_lite.decode(tmp_path / "missing.cod")
    with pytest.raises(cod_lite.InputError, match="expected stream bytes"):
        cod_lite.decode(12)
    with pytest.raises(cod_lite.InputError, match="model= or bpp="):
        cod_lite.encode(photo(32, 48), "cod-lite-s-0.5", bpp=0.03)
