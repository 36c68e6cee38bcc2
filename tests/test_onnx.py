"""ONNX export and the ONNX Runtime backend: graphs for every size, equal to the exact torch
network, the same streams, and clear refusals (`cod_lite.export`, `cod_lite.onnx_runtime`)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite import export, onnx_runtime
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet
from cod_lite.weights import save_weights
from cod_lite_cli.main import cli

from .conftest import PARITY


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A small random model with every part the graphs hold (attention in encoder and condition
    decoder, a pixel-head block, a seam refiner), as a weight file."""
    torch.manual_seed(4)
    config = ModelConfig(name="tiny-onnx", codebook_bits=6, hidden_size=32, hidden_size_x=8, num_blocks=3, num_cond_blocks=1,
                         encoder_channels=32, codebook_dim=16, refine_channels=8)
    net = CodLiteNet(config).eval()
    with torch.no_grad():
        net.refine.conv2.weight.normal_(0, 0.05)
    return save_weights(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", config, net.state_dict())


@pytest.fixture(scope="module")
def graphs(tiny_weights, tmp_path_factory):
    return cod_lite.export_onnx(tiny_weights, tmp_path_factory.mktemp("graphs") / "out")


def test_export_writes_checked_graphs_and_their_record(graphs, tiny_weights):
    codec = cod_lite.load_model(tiny_weights, precision="fp32")
    for name in ("encoder.onnx", "decoder.onnx"):
        onnx.checker.check_model(str(graphs / name), full_check=True)
    record = json.loads((graphs / "model.json").read_text())
    assert record["name"] == "tiny-onnx" and record["identity"] == codec.identity.hex() and record["size_unit"] == codec.model_config.size_unit
    assert sorted(p.name for p in graphs.iterdir()) == ["decoder.onnx", "encoder.onnx", "model.json"]  # nothing temporary left


@pytest.mark.parametrize("size", [(32, 16), (48, 80), (272, 64), (544, 560)])  # one window, several, padded windows
def test_graphs_equal_the_exact_network_at_every_size(graphs, tiny_weights, size):
    """Height and width are dynamic: one graph serves sizes it was not traced at."""
    net = cod_lite.load_model(tiny_weights, precision="fp32").net
    image = torch.from_numpy(np.random.default_rng(sum(size)).random((1, 3, *size), dtype=np.float32))
    encoder = onnxruntime.InferenceSession(str(graphs / "encoder.onnx"))
    decoder = onnxruntime.InferenceSession(str(graphs / "decoder.onnx"))
    with torch.inference_mode():
        indices, pixels = net.quantize(image), net.reconstruct(net.quantize(image))
    np.testing.assert_array_equal(encoder.run(None, {"image": image.numpy()})[0], indices.numpy())
    np.testing.assert_allclose(decoder.run(None, {"indices": indices.numpy()})[0], pixels.numpy(), atol=1e-4)


def _cache(graphs, weights) -> None:
    """Put exported graphs where the backend caches them (each export takes ~15 s per graph)."""
    codec = cod_lite.load_model(weights, precision="fp32")
    target = onnx_runtime.graphs_dir(codec.net, codec.weights_sha256)
    shutil.copytree(graphs, target)


def test_the_backend_makes_the_same_streams_and_images(tiny_weights, graphs, isolated_home):
    image = np.asarray(Image.open(PARITY / "image.png").convert("RGB"))[:96, :128]
    exact = cod_lite.load_model(tiny_weights, precision="fp32")
    _cache(graphs, tiny_weights)
    cached = {p.name: p.stat().st_mtime_ns for p in onnx_runtime.graphs_dir(exact.net, exact.weights_sha256).iterdir()}
    runtime = cod_lite.load_model(tiny_weights, backend="onnxruntime")
    assert runtime.precision == "fp32 onnxruntime"
    assert {p.name: p.stat().st_mtime_ns for p in onnx_runtime.graphs_dir(exact.net, exact.weights_sha256).iterdir()} == cached  # reused
    stream = runtime.encode(image)
    np.testing.assert_array_equal(runtime.decode_indices(stream)[0], exact.quantize(image))
    diff = np.abs(np.asarray(runtime.decode(stream)).astype(int) - np.asarray(exact.decode(stream)))
    assert diff.max() <= 1 and diff.mean() < 0.01
    assert cod_lite.decode(stream, tiny_weights, backend="onnxruntime").size == (128, 96)


def test_the_parity_fixture_through_onnxruntime(parity_weights, isolated_home):
    """The authors' layout and reference outputs (tests/data/parity_A): the indices exactly, the
    8-bit image within 1 level (the tolerance of the torch fast path). The backend exports the
    graphs itself the first time, into the model folder."""
    from safetensors.torch import load_file

    expected = load_file(str(PARITY / "expected.safetensors"))
    runtime = cod_lite.load_model(parity_weights, backend="onnxruntime")
    assert len(list((isolated_home / "models" / "onnx").glob("*/model.json"))) == 1
    image = np.asarray(Image.open(PARITY / "image.png").convert("RGB"))
    indices = runtime.quantize(image)
    np.testing.assert_array_equal(indices.reshape(-1), expected["indices"].numpy())
    decoded = runtime.reconstruct(indices, *image.shape[:2]).astype(int)
    assert np.abs(decoded - expected["image_out"].numpy()).max() <= 1


def test_refusals_are_one_line_and_leave_nothing(tiny_weights, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(export, "_export", lambda *a, **k: (_ for _ in ()).throw(cod_lite.InputError("this model cannot be exported")))
    with pytest.raises(cod_lite.InputError, match="cannot be exported"):
        cod_lite.export_onnx(tiny_weights, out)
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(cod_lite.InputError, match=r'pip install "cod-lite\[onnx\]"'):
        onnx_runtime.OnnxRuntimePath(None, "00", torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(cod_lite.InputError, match="unknown backend 'tensorrt'"):
        cod_lite.load_model(tiny_weights, backend="tensorrt")
    with pytest.raises(cod_lite.InputError, match="fp32 graphs"):
        cod_lite.load_model(tiny_weights, backend="onnxruntime", precision="bf16")


def test_cli_export_and_backend(tiny_weights, tmp_path, isolated_home):
    result = CliRunner().invoke(cli, ["export", str(tiny_weights), str(tmp_path / "g")])
    assert result.exit_code == 0 and (tmp_path / "g" / "decoder.onnx").is_file()
    again = CliRunner().invoke(cli, ["export", str(tiny_weights), str(tmp_path / "g")])
    assert again.exit_code == 1 and "replace it with --force" in again.output
    _cache(tmp_path / "g", tiny_weights)
    Image.open(PARITY / "image.png").convert("RGB").crop((0, 0, 64, 48)).save(tmp_path / "p.png")
    args = ["--model", str(tiny_weights), "--backend", "onnxruntime"]
    assert CliRunner().invoke(cli, ["compress", str(tmp_path / "p.png"), str(tmp_path / "p.cod"), *args]).exit_code == 0
    assert CliRunner().invoke(cli, ["decompress", str(tmp_path / "p.cod"), str(tmp_path / "back.png"), *args]).exit_code == 0
    assert Image.open(tmp_path / "back.png").size == (64, 48)


def test_the_deploy_example_decodes_a_stream_without_the_torch_network(tmp_path):
    """examples/decode_onnx.py: container and entropy decoding by cod-lite's reader, the pixels by
    decoder.onnx, the colour side information applied; equal to the codec's decode within 1 level."""
    import runpy

    codec = cod_lite.load_model("cod-lite-s-0.03", precision="fp32")
    image = np.asarray(Image.open(PARITY / "image.png").convert("RGB"))
    stream = codec.encode(image)
    graphs = cod_lite.export_onnx(codec, tmp_path / "graphs")
    assert (graphs / "prior.npz").is_file()
    example = runpy.run_path(str(PARITY.parents[2] / "examples" / "decode_onnx.py"))
    decoded = example["decode"](graphs, stream)
    assert np.abs(decoded.astype(int) - np.asarray(codec.decode(stream))).max() <= 1
