"""Encoder effort (`cod_lite.effort`): a search for indices that decode closer to the image, which
every unchanged decoder reads; effort 0 is today's encoder byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite import effort, tiling
from cod_lite_cli.main import cli

from .conftest import PARITY


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.asarray(Image.open(PARITY / "image.png").convert("RGB"))[:64, :96]


def _objective(codec, image, stream) -> float:
    decoded = torch.from_numpy(np.asarray(codec.decode(stream)).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return float(effort.objective(decoded, tiling.image_tensor(image, torch.device("cpu")) * 2 - 1))


def test_effort_zero_is_the_nearest_codeword_encoder(parity_codec, image):
    assert parity_codec.encode(image, effort=0) == parity_codec.encode(image)
    indices = parity_codec.quantize(image)
    assert parity_codec.searched(image, indices, 0) is indices


def test_the_search_never_scores_worse_and_any_decoder_reads_it(parity_codec, parity_weights, image):
    plain = parity_codec.encode(image, colour=False)
    searched = parity_codec.encode(image, colour=False, effort=2)
    assert searched != plain  # it moved some indices
    assert _objective(parity_codec, image, searched) <= _objective(parity_codec, image, plain) + 1e-6
    # an unchanged decoder (another precision, a freshly loaded codec) reads the stream
    assert np.asarray(cod_lite.load_model(parity_weights, precision="fp32").decode(searched)).shape == image.shape
    batched = parity_codec.encode_many([image, image], colour=False, effort=2)
    assert batched[0] == batched[1] and cod_lite.inspect(batched[0]).model == cod_lite.inspect(searched).model


def test_bad_effort_and_too_little_memory_are_refused(parity_weights, image, tmp_path):
    codec = cod_lite.load_model(parity_weights)
    for bad in (-1, 4, 1.5, True):
        with pytest.raises(cod_lite.InputError, match="effort must be 0-3"):
            codec.encode(image, effort=bad)
    small = cod_lite.load_model(parity_weights, max_memory="1M")
    with pytest.raises(cod_lite.InputError, match="effort 1 searches through the whole decoder"):
        small.encode(image, effort=1)
    Image.fromarray(image).save(tmp_path / "p.png")
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "p.png"), str(tmp_path / "p.cod"), "--model", str(parity_weights), "--effort", "1"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(cli, ["convert", str(tmp_path), str(tmp_path / "out"), "-d", "--effort", "2"])
    assert bad.exit_code == 1 and "when compressing" in bad.output
