"""The compiled fast path (`load_model(compile=True)`) against eager fp32 on a tiny random model.

Compiling takes a while on a CPU (about 30 s here with a warm inductor cache, minutes cold), so
one small image serves every check.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cod_lite.codec import Codec
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet

SAMPLE = Path(__file__).parents[1] / "examples" / "sample.png"


@pytest.fixture(scope="module")
def codecs() -> tuple[Codec, Codec]:
    torch.manual_seed(0)
    config = ModelConfig(name="tiny", codebook_bits=6, hidden_size=32, hidden_size_x=8, num_blocks=2, num_cond_blocks=1, encoder_channels=32, codebook_dim=16)
    net = CodLiteNet(config)
    return Codec(net, "00" * 32), Codec(copy.deepcopy(net), "00" * 32, compile=True)


@pytest.mark.slow
def test_compiled_matches_eager(codecs):
    eager, fast = codecs
    image = np.asarray(Image.open(SAMPLE).convert("RGB"))[:64, :96]
    indices = fast.quantize(image)
    np.testing.assert_array_equal(indices, eager.quantize(image))
    diff = np.abs(fast.reconstruct(indices, 64, 96).astype(int) - eager.reconstruct(indices, 64, 96))
    assert diff.max() <= 1
    assert fast.is_compiled and not eager.is_compiled
    # a second image of the same size reuses the compiled graphs: same answers again
    flipped = np.ascontiguousarray(image[::-1])
    np.testing.assert_array_equal(fast.quantize(flipped), eager.quantize(flipped))
