"""The ONNX Runtime backend (`load_model(..., backend="onnxruntime")`, `--backend onnxruntime`):
a codec's two network phases through ONNX Runtime sessions instead of PyTorch.

The graphs (`cod_lite.export`) are exported once per model identity into the user model folder's
`onnx/` and reused; everything around the networks (padding, tiling of very large images, entropy
coding, colour side information, multi-step sampling) stays the codec's, so the streams and the
API are the torch backend's. Needs the `onnx` extra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .export import FILES, write_graphs
from .models.network import CodLiteNet

BACKENDS = ("torch", "onnxruntime")


def graphs_dir(net: CodLiteNet, weights_sha256: str) -> Path:
    from .zoo import user_model_dir

    return user_model_dir() / "onnx" / f"{net.config.name}-{weights_sha256[:16]}"


class OnnxRuntimePath:
    """`quantize` / `reconstruct` of a network through ONNX Runtime, same tensors in and out as
    the torch paths (CPU tensors; results moved to the input's device)."""

    def __init__(self, net: CodLiteNet, weights_sha256: str, device: torch.device) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise InputError('the onnxruntime backend needs onnxruntime: pip install "cod-lite[onnx]"') from None
        folder = graphs_dir(net, weights_sha256)
        if not all((folder / name).is_file() for name in FILES):
            write_graphs(net, weights_sha256, folder)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise InputError("device 'cuda' with the onnxruntime backend needs onnxruntime-gpu (its CUDA execution provider)")
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.encoder = onnxruntime.InferenceSession(str(folder / "encoder.onnx"), options, providers=providers)
        self.decoder = onnxruntime.InferenceSession(str(folder / "decoder.onnx"), options, providers=providers)

    def quantize(self, image01: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, H/ds, W/ds) int64 indices, image by image."""
        out = [self.encoder.run(None, {"image": np.ascontiguousarray(x[None].float().cpu().numpy())})[0] for x in image01]
        return torch.from_numpy(np.concatenate(out)).to(image01.device)

    def reconstruct(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, 3, h*ds, w*ds) float32 in [-1, 1] (not clamped)."""
        out = [self.decoder.run(None, {"indices": np.ascontiguousarray(i[None].cpu().numpy().astype(np.int64))})[0] for i in indices]
        return torch.from_numpy(np.concatenate(out)).to(indices.device)
