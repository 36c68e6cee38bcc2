"""Every example in README.md and docs/ runs: the Python snippets execute (each document's blocks in
order, in one namespace, in a folder holding the files they name), and every `codlite` line of the
README and the getting-started page runs on examples/sample.png (lines that need a service outside
this machine: see NEEDS_A_SERVICE)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.png"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLI_DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
# lines that need something outside this machine: the Hugging Face hub (run offline below), a
# bucket or a Ray cluster (that engine and object storage run in tests/test_ray_engine.py against
# a local cluster and a local S3 server)
NEEDS_A_SERVICE = ("official:", "s3://", "--engine ray")


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def _prepare(folder: Path, stream: bool = True) -> None:
    """The files the examples name: photo.jpg, a folder photos/, and (`stream`) photo.cod and
    photos-cod/ made from them."""
    (folder / "examples").mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE, folder / "examples" / "sample.png")
    Image.open(SAMPLE).convert("RGB").save(folder / "photo.jpg", quality=95)
    (folder / "photos").mkdir(exist_ok=True)
    Image.open(SAMPLE).convert("RGB").save(folder / "photos" / "a.png")
    if stream:
        (folder / "photo.cod").write_bytes(cod_lite.encode(folder / "photo.jpg"))
        cod_lite.convert(folder / "photos", folder / "photos-cod", progress=False)


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if blocks(d, "python")], ids=lambda d: d.name)
def test_python_snippets_run(document, tmp_path, monkeypatch, isolated_home):
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks(document, "python"):
        exec(compile(code, f"{document.name} snippet", "exec"), namespace)  # noqa: S102 - the examples we publish
    assert "cod_lite" in namespace or any(isinstance(v, type(cod_lite)) for v in namespace.values())


def cli_blocks() -> list[tuple[str, list[str]]]:
    """(document, its codlite lines) per bash block; a block's lines run in order, one folder."""
    found = []
    for document in CLI_DOCUMENTS:
        for i, code in enumerate(blocks(document, "bash")):
            commands = [line.split("  #")[0].strip() for line in code.splitlines()]
            commands = [c for c in commands if c.startswith("codlite ") and not any(service in c for service in NEEDS_A_SERVICE)]
            if commands:
                found.append((f"{document.name} block {i}", commands))
    return found


@pytest.mark.parametrize("where, commands", cli_blocks(), ids=[w for w, _ in cli_blocks()])
def test_cli_lines_run(where, commands, tmp_path, monkeypatch, isolated_home):
    _prepare(tmp_path, stream=False)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        result = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{where}: {command}\n{result.output}"


def test_the_official_lines_say_what_they_need_offline(tmp_path, monkeypatch, isolated_home):
    """The README's `--model official:RATE` line needs the Hugging Face hub; offline it must fail
    in one line, fast (the download itself is tested against a local server in test_hub.py)."""
    official = [c for d in CLI_DOCUMENTS for code in blocks(d, "bash") for c in code.splitlines() if "official:" in c and c.startswith("codlite")]
    assert official
    _prepare(tmp_path, stream=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for command in official:
        result = CliRunner().invoke(cli, shlex.split(command.split("  #")[0])[1:])
        assert result.exit_code == 1 and "cannot be reached" in result.output, result.output


def test_the_readme_picture_and_table_are_current():
    """The README shows the bundled models as they are: one row per bundled model, its measured
    Kodak rate from the record, retired ones marked, and a picture that exists."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert (ROOT / "docs" / "kodak_crop.png").is_file() and "docs/kodak_crop.png" in text
    for info in (m for m in cod_lite.available_models() if m.origin == "bundled"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{info.name}`"))
        assert f"| {cod_lite.zoo.measured_rates(info)['mean']:.4f} |" in row
        assert ("retired" in row) == (info.retired is not None)
    assert np.asarray(Image.open(ROOT / "docs" / "kodak_crop.png")).shape[1] == 3 * 256
