"""The encoder's colour correction (`cod_lite.colour`): fitted on known casts, stored in 24 bytes,
applied by every decode path, sent only when it pays."""

from __future__ import annotations

import numpy as np
import pytest

import cod_lite
from cod_lite import bitstream, colour, metrics
from cod_lite.errors import BitstreamError

from .conftest import PARITY
from .test_api import photo


def test_a_gain_and_offset_cast_is_found_and_undone():
    original = 40 + photo(64, 96).astype(np.float64) * 0.6  # mid-range: the cast below does not clip
    cast = np.clip(original * [0.9, 1.0, 1.1] + [12, -5, -20], 0, 255).astype(np.uint8)
    matrix = colour.fit(original.astype(np.uint8), cast)
    assert np.count_nonzero(matrix[:, :3] - np.diag(np.diag(matrix[:, :3]))) == 0  # per channel, never mixed
    undone = colour.apply(cast, matrix)
    assert metrics.colour_error(original.astype(np.uint8), cast) > 5
    assert metrics.colour_error(original.astype(np.uint8), undone) < 1.0


def test_pack_round_trip_is_exact_for_quantized_matrices_and_checks_length():
    matrix = colour.quantized(np.array([[1.1, 0, 0, 3.3], [0, 0.95, 0, -7.7], [0, 0, 1.02, 0.01]]))
    assert len(colour.pack(matrix)) == 24
    np.testing.assert_array_equal(colour.unpack(colour.pack(matrix)), matrix)
    np.testing.assert_allclose(matrix, [[1.1, 0, 0, 3.3], [0, 0.95, 0, -7.7], [0, 0, 1.02, 0.01]], atol=1 / 32)
    with pytest.raises(BitstreamError, match="colour transform of 5 bytes"):
        colour.unpack(b"12345")


def test_nothing_is_sent_when_the_colours_are_right():
    image = photo(48, 64)
    assert colour.side_information(image, image) == b""


def test_codec_streams_carry_it_and_every_decode_path_applies_it(parity_codec):
    image = np.asarray(PARITY_IMAGE())
    plain, corrected = parity_codec.encode(image, colour=False), parity_codec.encode(image)
    header = bitstream.parse(corrected)
    assert header.payload == bitstream.parse(plain).payload  # the indices do not change
    expected = parity_codec.reconstruct(*parity_codec.decode_indices(plain))
    assert len(corrected) - len(plain) == 24 + 6  # the random-weight parity model is far off in colour: it pays
    expected = colour.apply(expected, colour.unpack(header.colour))
    np.testing.assert_array_equal(np.asarray(parity_codec.decode(corrected)), expected)
    np.testing.assert_array_equal(parity_codec.decode_many([corrected])[0], expected)
    np.testing.assert_array_equal(parity_codec.encode_many([image])[0], corrected)
    assert metrics.colour_error(image, expected) <= metrics.colour_error(image, np.asarray(parity_codec.decode(plain)))


def PARITY_IMAGE():  # noqa: N802 - a constant loaded on use
    from PIL import Image

    return Image.open(PARITY / "image.png").convert("RGB")


def test_bundled_default_gains_on_a_cast_photo():
    codec = cod_lite.load_model("default", precision="fp32")
    image = photo(128, 192, seed=4)
    data = codec.encode(image)
    assert len(bitstream.parse(data).colour) == 24
    assert metrics.colour_error(image, np.asarray(codec.decode(data))) + colour.MIN_GAIN <= \
        metrics.colour_error(image, np.asarray(codec.decode(codec.encode(image, colour=False)))) + 1e-9


def test_cli_sends_it_unless_told_not_to_and_info_says_so(tmp_path, parity_weights):
    from click.testing import CliRunner

    from cod_lite_cli.main import cli

    runner = CliRunner()
    for flags, expected in (([], "corrected"), (["--no-colour"], "as decoded")):
        out = tmp_path / f"o{len(flags)}.cod"
        assert runner.invoke(cli, ["compress", str(PARITY / "image.png"), str(out), "--model", str(parity_weights), *flags]).exit_code == 0
        assert bool(bitstream.parse(out.read_bytes()).colour) == (not flags)
        assert f"colour:  {expected}" in runner.invoke(cli, ["info", str(out)]).stdout
