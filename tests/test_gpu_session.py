"""The prepared GPU session on CPU: the device command itself (wheel install into a target folder,
then the driver) for a few steps, the $OUT layout, and the int8 perceptual training pack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import cod_lite
from cod_lite.errors import CheckpointError, ModelNotFoundError
from cod_lite.perceptual import LPIPS
from cod_lite.perceptual.weights import PACK_FOLDER
from cod_lite.train.data import write_crop_set
from tools.gpu_session import OUT_FILES, build_perceptual, check_total, session_command
from cod_lite.weights import load_weights

from .conftest import write_photos

ROOT = Path(__file__).parents[1]


def tiny_wheel(folder: Path) -> Path:
    """A real (pure-Python) wheel: what the command installs must import from the target folder."""
    path = folder / "h3probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("h3probe/__init__.py", "VALUE = 41 + 1\n")
        zf.writestr("h3probe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: h3probe\nVersion: 1.0\n")
        zf.writestr("h3probe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("h3probe-1.0.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="module")
def carry(tmp_path_factory, weights_dir) -> Path:
    root = tmp_path_factory.mktemp("carry")
    photos = write_photos(tmp_path_factory.mktemp("photos"), 2, 96)
    write_crop_set(photos, root / "crops", size=64, max_bytes=200_000)
    (root / "wheels").mkdir()
    tiny_wheel(root / "wheels")
    build_perceptual(root / "home", weights_dir)
    return root


def test_pack_is_used_only_when_asked_and_stays_close(carry, weights_dir):
    folder = carry / "home" / "perceptual"
    assert not (folder / "vgg16.safetensors").exists() and (folder / PACK_FOLDER / "vgg16.int8.safetensors").is_file()
    with pytest.raises(ModelNotFoundError):
        LPIPS("vgg", cache_dir=folder)  # what a metric does: never the pack
    torch.manual_seed(0)
    x, y = torch.rand(2, 2, 3, 64, 64) * 2 - 1
    packed = LPIPS("vgg", cache_dir=folder, allow_pack=True)(x, y)
    exact = LPIPS("vgg", cache_dir=weights_dir)(x, y)
    assert torch.allclose(packed, exact, atol=5e-3) and not torch.equal(packed, exact)


def test_damaged_pack_is_refused(carry, tmp_path, weights_dir):
    home = tmp_path / "home"
    build_perceptual(home, weights_dir)
    packed = home / "perceptual" / PACK_FOLDER / "alexnet.int8.safetensors"
    data = bytearray(packed.read_bytes())
    data[-1] ^= 1
    packed.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        LPIPS("alex", cache_dir=home / "perceptual", allow_pack=True)


def test_carry_over_the_limit_fails_clearly():
    with pytest.raises(cod_lite.CodLiteError, match="over 64 MiB"):
        check_total(63 * 2**20, margin_mb=4)


@pytest.mark.slow
def test_session_command_on_cpu(carry, tmp_path):
    out, site = tmp_path / "out", tmp_path / "site"
    out.mkdir()
    extra = (f"--device cpu --batch-size 2 --crop 64 --precision bf16 --max-steps 2 --log-every 1 --no-checks "
             f"--jobs cod-lite-s-0.125,cod-lite-s-0.008 --work {tmp_path / 'work'}")
    command = session_command(str(carry), site=str(site), python=sys.executable, minutes=3, extra=extra)
    assert len(session_command()) < 2000
    env = dict(os.environ, OUT=str(out), OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (site / "h3probe" / "__init__.py").is_file()  # the carried wheel went into the target, no index
    files = sorted(p.name for p in out.iterdir())
    assert files == ["cod-lite-s-0.008.safetensors", "cod-lite-s-0.125.safetensors", "log", "records.json", "train.jsonl"]
    assert len(files) <= OUT_FILES
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [(r["job"], r["step"]) for r in lines] == [("cod-lite-s-0.125", 1), ("cod-lite-s-0.125", 2), ("cod-lite-s-0.008", 1), ("cod-lite-s-0.008", 2)]
    assert all(r["s_step"] > 0 and r["img_s"] > 0 and np.isfinite(r["total"]) for r in lines)
    records = json.loads((out / "records.json").read_text())
    assert records["cod-lite-s-0.125"]["steps"] == 2 and records["cod-lite-s-0.008"]["stage"] == "pretrain"
    bundled, _, _ = load_weights(ROOT / "cod_lite" / "zoo" / "weights" / "cod-lite-s-0.125.safetensors")
    config, state, meta = load_weights(out / "cod-lite-s-0.125.safetensors")
    settings = meta["info"]["settings"]
    recorded = json.loads((ROOT / "cod_lite" / "zoo" / "weights" / "cod-lite-s-0.125.json").read_text())["training"]["settings"]
    assert config == bundled and settings["perceptual_pack"]
    # the continuation keeps the record's objective and whether the encoder was frozen (the
    # 2026-12-06 default trained its encoder too); never refiner-only on a GPU
    assert settings["freeze_encoder"] == bool(recorded["freeze_encoder"] or recorded["refiner_only"])
    assert not settings["refiner_only"] and settings["seam"] == recorded["seam"] and settings["colour"] == recorded["colour"]
    stored = load_file(str(out / "cod-lite-s-0.125.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    new, _, new_meta = load_weights(out / "cod-lite-s-0.008.safetensors")
    assert new.ds == 32 and new_meta["info"]["steps"] == 2 and new_meta["sampling"]  # still a multi-step model
    for name in ("cod-lite-s-0.125", "cod-lite-s-0.008"):
        codec = cod_lite.load_model(out / f"{name}.safetensors")
        image = np.asarray(Image.open(carry / "crops" / "crop_000000.jpg"))
        assert codec.decode(codec.encode(image)).size == (64, 64)
