"""Folder conversion: mirrored trees, per-file failures, resume, shards, round trip back to images."""

from __future__ import annotations

import numpy as np
import torch
import pytest
from click.testing import CliRunner
from PIL import Image

import cod_lite
from cod_lite.folders import in_shard, parse_shard, plan
from cod_lite.storage import Tree
from cod_lite_cli.main import cli


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    (root / "trip" / "day1").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for rel, (h, w) in {"a.png": (64, 96), "trip/b.jpg": (50, 77), "trip/day1/c.webp": (33, 17)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / rel)
    (root / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (root / "trip" / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"ignored: hidden")
    return root


def test_convert_mirrors_reports_and_resumes(photos, tmp_path, parity_weights):
    out = tmp_path / "out"
    failures = []
    summary = cod_lite.convert(photos, out, model=parity_weights, progress=False, on_failure=lambda p, m: failures.append(p))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.cod")) == ["a.cod", "trip/b.cod", "trip/day1/c.cod"]
    assert summary.done == 3 and summary.skipped == 0 and summary.ignored == 1  # notes.txt: not an image, not a failure
    assert [p.split("/")[-1] for p, _ in summary.failed] == ["broken.png"] == [f.split("/")[-1] for f in failures]
    assert summary.bytes_out == sum(p.stat().st_size for p in out.rglob("*.cod"))
    assert summary.mean_bpp == pytest.approx(8 * summary.bytes_out / (64 * 96 + 50 * 77 + 33 * 17))
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))

    again = cod_lite.convert(photos, out, model=parity_weights, progress=False)
    assert again.done == 0 and again.skipped == 3 and len(again.failed) == 1

    back = tmp_path / "back"
    restored = cod_lite.convert(out, back, decompress=True, progress=False, model=parity_weights)
    assert restored.done == 3 and not restored.failed
    assert Image.open(back / "trip" / "day1" / "c.png").size == (17, 33)
    direct = cod_lite.load_model(parity_weights).decode((out / "a.cod").read_bytes())
    assert np.array_equal(np.asarray(Image.open(back / "a.png")), np.asarray(direct))


def test_decompress_finds_each_model_from_its_stream(photos, tmp_path, parity_weights):
    import shutil

    cod_lite.user_model_dir().mkdir(parents=True, exist_ok=True)
    shutil.copy(parity_weights, cod_lite.user_model_dir() / "parity.safetensors")
    cod_lite.convert(photos, tmp_path / "c", model="parity", progress=False)
    summary = cod_lite.convert(tmp_path / "c", tmp_path / "d", decompress=True, image_format="webp", progress=False)
    assert summary.done == 3 and (tmp_path / "d" / "trip" / "b.webp").exists()


def test_decompressed_images_keep_the_metadata_their_streams_carry(photos, tmp_path, parity_codec):
    streams = tmp_path / "streams"
    streams.mkdir()
    source = tmp_path / "with_icc.png"
    Image.open(photos / "a.png").save(source, icc_profile=b"fake icc" * 8)
    cod_lite.compress_file(source, streams / "icc.cod", parity_codec, metadata="icc")
    cod_lite.compress_file(photos / "a.png", streams / "bare.cod", parity_codec)
    summary = cod_lite.convert(streams, tmp_path / "back", model=parity_codec, decompress=True, progress=False)
    assert summary.done == 2 and not summary.failed
    assert Image.open(tmp_path / "back" / "icc.png").info.get("icc_profile") == b"fake icc" * 8
    assert "icc_profile" not in Image.open(tmp_path / "back" / "bare.png").info


def test_shards_partition_the_files(photos):
    src, dst = Tree(photos), Tree(photos.parent / "o")
    everything = {p for p, _ in plan(src, dst, False, "png", None)[0]}
    parts = [{p for p, _ in plan(src, dst, False, "png", (i, 3))[0]} for i in range(3)]
    assert set().union(*parts) == everything and sum(map(len, parts)) == len(everything)
    assert in_shard("x/y.png", (0, 1))
    for bad in ("1/1", "3", "a/b", "-1/2"):
        with pytest.raises(cod_lite.InputError, match="shard"):
            parse_shard(bad)


def test_output_inside_input_is_refused(photos, parity_weights):
    with pytest.raises(cod_lite.InputError, match="must not be the input folder"):
        cod_lite.convert(photos, photos / "out", model=parity_weights, progress=False)


def test_cli_convert_exit_code_and_summary(photos, tmp_path, parity_weights):
    result = CliRunner().invoke(cli, ["convert", str(photos), str(tmp_path / "o"), "--model", str(parity_weights), "--shard", "0/1"])
    assert result.exit_code == 1
    assert "3 converted, 1 failed, 0 already done, 1 other files left alone" in result.stdout
    assert result.stderr.count("codlite: failed:") == 1 and "Traceback" not in result.output
    clean = tmp_path / "clean"
    clean.mkdir()
    Image.new("RGB", (40, 30), "red").save(clean / "r.png")
    ok = CliRunner().invoke(cli, ["convert", str(clean), str(tmp_path / "o2"), "--model", str(parity_weights)])
    assert ok.exit_code == 0 and "1 converted, 0 failed" in ok.stdout
    bad = CliRunner().invoke(cli, ["convert", str(clean), str(tmp_path / "o3"), "--shard", "2/2", "--model", str(parity_weights)])
    assert bad.exit_code != 0 and "shard" in bad.stderr


