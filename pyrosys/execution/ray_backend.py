"""Grid runs as Ray tasks: the same jobs and events as the local process pool, on a local Ray instance
or a cluster (`--backend ray [--address HOST:PORT]`). Ray is an optional extra (pip install "pyrosys[ray]"),
imported inside `run_on_ray` so that this module loads without it."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyrosys.errors import ConfigError
from pyrosys.execution.process_pool import Event, JobSource, resolve_function


def _call(function: str, job: Any) -> tuple[int, Any]:
    """Inside a Ray worker: run `function` ("module:name") on the job; the worker's pid and the result."""
    return os.getpid(), resolve_function(function)(job)


def run_on_ray(function: str, jobs: Sequence[Any] | Callable[[], Any], concurrency: int, address: str | None,
               on_event: Callable[[Event], None], gpus_per_job: float = 0) -> None:
    """Run every job as a Ray task, at most `concurrency` at a time; a task whose worker dies is reported
    as `died`, and the others go on."""
    try:
        import ray
        from ray.exceptions import RayError, RayTaskError
    except ImportError:
        raise ConfigError("the Ray backend needs Ray, which is not installed", file="the command line",
                          key="--backend", hint='Install it with pip install "pyrosys[ray]"') from None
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": max(concurrency, os.cpu_count() or 1)}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **options)
    task = ray.remote(num_cpus=1, num_gpus=gpus_per_job, max_retries=0)(_call)
    waiting, running = JobSource(jobs), {}
    try:
        while waiting.more() or running:
            while len(running) < concurrency:
                job = waiting.take()
                if job is None:
                    break
                running[task.remote(function, job)] = (job, time.perf_counter())
                on_event(Event("started", job))
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1)
            for reference in done:
                job, dispatched = running.pop(reference)
                seconds = time.perf_counter() - dispatched
                try:
                    pid, result = ray.get(reference)
                    on_event(Event("finished", job, pid=pid, result=result, seconds=seconds))
                except RayTaskError as error:          # the function raised (the run itself reports failures)
                    on_event(Event("finished", job, result={"status": "failed", "reason": str(error).splitlines()[0]},
                                   seconds=seconds))
                except RayError as error:              # the worker died or was killed
                    on_event(Event("died", job, result=f"Ray: {type(error).__name__}", seconds=seconds))
    finally:
        if started_here:
            ray.shutdown()
