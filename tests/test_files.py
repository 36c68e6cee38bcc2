"""`cod_lite.files`: the per-file work of `codlite compress`/`decompress` as library calls, and the
CLI built on the public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cod_lite
from cod_lite import bitstream

from .conftest import PARITY
from .test_cli_conventions import invoke

CLI_SOURCES = sorted((Path(__file__).parent.parent / "cli").glob("*.py"))


def test_compress_file_and_decompress_file_round_trip_with_metadata(tmp_path, parity_codec):
    source = tmp_path / "in.jpg"
    Image.open(PARITY / "image.png").save(source, icc_profile=b"fake icc" * 8)
    about = cod_lite.compress_file(source, tmp_path / "s.cod", parity_codec, metadata="icc")
    data = (tmp_path / "s.cod").read_bytes()
    assert (about.width, about.height, about.bytes) == (128, 192, len(data))
    assert bitstream.parse(data).metadata == {"icc": b"fake icc" * 8}
    size = cod_lite.decompress_file(tmp_path / "s.cod", tmp_path / "out.png", model=parity_codec)
    assert size == (128, 192)
    written = Image.open(tmp_path / "out.png")
    assert written.info.get("icc_profile") == b"fake icc" * 8
    np.testing.assert_array_equal(np.asarray(written), np.asarray(parity_codec.decode(data)))
    cod_lite.decompress_file(tmp_path / "s.cod", tmp_path / "bare.png", model=parity_codec, metadata="none")
    assert "icc_profile" not in Image.open(tmp_path / "bare.png").info


def test_targets_are_checked_before_any_work_and_never_replaced(tmp_path, parity_codec):
    (tmp_path / "s.cod").write_bytes(b"keep me")
    with pytest.raises(cod_lite.OutputError, match="exists"):
        cod_lite.compress_file(PARITY / "image.png", tmp_path / "s.cod", parity_codec)
    assert (tmp_path / "s.cod").read_bytes() == b"keep me"
    with pytest.raises(cod_lite.InputError, match="unknown suffix"):
        cod_lite.decompress_file(tmp_path / "missing.cod", tmp_path / "x.gifx")  # format first, before reading
    with pytest.raises(cod_lite.InputError, match="needs a model"):
        cod_lite.decompress_file(tmp_path / "s.cod", tmp_path / "x.png", reference_format=True)
    assert not (tmp_path / "x.png").exists()


def test_cli_imports_only_the_public_api():
    """cli/ uses `cod_lite`, `cod_lite.files` and `cod_lite.train` (training), and of those only
    the names they export."""
    import cod_lite.files
    import cod_lite.train

    public = {"cod_lite": set(cod_lite.__all__), "cod_lite.files": set(cod_lite.files.__all__), "cod_lite.train": set(cod_lite.train.__all__)}
    imported: set[str] = set()
    for source in CLI_SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "cod_lite":
                imported.add(node.module)
                assert {alias.name for alias in node.names} <= public.get(node.module, set()), (source.name, node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.split(".")[0] == "cod_lite")
    assert imported == set(public)


def test_a_seed_beyond_the_samplers_range_is_one_line(parity_weights, tmp_path):
    assert invoke("compress", PARITY / "image.png", tmp_path / "s.cod", "--model", parity_weights).exit_code == 0
    result = invoke("decompress", tmp_path / "s.cod", tmp_path / "o.png", "--seed", 2**63)
    assert result.exit_code != 0 and "is not in the range" in result.stderr
    assert not (tmp_path / "o.png").exists()
