"""Several network processes for many files: the thread split, and the same outputs and reports as one process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite.processes import THREADS_EACH, run, split
from cod_lite_cli.main import cli

G = 2**30


def test_split_gives_each_process_a_few_threads_within_files_and_memory():
    assert split(2, 100, 4 * G, memory=64 * G) == (1, 2)  # a small machine: one process, every thread
    assert split(64, 1000, 4 * G, memory=1024 * G) == (64 // THREADS_EACH, THREADS_EACH)
    assert split(64, 3, 4 * G, memory=1024 * G) == (3, 21)  # no more processes than files
    assert split(64, 1000, 4 * G, memory=10 * G) == (2, 32)  # two fit in 10 GB at 4 GB an image
    assert split(64, 1000, 4 * G, memory=1 * G) == (1, 64)
    assert split(6, 1000, 4 * G, memory=None) == (2, 3)  # memory unknown: threads and files decide
    assert split(None, 1, 4 * G)[0] == 1


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(48, 64), (40, 40), (33, 70), (64, 48), (24, 90)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / ("sub" if i % 2 else "") / f"p{i}.png")
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return root


def test_convert_in_processes_matches_one_process_byte_for_byte(photos, tmp_path, parity_weights):
    one = cod_lite.convert(photos, tmp_path / "one", model=parity_weights, progress=False, threads=1)
    failures: list[str] = []
    # 8 threads on any machine: two network processes of four threads (oversubscribed here, which
    # changes speed, not results)
    many = cod_lite.convert(photos, tmp_path / "many", model=parity_weights, progress=False, threads=2 * THREADS_EACH,
                            on_failure=lambda path, message: failures.append(message))
    assert one.done == 5 and (many.done, many.bytes_in, many.bytes_out, many.pixels) == (one.done, one.bytes_in, one.bytes_out, one.pixels)
    assert [Path(p).name for p, _ in many.failed] == ["broken.png"] and failures == [many.failed[0][1]]
    streams = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.cod"))
    assert len(streams) == 5 and streams == sorted(p.relative_to(tmp_path / "many") for p in (tmp_path / "many").rglob("*.cod"))
    for rel in streams:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "many" / rel).read_bytes()
    assert not [p for p in (tmp_path / "many").rglob("*") if p.name.endswith(".tmp")]

    back = cod_lite.convert(tmp_path / "many", tmp_path / "back", decompress=True, progress=False, threads=2 * THREADS_EACH,
                            model=parity_weights)
    assert back.done == 5 and not back.failed
    direct = cod_lite.decode(tmp_path / "one" / "p0.cod", model=parity_weights)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back" / "p0.png")), direct)

    again = cod_lite.convert(photos, tmp_path / "many", model=parity_weights, progress=False, threads=2 * THREADS_EACH)
    assert again.done == 0 and again.skipped == 5


def test_several_files_on_the_command_line_go_through_processes(photos, tmp_path, parity_weights):
    inputs = sorted(str(p) for p in photos.rglob("*.png"))  # broken.png among them
    runner = CliRunner()
    serial = runner.invoke(cli, ["compress", *inputs, str(tmp_path / "s"), "-m", str(parity_weights), "--threads", "1"])
    parallel = runner.invoke(cli, ["compress", *inputs, str(tmp_path / "p"), "-m", str(parity_weights), "--threads", str(2 * THREADS_EACH)])
    for result in (serial, parallel):
        assert result.exit_code == 1
        assert "failed: " in result.output and "broken.png" in result.output and "1 of 6 files failed" in result.output
        assert result.output.count(" bpp (") == 5
    made = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert made == sorted(p.name for p in (tmp_path / "s").iterdir()) and len(made) == 5
    for name in made:
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()

    streams = sorted(str(p) for p in (tmp_path / "p").iterdir())
    back = runner.invoke(cli, ["decompress", *streams, str(tmp_path / "d"), "-m", str(parity_weights), "--threads", str(2 * THREADS_EACH), "-q"])
    assert back.exit_code == 0, back.output
    direct = cod_lite.decode(tmp_path / "p" / "p0.cod", model=parity_weights)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d" / "p0.png")), direct)


class _Dies:
    """Work whose process ends abruptly on the item 'die' (as when the system kills it for memory)."""

    def codec(self) -> None:
        return None

    def run(self, codec: None, item: str) -> str:
        if item == "die":
            os._exit(9)
        if item == "bad":
            raise ValueError("no good")
        return item.upper()


def test_a_failed_file_is_a_message_and_a_dead_process_one_clear_error():
    results = sorted((item, ok, value) for item, ok, value in run(_Dies(), ["a", "bad", "b"], 2, 1))
    assert results == [("a", True, "A"), ("b", True, "B"), ("bad", False, "ValueError: no good")]
    with pytest.raises(cod_lite.CodLiteError, match="network process stopped"):
        list(run(_Dies(), ["a", "die", "b", "c"], 2, 1))
