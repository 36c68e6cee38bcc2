"""`convert(..., engine="ray")`: the same conversion job on a Ray cluster, streaming.

A Ray Data pipeline of three stages: CPU tasks read each file from its storage and decode it
(an image's pixels and metadata, or a stream's bytes); a pool of actors, each holding one loaded
`Codec` (GPUs when asked for; the cluster's CPUs shared out among them, `actor_shares`), runs the
network and the entropy coding; CPU tasks write each output whole (atomically where local, one
put on object storage). Rows carry one file each, so
memory stays bounded however long the listing; a file's failure travels down the pipeline as its
message and is reported, while the rest go on. Ray restarts a dead actor and retries its work; a
write that finds its output already there with the same bytes (a retried task) counts as done.
The job, its outputs and its summary are those of the local engine (`folders.Job`). `ray` is the
optional extra `cod-lite[ray]`.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from .errors import CodLiteError, InputError, OutputError, describe
from .folders import FailureHook, Job, _fail

IO_CPUS = 0.25


def run(job: Job, on_failure: FailureHook | None, *, workers: int, address: str | None, gpus_per_worker: float, batch_size: int) -> None:
    """Run `job` on the cluster at `address` (None: the one this process is connected to, else a
    local one for the duration), `workers` network actors (one CPU each; at most the cluster's
    CPUs less one for reading and writing); fills `job.summary`."""
    try:
        import ray
    except ImportError:
        raise InputError('the ray engine needs ray: pip install "cod-lite[ray]"') from None
    if not job.todo:
        return
    job = _portable(job)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        workers, actor_cpus = actor_shares(workers, ray.cluster_resources().get("CPU", 1),
                                           [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")])
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        rows = ray.data.from_items([{"rel": rel, "out": out} for rel, out in job.todo], override_num_blocks=max(1, min(len(job.todo), 4 * workers)))
        # reading and writing are light: a quarter CPU each, so they run beside the network actors
        rows = rows.map(_Load(job), num_cpus=IO_CPUS)
        rows = rows.map_batches(
            _Convert, fn_constructor_args=(job, math.ceil(actor_cpus)), batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=min(1.0, actor_cpus),  # reserving the whole share starved the write tasks until the network was done
            num_gpus=gpus_per_worker or None,
            batch_format="pandas",
        )
        rows = rows.map(_Write(job), num_cpus=IO_CPUS)
        for row in rows.iter_rows():
            label = job.src.label(row["rel"])
            if row["error"]:
                _fail(job.summary, on_failure, label, row["error"])
                continue
            job.summary.done += 1
            job.summary.bytes_in += int(row["bytes_in"])
            job.summary.bytes_out += int(row["bytes_out"])
            job.summary.pixels += int(row["pixels"])
    finally:
        if started:
            ray.shutdown()


def actor_shares(workers: int, cluster_cpus: float, node_cpus: list[float]) -> tuple[int, float]:
    """(network actors, CPUs each): at most `workers` actors, leaving 2 x IO_CPUS of the cluster
    for the reading and writing tasks and the rest shared out among the actors, so that they fit
    the smallest node evenly spread; an actor runs torch on as many threads as its share rounds
    up to (reserving at most one CPU from the scheduler, so that reads and writes keep running
    beside it). On one 2-core machine: one actor of 1.5 CPUs with two torch threads, as the local
    engine has (it had one thread)."""
    spare = cluster_cpus - 2 * IO_CPUS
    workers = max(1, min(workers, int(spare)))
    nodes = node_cpus or [cluster_cpus]
    per_node = math.ceil(workers / len(nodes))  # so that the actors fit the nodes, evenly spread
    return workers, max(IO_CPUS, min(spare / workers, (min(nodes) - 2 * IO_CPUS) / per_node))


def _portable(job: Job) -> Job:
    """The job as workers can rebuild it: a model by its weight file, never a loaded `Codec`."""
    from .codec import Codec

    if isinstance(job.model, Codec):
        if job.model.path is None:
            raise InputError("the ray engine needs a model by name or weight file, not an in-memory Codec")
        job.model = job.model.path
    return job


class _Load:
    """Stage 1 (CPU tasks): a file's input, pickled (pixels and metadata, or a stream's bytes)."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            data = self.job.load(row["rel"])
            size = len(data) if self.job.decompress else self.job.src.size(row["rel"])
            return {**row, "input": pickle.dumps(data), "bytes_in": size, "error": ""}
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the rest
            return {**row, "input": b"", "bytes_in": 0, "error": describe(e)}


class _Convert:
    """Stage 2 (actors): one loaded codec per actor; a batch of inputs through the network."""

    def __init__(self, job: Job, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # Ray sets one thread per actor CPU it reserves, rounded down
        self.job = job
        self.codec = job.codec()

    def __call__(self, batch: Any) -> Any:
        ok = [i for i, error in enumerate(batch["error"]) if not error]
        inputs = [pickle.loads(batch["input"].iloc[i]) for i in ok]
        outputs, pixels, errors = [b""] * len(batch), [0] * len(batch), list(batch["error"])
        for i, data_in, result in zip(ok, inputs, self.job.convert(self.codec, inputs)):
            try:
                if isinstance(result, Exception):
                    raise result
                outputs[i], pixels[i] = self.job.output(data_in, result)
            except Exception as e:  # noqa: BLE001
                errors[i] = describe(e)
        return batch.drop(columns=["input"]).assign(output=outputs, pixels=pixels, error=errors)


class _Write:
    """Stage 3 (CPU tasks): the output written whole; its size."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        data = row.pop("output")
        if row["error"]:
            return {**row, "bytes_out": 0}
        try:
            return {**row, "bytes_out": self.job.dst.write(row["out"], data, self.job.force)}
        except OutputError as e:
            if self.job.dst.exists(row["out"]) and self.job.dst.read(row["out"]) == data:  # a retried task wrote it already
                return {**row, "bytes_out": len(data)}
            return {**row, "bytes_out": 0, "error": str(e)}
        except (CodLiteError, OSError) as e:
            return {**row, "bytes_out": 0, "error": describe(e)}
