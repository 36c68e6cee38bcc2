"""Training of CoD-Lite models: the public calls behind `codlite train` (`python -m cod_lite.train`)."""

from .data import write_crop_set
from .export import PRECISIONS as EXPORT_PRECISIONS
from .export import export
from .loop import train
from .objectives import STAGES
from .settings import SMALL_CONFIG, TrainSettings, run_config

__all__ = ["EXPORT_PRECISIONS", "SMALL_CONFIG", "STAGES", "TrainSettings", "export", "run_config", "train", "write_crop_set"]
