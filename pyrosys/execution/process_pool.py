"""A pool of long-lived worker processes for grids: each imports the heavy libraries once, then runs
job after job; a worker that dies takes only its own job down and is replaced, and the workers die
with the pool's process.

Unlike `concurrent.futures.ProcessPoolExecutor`, a killed worker does not break the pool, the parent
learns at once which job it was running (and its process id, to kill it on purpose), and every
worker gets its own environment (CUDA_VISIBLE_DEVICES, thread counts) before it imports torch.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

PR_SET_PDEATHSIG = 1       # prctl(2): the signal a process gets when its parent dies


@dataclass
class Event:
    """What the pool reports: a job `started` (in process `pid`), `finished` (with `result`) or `died`."""

    kind: str
    job: Any
    pid: int | None = None
    result: Any = None
    seconds: float | None = None      # wall time from dispatch to the result


class JobSource:
    """The jobs of a pool: a list given up front, or a function asked for the next job each time a worker is
    free (a search asks its next trial only then), None meaning there are no more."""

    def __init__(self, jobs: Iterable[Any] | Callable[[], Any]) -> None:
        self.ask = jobs if callable(jobs) else None
        self.waiting = deque() if callable(jobs) else deque(jobs)
        self.exhausted = False

    def take(self) -> Any:
        """The next job, or None (for good) when there is none."""
        if self.waiting:
            return self.waiting.popleft()
        job = None if self.exhausted or self.ask is None else self.ask()
        self.exhausted = job is None
        return job

    def more(self) -> bool:
        """Whether a job may still come."""
        return bool(self.waiting) or (self.ask is not None and not self.exhausted)


def resolve_function(function: str) -> Callable[[Any], Any]:
    """The function a job runs, named "module:name" (the pool's workers, Ray tasks and Tune trials import it)."""
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the pool's process dies (Linux), so that no run goes on unseen
    after its grid was killed, writing into a folder that a `--resume` of the grid would run again."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:         # the parent died before the request was made
        os._exit(1)


def _worker(connection: Connection, function: str, preload: Sequence[str], environment: Mapping[str, str],
            parent: int) -> None:
    """A worker process: set its environment, import once, then run jobs until told to stop."""
    _die_with(parent)
    os.environ.update(environment)
    for module in preload:
        importlib.import_module(module)
    run = resolve_function(function)
    connection.send(("ready", os.getpid()))
    while True:
        try:
            job = connection.recv()
        except EOFError:
            break
        if job is None:
            break
        connection.send(("started", os.getpid()))
        connection.send(("finished", run(job)))
    gc.freeze()        # leaving: skip the interpreter's last walk over every object the runs made (~1.5 s)


@dataclass
class _Slot:
    process: Any
    connection: Connection
    job: Any = None
    dispatched: float = 0.0
    ready: bool = False


class ProcessPool:
    """`size` worker processes running `function` ("module:name") on jobs; `preload` modules are imported
    once per worker; `environments[i]` is worker i's extra environment."""

    def __init__(self, size: int, function: str, preload: Sequence[str] = (),
                 environments: Sequence[Mapping[str, str]] | None = None) -> None:
        self.size, self.function, self.preload = max(1, int(size)), function, list(preload)
        self.environments = list(environments or [{}] * self.size)
        self.context = multiprocessing.get_context("spawn")
        self.slots: dict[int, _Slot] = {}

    def _start(self, index: int) -> _Slot:
        parent, child = self.context.Pipe()
        # not a daemon: a run may start processes of its own (MLflow's writer, DataLoader workers); the worker
        # still ends with the pool's process (PR_SET_PDEATHSIG) and `close` ends it with the pool
        process = self.context.Process(target=_worker, name=f"pyrosys-pool-{index}", daemon=False,
                                       args=(child, self.function, self.preload,
                                             dict(self.environments[index % len(self.environments)]), os.getpid()))
        process.start()
        child.close()
        return _Slot(process, parent)

    def run(self, jobs: Iterable[Any] | Callable[[], Any], on_event: Callable[[Event], None]) -> None:
        """Run every job (a list, or a function giving the next job, then None); `on_event` hears each start,
        result and death, in the order they happen."""
        waiting = JobSource(jobs)
        first = waiting.take()                 # no worker is started for a source with no job at all
        if first is None:
            return
        waiting.waiting.appendleft(first)
        count = self.size if waiting.ask is not None else min(self.size, len(waiting.waiting))
        self.slots = {i: self._start(i) for i in range(count)}
        try:
            while True:
                self._dispatch(waiting)          # may find the source exhausted: then no job is left to wait for
                if not self.slots or not (waiting.more() or any(s.job is not None for s in self.slots.values())):
                    break
                slots = list(self.slots.items())
                ready = wait([s.connection for _, s in slots] + [s.process.sentinel for _, s in slots])
                for index, slot in slots:
                    if slot.connection in ready or slot.process.sentinel in ready:
                        self._serve(index, slot, waiting, on_event)
        finally:
            self.close()

    def _dispatch(self, waiting: JobSource) -> None:
        for slot in self.slots.values():
            if slot.ready and slot.job is None:
                job = waiting.take()
                if job is None:
                    return
                slot.job, slot.dispatched = job, time.perf_counter()
                slot.connection.send(slot.job)

    def _serve(self, index: int, slot: _Slot, waiting: JobSource, on_event: Callable[[Event], None]) -> None:
        """Read what one worker said; a worker that died reports its job and is replaced."""
        closed = False
        while not closed:
            try:
                if not slot.connection.poll():
                    break
                kind, value = slot.connection.recv()
            except (EOFError, OSError):
                closed = True                    # the worker's end is gone: it died (or is dying)
                break
            if kind == "ready":
                slot.ready = True
            elif kind == "started":
                on_event(Event("started", slot.job, pid=value))
            elif kind == "finished":
                job, slot.job = slot.job, None
                on_event(Event("finished", job, pid=slot.process.pid, result=value,
                               seconds=time.perf_counter() - slot.dispatched))
        if closed or not slot.process.is_alive():
            if not closed and slot.connection.poll():
                return                           # read its last words first, on the next round
            if not slot.ready and slot.job is None:
                raise RuntimeError(f"a pool worker could not start (exit status {slot.process.exitcode}); "
                                   f"run `python -c 'import {self.function.partition(':')[0]}'` to see why")
            slot.process.join()
            job, slot.job = slot.job, None
            if job is not None:
                on_event(Event("died", job, pid=slot.process.pid, result=slot.process.exitcode,
                               seconds=time.perf_counter() - slot.dispatched))
            slot.connection.close()
            if waiting.more():
                self.slots[index] = self._start(index)
            else:
                del self.slots[index]

    def close(self) -> None:
        """Tell idle workers to stop; end the ones that do not."""
        for slot in self.slots.values():
            try:
                slot.connection.send(None)
            except (OSError, ValueError):
                pass
        for slot in self.slots.values():
            slot.process.join(10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
        self.slots = {}
