"""Measure each bundled model's rate on Kodak and record it in the model's JSON record, where
`codlite models` shows it (bits per pixel: lowest, mean, highest over the 24 images, colour side
information included, as `codlite compress` writes them).

    python tools/measure_rates.py --kodak ../shared/data/kodak
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cod_lite  # noqa: E402
from cod_lite.image_io import find_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", type=Path, required=True, help="folder of the 24 Kodak images")
    args = parser.parse_args()
    images = find_images(args.kodak)
    for info in (m for m in cod_lite.available_models() if m.origin == "bundled" and m.retired is None):  # a retired model's rate stays as measured
        rates = [cod_lite.inspect(cod_lite.encode(path, info.path)).bpp for path in images]
        record_path = info.path.with_suffix(".json")
        record = json.loads(record_path.read_text())
        record["kodak_bpp"] = {"images": len(rates), "min": round(min(rates), 4), "mean": round(sum(rates) / len(rates), 4),
                               "max": round(max(rates), 4), "weights_sha256": info.weights_sha256}
        record_path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(f"{info.name}: {record['kodak_bpp']}")


if __name__ == "__main__":
    main()
