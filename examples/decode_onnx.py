"""Decode a .cod stream with ONNX Runtime: no PyTorch network runs, only decoder.onnx.

    codlite export default graphs/                        # once: encoder.onnx, decoder.onnx, prior.npz, model.json
    python examples/decode_onnx.py graphs/ photo.cod photo.png

The container, the entropy decoding and the colour side information are read with cod-lite's own
reader (`cod_lite.container`, `cod_lite.colour`: integers and numpy; importing cod_lite still
imports torch, which is never asked to run the network here). See docs/deploy.md.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

from cod_lite import colour
from cod_lite.container import read_stream
from cod_lite.entropy.prior import IndexPrior
from cod_lite.models.config import ModelConfig


def decode(graphs: Path, data: bytes) -> np.ndarray:
    record = json.loads((graphs / "model.json").read_text())
    config = ModelConfig.from_dict(record["config"])
    prior = IndexPrior.from_arrays(dict(np.load(graphs / "prior.npz"))) if (graphs / "prior.npz").is_file() else None
    header, indices = read_stream(data, config, bytes.fromhex(record["identity"]), prior)  # checks the stream is this model's
    session = onnxruntime.InferenceSession(str(graphs / "decoder.onnx"), providers=["CPUExecutionProvider"])
    x = session.run(None, {"indices": indices[None].astype(np.int64)})[0][0]  # (3, h*ds, w*ds) in [-1, 1]
    pixels = np.clip(np.floor((x + 1) * 127.5 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    pixels = np.ascontiguousarray(pixels[: header.height, : header.width])  # the padding rule of model.json
    return colour.correct(pixels, header.colour, header.colour_grid)  # the encoder's colour side information


if __name__ == "__main__":
    graphs, stream, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    Image.fromarray(decode(graphs, stream.read_bytes())).save(out)
    print(f"{out}: decoded with {graphs / 'decoder.onnx'}")
