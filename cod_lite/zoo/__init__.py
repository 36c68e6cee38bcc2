"""Model zoo: names -> weight files, from the package's bundled models and the user's model folder.

A model's name is the one recorded in its weight file (not the file name), so a stream that
names its model can find it wherever it was installed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, InputError, ModelNotFoundError, option
from ..fileio import data_home
from ..models.config import ModelConfig
from ..weights import read_metadata

BUNDLED_DIR = Path(__file__).parent / "weights"
# The middle of the bundled rates; `model="default"` everywhere means this one.
DEFAULT_MODEL = "cod-lite-s-0.125"
# Bundled models that make no new streams, and why: the weights stay bundled, so every stream they
# made still decodes (the registry's promise), but no user should pick them for new ones.
RETIRED = {
    "cod-lite-s-0.5": "AVIF beats it at its rate on every perceptual measure; for that rate use the authors' official:0.5",
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    origin: str  # "bundled" or "user"
    config: ModelConfig
    weights_sha256: str

    @property
    def is_default(self) -> bool:
        """Whether this is what `model="default"` loads (the bundled DEFAULT_MODEL)."""
        return self.origin == "bundled" and self.name == DEFAULT_MODEL

    @property
    def retired(self) -> str | None:
        """Why these weights make no new streams (they still decode theirs), or None."""
        return retirement(self.name, self.weights_sha256)

    @property
    def kodak_rates(self) -> dict[str, float] | None:
        """The measured Kodak rates of these weights (`measured_rates`), if recorded."""
        return measured_rates(self)


def measured_rates(info: ModelInfo) -> dict[str, float] | None:
    """The Kodak rates (bits per pixel: min, mean, max) in a model's JSON record, if measured for
    exactly these weights (`tools/measure_rates.py`); None otherwise."""
    try:
        rates = json.loads(info.path.with_suffix(".json").read_text())["kodak_bpp"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rates if isinstance(rates, dict) and rates.get("weights_sha256") == info.weights_sha256 else None


def retirement(name: str, weights_sha256: str) -> str | None:
    """Why the model `name` with these weights makes no new streams, or None: released weights of
    a RETIRED name (a model of one's own that reuses the name is not theirs)."""
    from . import registry

    return RETIRED.get(name) if registry.lookup(weights_sha256) is not None else None


def user_model_dir() -> Path:
    """`models/` in the data home (`$CODLITE_HOME`, else the platform's user data folder)."""
    return data_home() / "models"


def _describe(path: Path, origin: str) -> ModelInfo | None:
    try:
        meta = read_metadata(path)
        config = ModelConfig.from_dict(json.loads(meta["config"]))
        return ModelInfo(config.name, path, origin, config, meta["weights_sha256"])
    except (CheckpointError, KeyError, ValueError, TypeError):
        return None  # not ours, or damaged: it is simply not offered as a model


def available_models() -> list[ModelInfo]:
    """Every usable model: the user's folder first (it may shadow a bundled name), then bundled."""
    found = []
    for origin, folder in (("user", user_model_dir()), ("bundled", BUNDLED_DIR)):
        if folder.is_dir():
            for path in sorted(folder.glob("*.safetensors")):
                info = _describe(path, origin)
                if info is not None:
                    found.append(info)
    return found


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A weight-file path for a model name, the alias 'default', or a path."""
    text = os.fspath(name_or_path)
    name = DEFAULT_MODEL if text == "default" else text
    if name.startswith("official:"):
        from .hub import fetch

        return fetch(name)
    for info in available_models():
        if info.name == name:
            return info.path
    path = Path(text)
    if path.is_file():
        return path
    names = ", ".join(sorted({i.name for i in available_models()})) or "none"
    raise ModelNotFoundError(f"no model named '{name}' and no such file (available: {names})")


def find_by_identity(name: str, hash_prefix: bytes) -> Path:
    """The weight file whose sha256 starts with the stream's hash (installed, or fetched earlier
    from the release archive); the name only helps the message, which says what to get."""
    from . import registry

    for info in available_models():
        if bytes.fromhex(info.weights_sha256).startswith(hash_prefix):
            return info.path
    entry = registry.lookup(hash_prefix)
    if entry is not None:
        path = registry.installed(entry)
        if path is not None:
            return path
        replaced = f", replaced on a later date by {entry.replaced_by[:16]}" if entry.replaced_by else ""
        raise ModelNotFoundError(
            f"this stream was made by {entry.model} {entry.identity} (shipped in cod-lite {entry.release}, {entry.date}{replaced}), "
            f"whose weights are not installed; {registry.fetch_hint(entry)}"
        )
    raise ModelNotFoundError(
        f"this stream was made by model '{name}' (weights {hash_prefix.hex()}), which no cod-lite release has shipped: "
        "a model of your own or an official one; install its weight file in the model folder, "
        f"import the authors' checkpoint (codlite import-official), or pass the file with {option('--model FILE', 'model=FILE')}"
    )


def bundled_range() -> tuple[float, float]:
    """The lowest and highest nominal rate of the bundled models offered for new streams (bits per pixel)."""
    rates = [i.config.nominal_bpp for i in _offered()]
    if not rates:
        raise ModelNotFoundError("no bundled models found (is the package installed completely?)")
    return min(rates), max(rates)


def model_for_bpp(target: float) -> str:
    """The bundled model whose nominal rate is closest to `target` bits per pixel, on a log scale
    (0.06 is nearer 0.03 than 0.125): what `--bpp` picks. Actual rates run 5-30 % below nominal
    (entropy coding), docs/models.md. A target beyond half the lowest or twice the highest
    bundled rate is refused: no bundled model comes near it."""
    if not (target > 0 and math.isfinite(target)):
        raise InputError(f"target bits per pixel must be a positive number, got {target}")
    low, high = bundled_range()
    if target > high * 2:
        official = option("--model official:0.5", "model='official:0.5'")
        raise InputError(f"no bundled model codes near {target:g} bits per pixel (they make {low:.2g}-{high:.2g}): "
                         f"use the authors' model for that rate, {official} (downloaded once)")
    if target < low / 2:
        raise InputError(
            f"no bundled model codes near {target:g} bits per pixel: give a rate in {low / 2:.2g}-{high * 2:.2g} "
            f"(the bundled models make {low:.2g}-{high:.2g}; the authors' official:0.0039 goes lower)"
        )
    return min(_offered(), key=lambda i: (abs(math.log(i.config.nominal_bpp / target)), i.name)).name


def _offered() -> list[ModelInfo]:
    """The bundled models offered for new streams (not retired)."""
    return [i for i in available_models() if i.origin == "bundled" and i.retired is None]


def model_for_quality(quality: float) -> str:
    """The bundled model for a quality of 0-100 (as cwebp's -q, Pillow's quality=): 0 the lowest
    bundled rate, 100 the highest, evenly on a log scale between."""
    if not 0 <= quality <= 100:
        raise InputError(f"quality must be 0-100, got {quality}")
    low, high = bundled_range()
    return model_for_bpp(low * (high / low) ** (quality / 100))
