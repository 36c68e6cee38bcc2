"""The encoder's colour corrections (`cod_lite.colour`): a whole-picture transform (24 bytes) and a
grid of offsets, fitted on known casts, stored exactly, applied by every decode path, sent only
when they pay."""

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
    matrix = colour.fit(colour.region_means(original.astype(np.uint8)), colour.region_means(cast))
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
    assert colour.side_information(image, colour.region_means(image), 1000) == (b"", b"")


def _local_cast(image: np.ndarray) -> np.ndarray:
    """A cast that changes across the picture: red +24 fading to 0 left to right, blue -16 at the top."""
    height, width = image.shape[:2]
    field = np.zeros((height, width, 3))
    field[..., 0] = 24 * (1 - np.arange(width) / width)[None, :]
    field[..., 2] = -16 * (np.arange(height) < height // 3)[:, None]
    return np.clip(image + field, 0, 255).astype(np.uint8)


def test_a_local_cast_is_undone_by_the_grid_and_not_by_one_transform():
    original = (30 + photo(192, 256).astype(np.float64) * 0.7).astype(np.uint8)
    cast = _local_cast(original)
    transform, grid = colour.side_information(original, colour.region_means(cast), payload_bytes=4000)
    assert grid  # the grid pays: it removes what one transform cannot
    corrected = colour.correct(cast, transform, grid)
    only_transform = colour.correct(cast, transform, b"")
    assert metrics.colour_error(original, cast) > 5
    assert metrics.colour_error(original, corrected) < 0.5 * metrics.colour_error(original, only_transform)
    assert len(grid) + 6 <= colour.GRID_MAX_SHARE * 4000
    # a payload too small to carry any grid within GRID_MAX_SHARE gets none
    assert colour.side_information(original, colour.region_means(cast), payload_bytes=40)[1] == b""


def test_grid_chunk_round_trip_and_its_defects():
    rng = np.random.default_rng(3)
    levels = rng.integers(-40, 41, size=(3, 5, 3))
    data = colour.pack_grid(levels, 64, 8)
    offsets, cell = colour.unpack_grid(data, height=150, width=300)  # 3 x 5 cells of 64 px
    assert cell == 64
    np.testing.assert_array_equal(offsets, levels * 8 * colour.GRID_STEP_UNIT)
    defects = {
        "header": data[:2],
        "cannot hold": data[:4],  # far too few codes
        "trailing": data + b"\x80",
        "out of range": colour.pack_grid(np.full((3, 5, 3), 300), 64, 4),
    }
    for message, bad in defects.items():
        with pytest.raises(BitstreamError, match=message):
            colour.unpack_grid(bad, height=150, width=300)
    with pytest.raises(BitstreamError):  # the same chunk read for an image of another size
        colour.unpack_grid(data, height=300, width=300)
    for cell in colour.GRID_CELLS:  # every cell size the encoder may pick is stored exactly
        shape = (*colour.grid_shape(150, 300, cell), 3)
        assert colour.unpack_grid(colour.pack_grid(np.ones(shape), cell, 4), height=150, width=300)[1] == cell


def test_grid_interpolates_between_cell_centres():
    flat = np.full((64, 128, 3), 100, dtype=np.uint8)
    offsets = np.zeros((1, 2, 3))
    offsets[0, 1] = 40  # right cell +40: 0 at the left centre (x 31.5), 40 at the right (x 95.5)
    out = colour.apply_grid(flat, offsets, 64).astype(int) - 100
    assert (out[:, :32] == 0).all() and (out[:, 96:] == 40).all()
    np.testing.assert_array_equal(out[0, 32:96, 0], np.rint(40 * (np.arange(32, 96) + 0.5 - 32) / 64))


def test_codec_streams_carry_it_and_every_decode_path_applies_it(parity_codec):
    image = np.tile(np.asarray(PARITY_IMAGE()), (2, 3, 1))  # 384x384: a payload that can afford a grid
    plain, corrected = parity_codec.encode(image, colour=False), parity_codec.encode(image)
    header = bitstream.parse(corrected)
    assert header.payload == bitstream.parse(plain).payload  # the indices do not change
    expected = parity_codec.reconstruct(*parity_codec.decode_indices(plain))
    assert header.colour and header.colour_grid  # the random-weight parity model is far off in colour: both pay
    assert len(corrected) - len(plain) == 1 + (4 + 1 + 24) + (4 + 1 + len(header.colour_grid))  # count, tag, length, data
    expected = colour.correct(expected, header.colour, header.colour_grid)
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
