"""Many files on a CPU: several network processes, each with its share of the cores.

Files are independent, while one image's network stops scaling beyond a few threads (its entropy
coding, colour fit and image decoding run on one; the convolutions over a few hundred thousand
pixels split poorly across dozens of cores). So a conversion on more than THREADS_EACH cores runs
several processes, each holding one model and converting a file at a time. On 2 cores one process
with both threads is as fast as two with one each (Kodak compressed in 21.2 s and 21.5 s, Zen 3),
and the split keeps one there.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import torch

from .errors import CodLiteError, describe

# What a network process holds besides its image: torch, the model, the allocator's slack
# (measured about 0.6 GB peak RSS converting Kodak with the default model).
PROCESS_OVERHEAD = 512 * 2**20
THREADS_EACH = 4  # threads per network process when the budget allows several


class FileWork(Protocol):
    """Work on files that a process pool can run: picklable, it loads its model in each process."""

    def codec(self) -> Any: ...

    def run(self, codec: Any, item: Any) -> Any: ...


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes the system can give without swapping (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def split(threads: int | None, files: int, max_memory: int, memory: int | None = None, device: str | None = None) -> tuple[int, int]:
    """(processes, threads each) for `files` files on a budget of `threads` CPU threads (default:
    every core this process may use): a process per THREADS_EACH threads, no more than there are
    files, and no more than `memory` (default: what is available) holds at `max_memory` per image
    plus a model each; the processes share the threads. A network on another device than the
    CPU runs in one process (with `threads`, or 0: torch's default)."""
    if device is not None and torch.device(device).type != "cpu":
        return 1, threads or 0
    threads = threads or cpu_count()
    memory = available_memory() if memory is None else memory
    by_memory = threads if memory is None else max(1, memory // (max_memory + PROCESS_OVERHEAD))
    processes = max(1, min(-(-threads // THREADS_EACH), files, by_memory))
    return processes, threads // processes


def run(work: FileWork, items: Iterable[Any], processes: int, threads: int) -> Iterator[tuple[Any, bool, Any]]:
    """Run `work.run(codec, item)` for every item in `processes` spawned processes with `threads`
    torch threads each, a few items ahead of each; yield (item, True, result) or (item, False,
    one-line reason) as they finish. The model is loaded here first, so one that cannot load
    fails once, before any process starts. Spawned, not forked: a forked child of a process whose
    OpenMP pool has started can hang."""
    work.codec()
    pending: dict[Future, Any] = {}
    todo = iter(items)
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_start, initargs=(work, threads)) as pool:
            while True:
                while len(pending) < 2 * processes and (item := next(todo, None)) is not None:
                    pending[pool.submit(_run, item)] = item
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    ok, value = future.result()
                    yield pending.pop(future), ok, value
    except BrokenProcessPool:
        raise CodLiteError(
            "a network process stopped before finishing (out of memory, or a script that starts conversions "
            "outside `if __name__ == '__main__':`); rerun with fewer threads (threads=1 runs in this process)"
        ) from None


_state: tuple[FileWork, Any] | None = None  # this process's work and its loaded model


def _start(work: FileWork, threads: int) -> None:
    global _state
    torch.set_num_threads(threads)
    _state = (work, work.codec())


def _run(item: Any) -> tuple[bool, Any]:
    """(True, result) or (False, a one-line reason): exceptions travel as text, since not every
    exception unpickles in the parent."""
    assert _state is not None
    work, codec = _state
    try:
        return True, work.run(codec, item)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
        return False, describe(e)
