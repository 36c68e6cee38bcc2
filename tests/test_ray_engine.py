"""Conversion beyond one process: the Ray engine on a local cluster the test starts, and object
storage (a moto S3 server on 127.0.0.1, started and stopped here) for both engines."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from click.testing import CliRunner
from moto.server import ThreadedMotoServer
from PIL import Image

import cod_lite
from cod_lite.ray_engine import actor_shares
from cod_lite_cli.main import cli

from .test_api import photo


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    for i, rel in enumerate(["a.png", "b.png", "trip/c.png", "trip/d.jpg"]):
        Image.fromarray(photo(32, 48, seed=i)).save(root / rel)
    (root / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (root / "README.md").write_text("not an image")
    return root


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def one_thread():
    """The local engine runs as many torch threads as the cluster's one network actor
    (`actor_shares`), so the two are compared on identical arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(math.ceil(actor_shares(4, 2, [2])[1]))
    yield
    torch.set_num_threads(threads)


def test_actors_share_the_cpus_and_leave_room_for_reading_and_writing():
    assert actor_shares(4, 2, [2]) == (1, 1.5)  # one 2-core machine: both cores' threads, as the local engine
    assert actor_shares(4, 16, [16]) == (4, 3.875)
    assert actor_shares(3, 16, [8, 8]) == (3, 3.75)  # two on one node must fit its 8 CPUs with the I/O margin
    assert actor_shares(1, 64, [64]) == (1, 63.5)
    assert actor_shares(4, 1, [1]) == (1, 0.5)


def test_ray_converts_both_ways_like_the_local_engine(cluster, photos, tmp_path, parity_weights, one_thread):
    local = cod_lite.convert(photos, tmp_path / "local", model=parity_weights, progress=False)
    failures = []
    summary = cod_lite.convert(photos, tmp_path / "ray", model=parity_weights, engine="ray", workers=2,
                               on_failure=lambda path, message: failures.append(path))
    assert _tree(tmp_path / "ray") == _tree(tmp_path / "local")  # byte for byte
    assert (summary.done, summary.skipped, summary.ignored) == (local.done, local.skipped, local.ignored) == (4, 0, 1)
    assert [p.split("/")[-1] for p, _ in summary.failed] == ["broken.png"] == [f.split("/")[-1] for f in failures]
    assert (summary.bytes_in, summary.bytes_out, summary.pixels) == (local.bytes_in, local.bytes_out, local.pixels)
    again = cod_lite.convert(photos, tmp_path / "ray", model=parity_weights, engine="ray")
    assert again.done == 0 and again.skipped == 4  # resumable: existing outputs skipped
    back = cod_lite.convert(tmp_path / "ray", tmp_path / "back", model=parity_weights, decompress=True, engine="ray", workers=1)
    local_back = cod_lite.convert(tmp_path / "local", tmp_path / "local-back", model=parity_weights, decompress=True, progress=False)
    assert back.done == local_back.done == 4 and _tree(tmp_path / "back") == _tree(tmp_path / "local-back")


def test_a_killed_worker_loses_nothing(cluster, tmp_path, parity_weights, one_thread):
    """An actor killed mid-run: Ray restarts it and retries; whatever is left, a rerun completes;
    no output is lost, duplicated or half-written."""
    src = tmp_path / "many"
    src.mkdir()
    for i in range(16):
        Image.fromarray(photo(64, 96, seed=i)).save(src / f"p{i:02d}.png")
    out = tmp_path / "out"
    done = {}
    runner = threading.Thread(target=lambda: done.update(s=cod_lite.convert(src, out, model=parity_weights, engine="ray", workers=2)))
    runner.start()
    killed = _kill_one_actor(out)
    runner.join(timeout=300)
    assert killed, "no converter actor was found to kill"
    rerun = cod_lite.convert(src, out, model=parity_weights, engine="ray", workers=2)
    assert done["s"].done + rerun.done == 16 and not rerun.failed
    expected = tmp_path / "expected"
    cod_lite.convert(src, expected, model=parity_weights, progress=False)
    assert _tree(out) == _tree(expected)  # every output once, whole, equal to the local engine's
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def _kill_one_actor(out, timeout: float = 120) -> bool:
    """SIGKILL the process of one of the converter actors (Ray titles it
    'ray::MapWorker(MapBatches(_Convert))') once the first outputs exist."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list(out.glob("*.cod"))) >= 2:
            for proc in Path("/proc").iterdir():
                try:
                    title = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if proc.name.isdigit() and title.startswith(b"ray::") and b"_Convert" in title:
                    os.kill(int(proc.name), signal.SIGKILL)
                    return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1, the environment pointing boto/s3fs at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server._server.server_address
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="not-printed-anywhere",
                      AWS_DEFAULT_REGION="us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
    fs.mkdir("photos-bucket")
    yield fs
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_object_storage_as_source_and_destination(s3, photos, tmp_path, parity_weights, cluster, one_thread):
    s3.put(str(photos), "photos-bucket/in", recursive=True)
    # Ray's workers were started before this server existed: the endpoint and credentials travel
    # as storage options (a cluster started with them in its environment needs none)
    options = {"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}, "key": "testing", "secret": "not-printed-anywhere"}
    local = cod_lite.convert(photos, tmp_path / "local", model=parity_weights, progress=False)
    for engine in ("local", "ray"):
        summary = cod_lite.convert("s3://photos-bucket/in", f"s3://photos-bucket/{engine}", model=parity_weights, engine=engine,
                                   storage_options=options, progress=False)
        assert summary.done == 4 and len(summary.failed) == 1 and summary.ignored == 1
        assert summary.failed[0][0] == "s3://photos-bucket/in/trip/broken.png"
        streams = {p.split(f"{engine}/", 1)[1]: s3.cat_file(p) for p in s3.find(f"photos-bucket/{engine}")}
        assert streams == _tree(tmp_path / "local")
    # back to a local folder, through the command line, with the credentials never printed
    result = CliRunner().invoke(cli, ["convert", "s3://photos-bucket/ray", str(tmp_path / "back"), "-d", "--model", str(parity_weights),
                                      "--storage-option", f"client_kwargs={{\"endpoint_url\": \"{os.environ['AWS_ENDPOINT_URL']}\"}}"])
    assert result.exit_code == 0, result.output
    assert "not-printed-anywhere" not in result.output and len(list((tmp_path / "back").rglob("*.png"))) == 4
    assert np.asarray(Image.open(tmp_path / "back" / "a.png")).shape == (32, 48, 3)
    assert local.done == 4