def test_encode_many_and_decode_many_match_one_by_one(parity_codec):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
    images.insert(1, rng.integers(0, 256, (50, 77, 3), dtype=np.uint8))  # another size between them
    streams = parity_codec.encode_many(images)
    singles = [parity_codec.encode(image) for image in images]
    for batched, single in zip(streams, singles):
        assert np.array_equal(parity_codec.decode_indices(batched)[0], parity_codec.decode_indices(single)[0])
    decoded = parity_codec.decode_many(streams)
    for image, stream, out in zip(images, streams, decoded):
        assert out.shape == image.shape
        one = np.asarray(parity_codec.decode(stream)).astype(int)
        assert np.abs(out.astype(int) - one).max() <= 1


def test_batches_respect_the_memory_budget(parity_weights):
    from cod_lite import tiling
    from cod_lite.batch import size_groups

    config = cod_lite.load_model(parity_weights).model_config
    per_image = tiling.quantize_bytes(config, 64, 96)
    assert size_groups([(64, 96)] * 5 + [(48, 80)], tiling.quantize_bytes, config, 2 * per_image + 1) == [[0, 1], [2, 3], [4], [5]]
    assert size_groups([(64, 96)] * 2, tiling.quantize_bytes, config, per_image - 1) == []  # left to the tiled single-image path


def test_batched_convert_equals_unbatched_and_keeps_per_file_errors(photos, tmp_path, parity_weights):
    for name in ("d.png", "e.png"):  # two more of a.png's size, so a batch forms
        Image.fromarray(np.random.default_rng(len(name)).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(photos / name)
    one, many = tmp_path / "one", tmp_path / "many"
    # fp32: batching changes summation order only; bf16 roundings flip near-tied indices more often
    cod_lite.convert(photos, one, model=parity_weights, progress=False, batch_size=1, precision="fp32")
    summary = cod_lite.convert(photos, many, model=parity_weights, progress=False, batch_size=4, precision="fp32")
    assert summary.done == 5 and sorted(p.split("/")[-1] for p, _ in summary.failed) == ["broken.png"]
    codec = cod_lite.load_model(parity_weights)
    for stream in one.rglob("*.cod"):
        batched = many / stream.relative_to(one)
        assert np.array_equal(codec.decode_indices(stream.read_bytes())[0], codec.decode_indices(batched.read_bytes())[0])
    (many / "trip" / "b.cod").write_bytes(b"not a stream")
    back = cod_lite.convert(many, tmp_path / "back", decompress=True, model=parity_weights, progress=False, batch_size=8)
    assert back.done == 4 and [p.split("/")[-1] for p, _ in back.failed] == ["b.cod"]


def test_unknown_or_missing_device_is_a_clear_error(photos, tmp_path, parity_weights):
    with pytest.raises(cod_lite.InputError, match="unknown device 'gpu0'"):
        cod_lite.convert(photos, tmp_path / "x", model=parity_weights, device="gpu0", progress=False)
    if not torch.cuda.is_available():
        result = CliRunner().invoke(cli, ["convert", str(photos), str(tmp_path / "y"), "--model", str(parity_weights), "--device", "cuda"])
        assert result.exit_code != 0 and "CUDA is not available" in result.stderr and "Traceback" not in result.output


def test_only_inputs_of_the_direction_are_candidates(tmp_path, parity_weights):
    """A README, a .cod among the photos and a rerun with nothing left: never failures (as cwebp-
    style batch tools treat them); an image without a suffix is found by its content."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(src / "scan", format="PNG")  # no suffix
    (src / "README.md").write_text("# my photos")
    codec = cod_lite.load_model(parity_weights)
    cod_lite.compress_file(src / "a.png", src / "old.cod", codec)
    summary = cod_lite.convert(src, tmp_path / "out", model=codec, progress=False)
    assert summary.done == 2 and not summary.failed and summary.ignored == 2  # README.md and old.cod left alone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.cod", "scan.cod"]
    rerun = cod_lite.convert(src, tmp_path / "out", model=codec, progress=False)
    assert rerun.report().startswith("nothing to do: 0 converted, 0 failed, 2 already done, 2 other files left alone")
    assert "bpp" not in rerun.report()
    # decompressing: only streams (by suffix or by their magic bytes)
    (tmp_path / "out" / "notes.txt").write_text("x")
    (tmp_path / "out" / "renamed").write_bytes((tmp_path / "out" / "a.cod").read_bytes())
    back = cod_lite.convert(tmp_path / "out", tmp_path / "back", decompress=True, model=codec, progress=False)
    assert back.done == 3 and back.ignored == 1 and not back.failed
    # globs narrow the candidates (relative path or name)
    narrowed = cod_lite.convert(src, tmp_path / "glob", model=codec, progress=False, include=["*.png"], exclude=["scan*"])
    assert narrowed.done == 1 and (tmp_path / "glob" / "a.cod").exists()
    cli_run = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "out"), "--model", str(parity_weights)])
    assert cli_run.exit_code == 0 and "nothing to do" in cli_run.output


def test_compressing_a_stream_is_refused(tmp_path, parity_weights):
    codec = cod_lite.load_model(parity_weights)
    image = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    stream = tmp_path / "x.cod"
    stream.write_bytes(codec.encode(image))
    with pytest.raises(cod_lite.InputError, match="already a cod-lite stream"):
        codec.encode(stream)
    result = CliRunner().invoke(cli, ["compress", str(stream), str(tmp_path / "y.cod"), "--model", str(parity_weights)])
    assert result.exit_code == 1 and "already a cod-lite stream" in result.output and not (tmp_path / "y.cod").exists()
