"""The networks as ONNX graphs, for engines without PyTorch (ONNX Runtime, TensorRT, the browser).

    cod_lite.export_onnx("default", "out/")   # out/encoder.onnx, out/decoder.onnx, out/model.json

- `encoder.onnx`: `image` (1, 3, H, W) float32 in [0, 1], H and W multiples of the model's size
  unit -> `indices` (1, H/ds, W/ds) int64: the encoder and the nearest-codeword search.
- `decoder.onnx`: `indices` (1, h, w) int64 -> `image` (1, 3, h*ds, w*ds) float32 in [-1, 1],
  not clamped: the one-step decoder at t = 0 (multi-step sampling stays in PyTorch). To 8 bits
  as the codec does: floor((x + 1) * 127.5 + 0.5), clipped to 0..255.
- `prior.npz` (models with an index prior): the entropy coder's tables, which decoding a stream
  needs besides the decoder.
- `model.json`: the model's name, identity (what streams name), config, the padding rule
  (edge-pad bottom/right to a multiple of `size_unit`, crop the output back) and the graphs'
  input/output names.

Height and width are dynamic: the windowed attention is written without a branch on the grid's
size for export (`condition_codec.exportable_attention`), and the t = 0 modulation is a constant
of the decoder graph. The stream never depends on the engine: its indices and entropy tables are
integers, so a stream decoded through ONNX Runtime is the same stream.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .entropy.prior import IndexPrior
from .errors import InputError, OutputError, option
from .models.network import CodLiteNet

FILES = ("encoder.onnx", "decoder.onnx", "model.json")
OPSET = 18


class _Encoder(nn.Module):
    def __init__(self, net: CodLiteNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.quantize(image)


class _Decoder(nn.Module):
    """`CodLiteNet.reconstruct` with its cached t = 0 modulation as a buffer of the graph."""

    def __init__(self, net: CodLiteNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("modulation", net._t0_modulation().detach().clone())

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.net.decode_codewords(self.net.y_embedder.bottleneck.lookup(indices), self.modulation)


def export_onnx(model: "str | os.PathLike | object", out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write encoder.onnx, decoder.onnx and model.json for `model` (a name, a weight file or a
    `Codec`) into `out_dir`, checked with onnx.checker; all three appear together or not at all.
    Needs the `onnx` extra (onnx, onnxscript)."""
    from .codec import Codec, load_model

    codec = model if isinstance(model, Codec) else load_model(model, precision="fp32")
    target = Path(out_dir)
    existing = [name for name in FILES if (target / name).exists()]
    if existing and not overwrite:
        raise OutputError(f"'{target / existing[0]}' already exists; replace it with {option('--force', 'overwrite=True')}")
    return write_graphs(codec.net, codec.weights_sha256, target, codec.prior)


def write_graphs(net: CodLiteNet, weights_sha256: str, target: Path, prior: "IndexPrior | None" = None) -> Path:
    """The files of `export_onnx` for a loaded network (and its index prior, which entropy
    decoding needs: prior.npz), moved into `target` together."""
    try:
        import onnx
        import onnxscript  # noqa: F401 - the exporter's dependency: fail here with the hint
    except ImportError:
        raise InputError('ONNX export needs onnx and onnxscript: pip install "cod-lite[onnx]"') from None
    net = net.eval()
    config = net.config
    unit, ds = config.size_unit, config.ds
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        tmp_dir = Path(tmp)
        side = 4 * unit  # several attention windows' worth on the latent grid: every code path traced
        rows, cols = torch.export.Dim("rows", min=1, max=4096), torch.export.Dim("cols", min=1, max=4096)
        image = torch.rand(1, 3, side, side + unit)
        indices = torch.randint(0, config.codebook_size, (1, side // ds, (side + unit) // ds))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            _export(_Encoder(net).eval(), (image,), "image", "indices", {"image": {2: rows * unit, 3: cols * unit}}, tmp_dir / "encoder.onnx")
            _export(_Decoder(net).eval(), (indices,), "indices", "image", {"indices": {1: rows * (unit // ds), 2: cols * (unit // ds)}},
                    tmp_dir / "decoder.onnx")
        for name in FILES[:2]:
            onnx.checker.check_model(str(tmp_dir / name), full_check=True)
        record = {
            "name": config.name, "identity": weights_sha256[:16], "weights_sha256": weights_sha256,
            "config": config.to_dict(), "size_unit": unit, "ds": ds,
            "padding": "edge-pad the image bottom/right to a multiple of size_unit; crop the decoded image back",
            "encoder": {"input": "image (1, 3, H, W) float32 in [0, 1]", "output": "indices (1, H/ds, W/ds) int64"},
            "decoder": {"input": "indices (1, h, w) int64", "output": "image (1, 3, h*ds, w*ds) float32 in [-1, 1]; 8 bits: floor((x + 1) * 127.5 + 0.5) clipped"},
            "opset": OPSET,
        }
        names = list(FILES)
        if prior is not None:
            np.savez(tmp_dir / "prior.npz", **prior.to_arrays())
            names.insert(2, "prior.npz")
            record["prior"] = "prior.npz: the index prior's arrays (cod_lite.entropy.prior.IndexPrior.from_arrays)"
        (tmp_dir / "model.json").write_text(json.dumps(record, indent=2) + "\n")
        for name in names:  # model.json last: its presence means a complete export
            os.replace(tmp_dir / name, target / name)
    return target


def _export(module: nn.Module, args: tuple, input_name: str, output_name: str, dynamic: dict, path: Path) -> None:
    try:
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=OPSET, dynamic_shapes=dynamic, input_names=[input_name],
            output_names=[output_name], optimize=False, verbose=False,
        )
    except Exception as e:  # noqa: BLE001 - the exporter fails in many ways; one line says which model part
        raise InputError(f"this model cannot be exported to ONNX ({path.stem}): {str(e).splitlines()[0][:200]}") from None
    program.save(str(path))
