"""The registry of every bundled weight identity ever committed, built from the git history, and
the archive of their files (what `cod_lite.zoo.registry` fetches superseded weights from).

    python tools/weight_registry.py --release 0.2.0          # rewrite cod_lite/zoo/registry.json
    python tools/weight_registry.py --export DIR             # every registered file into DIR (to publish, or for
                                                             # CODLITE_ARCHIVE_URL=file:///DIR on this machine)
    python tools/weight_registry.py --check                  # the registry lists every identity of the history
    python tools/weight_registry.py --golden tests/data/golden   # a small stream + its decoding per new identity

A stream names its weights by the first 8 bytes of their sha256 (`weights_sha256` in the file's
header), so each identity a commit of `cod_lite/zoo/weights/` ever held is one registry entry:
the model's name, the identity, the file's own sha256 and size (what the archive serves and the
fetch checks), the release that shipped it (the package version at that commit), its date and
commit, and what replaced it. Entries already in the registry keep their release.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cod_lite.zoo.registry import REGISTRY_PATH, archive_name  # noqa: E402
from cod_lite.weights import read_metadata  # noqa: E402

WEIGHTS = "cod_lite/zoo/weights"


def git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True).stdout


def version_at(commit: str) -> str:
    text = git("show", f"{commit}:pyproject.toml").decode()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("version"))


def history() -> list[dict]:
    """One entry per (model, identity) in commit order, oldest first."""
    log = git("log", "--reverse", "--format=%H %cs", "--", f"{WEIGHTS}/*.safetensors").decode().split("\n")
    entries: dict[str, dict] = {}
    for line in filter(None, log):
        commit, date = line.split()
        names = git("ls-tree", "--name-only", f"{commit}:{WEIGHTS}").decode().split()
        for name in (n for n in names if n.endswith(".safetensors")):
            blob = git("show", f"{commit}:{WEIGHTS}/{name}")
            with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
                f.write(blob)
                f.flush()
                meta = read_metadata(f.name)
            model = json.loads(meta["config"])["name"]
            identity = meta["weights_sha256"]
            if identity in entries:
                continue
            entries[identity] = {
                "model": model, "weights_sha256": identity, "file_sha256": hashlib.sha256(blob).hexdigest(),
                "bytes": len(blob), "release": version_at(commit), "date": date, "commit": commit,
                "path": f"{WEIGHTS}/{name}", "replaced_by": None,
            }
    ordered = list(entries.values())
    for older, newer in ((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]):
        if older["model"] == newer["model"] and older["replaced_by"] is None:
            older["replaced_by"] = newer["weights_sha256"]
    return ordered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", help="the release the registry is written for (pyproject's version)")
    parser.add_argument("--export", type=Path, help="write every registered file here, named as the archive serves it")
    parser.add_argument("--check", action="store_true", help="exit 1 if the registry misses an identity of the history")
    parser.add_argument("--golden", type=Path, help="write a golden stream and its exact (fp32) decoding here for every identity lacking one")
    args = parser.parse_args()
    found = history()
    registry = json.loads(REGISTRY_PATH.read_text()) if REGISTRY_PATH.is_file() else {"entries": []}
    known = {e["weights_sha256"]: e for e in registry["entries"]}
    if args.check:
        missing = [e for e in found if e["weights_sha256"] not in known]
        for e in missing:
            print(f"not registered: {e['model']} {e['weights_sha256'][:16]} ({e['commit'][:10]})")
        sys.exit(1 if missing else 0)
    if args.release:
        for entry in found:  # a release once recorded stays
            entry["release"] = known.get(entry["weights_sha256"], entry)["release"]
        registry = {"release": args.release, "archive_url": registry.get("archive_url", ""), "entries": found}
        REGISTRY_PATH.write_text(json.dumps(registry, indent=1) + "\n")
        print(f"{REGISTRY_PATH.relative_to(ROOT)}: {len(found)} identities of {len({e['model'] for e in found})} models")
    if args.export:
        args.export.mkdir(parents=True, exist_ok=True)
        for entry in registry["entries"]:
            target = args.export / archive_name(entry["model"], entry["weights_sha256"])
            if not target.is_file():
                target.write_bytes(git("show", f"{entry['commit']}:{entry['path']}"))
        print(f"{len(registry['entries'])} files in {args.export}")
    if args.golden:
        write_golden(registry["entries"], args.golden)


GOLDEN_CROP = (slice(0, 48), slice(0, 80))  # of examples/sample.png: every model's size unit pads it


def write_golden(entries: list[dict], folder: Path) -> None:
    """Per identity: NAME.cod (examples/sample.png's crop, encoded with those weights: colour side
    information included) and NAME.png, its decoding by the exact fp32 network on this machine."""
    import numpy as np
    from PIL import Image

    import cod_lite

    folder.mkdir(parents=True, exist_ok=True)
    image = np.asarray(Image.open(ROOT / "examples" / "sample.png").convert("RGB"))[GOLDEN_CROP]
    for entry in entries:
        stem = archive_name(entry["model"], entry["weights_sha256"]).removesuffix(".safetensors")
        stream_path, pixels_path = folder / f"{stem}.cod", folder / f"{stem}.png"
        if stream_path.is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "w.safetensors"
            weights.write_bytes(git("show", f"{entry['commit']}:{entry['path']}"))
            codec = cod_lite.load_model(weights, precision="fp32")
            stream = codec.encode(image)
            codec.decode(stream).save(pixels_path)
        stream_path.write_bytes(stream)
        print(f"{stem}: {len(stream)} bytes")


if __name__ == "__main__":
    main()
