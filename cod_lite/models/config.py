"""Model settings: one frozen dataclass shared by the network, the zoo and the weight files."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..bitstream import MAX_NAME_BYTES

SUPPORTED_DS = (4, 8, 16, 32)
PATCH_SIZE = 16  # side of the denoiser's patches: the per-pixel head works on 16x16 cells


@dataclass(frozen=True)
class ModelConfig:
    """Every setting that changes the network's shape or output.

    Defaults are the authors' official one-step codec (52M decoder, 28M encoder) at ds 16,
    8 bits (0.0312 bpp). `encoder_channels` is not an official setting (they hard-code 128);
    it lets small models, and the parity fixture, shrink the condition encoder.
    `refine_channels` > 0 adds our seam refiner after the pixel head (`SeamRefiner`; not in the
    official models, which keep 0).
    """

    name: str = "unnamed"
    ds: int = 16
    codebook_bits: int = 8
    hidden_size: int = 384
    hidden_size_x: int = 32
    num_blocks: int = 24
    num_cond_blocks: int = 21
    patch_size: int = PATCH_SIZE
    in_channels: int = 3
    mlp_ratio: float = 4.0
    encoder_channels: int = 128
    codebook_dim: int = 128
    refine_channels: int = 0

    def __post_init__(self) -> None:
        if not 1 <= len(self.name.encode("utf-8")) <= MAX_NAME_BYTES:  # every stream carries the name
            raise ValueError(f"model name must be 1..{MAX_NAME_BYTES} UTF-8 bytes, got {len(self.name.encode('utf-8'))}")
        if self.ds not in SUPPORTED_DS:
            raise ValueError(f"ds must be one of {SUPPORTED_DS}, got {self.ds}")
        if not 1 <= self.codebook_bits <= 16:
            raise ValueError(f"codebook_bits must be in 1..16, got {self.codebook_bits}")
        if not 0 <= self.num_cond_blocks <= self.num_blocks:
            raise ValueError("num_cond_blocks must be between 0 and num_blocks")
        if self.patch_size != PATCH_SIZE or self.in_channels != 3:
            raise ValueError(f"only patch_size {PATCH_SIZE} and 3 input channels are supported")
        if self.refine_channels < 0:
            raise ValueError("refine_channels must be >= 0")
        if self.encoder_channels % 32 or self.hidden_size % 32:
            raise ValueError("encoder_channels and hidden_size must be multiples of 32 (GroupNorm)")

    @property
    def codebook_size(self) -> int:
        return 1 << self.codebook_bits

    @property
    def size_unit(self) -> int:
        """Image sides must be multiples of this; the codec pads to it."""
        return max(self.patch_size, self.ds)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the codec codes an image at: each side rounded up to `size_unit`."""
        unit = self.size_unit
        return -(-height // unit) * unit, -(-width // unit) * unit

    @property
    def nominal_bpp(self) -> float:
        return self.codebook_bits / self.ds**2

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if not self.refine_channels:  # files without a refiner keep the config they always had
            del values["refine_channels"]
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**values)


def official_config(bpp: str, name: str | None = None) -> ModelConfig:
    """The authors' six released configurations, keyed by their bitrate label."""
    ds, bits = OFFICIAL_RATES[bpp]
    return ModelConfig(name=name or f"official-{bpp}", ds=ds, codebook_bits=bits)


OFFICIAL_RATES: dict[str, tuple[int, int]] = {
    "0.0039": (32, 4),
    "0.0078": (32, 8),
    "0.0156": (16, 4),
    "0.0312": (16, 8),
    "0.1250": (8, 8),
    "0.5000": (4, 8),
}
