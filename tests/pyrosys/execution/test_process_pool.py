"""The grid's process pool: long-lived workers, a killed worker takes down only its own job."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pyrosys.execution.process_pool import ProcessPool


def test_workers_are_reused_across_jobs_and_results_come_back():
    events = []
    ProcessPool(2, "math:sqrt").run([4.0, 9.0, 16.0, 25.0, 36.0], events.append)
    finished = [e for e in events if e.kind == "finished"]
    assert sorted(e.result for e in finished) == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert len({e.pid for e in finished}) <= 2                # five jobs, two processes
    assert all(e.seconds is not None and e.seconds >= 0 for e in finished)


def test_a_job_function_is_asked_only_when_a_worker_is_free_and_after_the_results_before():
    asked, finished = [], []

    def next_job():                          # a search: the next trial sees every result told so far
        if len(asked) == 5:
            return None
        asked.append(len(finished))
        return float(len(asked)) ** 2

    ProcessPool(2, "math:sqrt").run(next_job, lambda e: finished.append(e.result) if e.kind == "finished" else None)
    assert sorted(finished) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert all(done >= index - 1 for index, done in enumerate(asked))        # never more than 2 in flight
    assert ProcessPool(2, "math:sqrt").run(lambda: None, finished.append) is None    # nothing asked: no worker


def test_one_worker_ends_when_the_job_function_runs_out_after_the_last_result():
    """The source says None only when asked after the last job ended (a search of one run at a time)."""
    import threading

    jobs, finished = [4.0, 9.0], []
    pool = threading.Thread(target=ProcessPool(1, "math:sqrt").run, daemon=True,
                            args=(lambda: jobs.pop(0) if jobs else None,
                                  lambda e: finished.append(e.result) if e.kind == "finished" else None))
    pool.start()
    pool.join(60)
    assert not pool.is_alive() and finished == [2.0, 3.0]


def test_a_worker_killed_from_outside_fails_only_its_job_and_is_replaced():
    events = []

    def on_event(event):
        events.append(event)
        if event.kind == "started" and event.job == 60:
            os.kill(event.pid, signal.SIGKILL)

    ProcessPool(1, "time:sleep").run([0.01, 60, 0.01, 0.01], on_event)
    died = [e for e in events if e.kind == "died"]
    assert [(e.job, e.result) for e in died] == [(60, -signal.SIGKILL)]
    assert sum(e.kind == "finished" for e in events) == 3


def test_each_worker_gets_its_own_environment_before_it_imports_anything(monkeypatch):
    events = []
    environments = [{"PYROSYS_POOL_TEST": "a"}, {"PYROSYS_POOL_TEST": "b"}]
    ProcessPool(2, "os:getenv", environments=environments).run(["PYROSYS_POOL_TEST"] * 6, events.append)
    assert {e.result for e in events if e.kind == "finished"} <= {"a", "b"}


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_workers_die_with_the_pool_s_process_instead_of_running_on_unseen():
    script = ("from pyrosys.execution.process_pool import ProcessPool\n"
              "ProcessPool(1, 'time:sleep').run([60], "
              "lambda e: print(e.pid, flush=True) if e.kind == 'started' else None)")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(owner.stdout.readline())
    assert running(worker)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(worker)


CHILD_JOB = """
import multiprocessing


def child_exit_status(code):
    process = multiprocessing.get_context("spawn").Process(target=exit, args=(code,))
    process.start()
    process.join()
    return process.exitcode
"""


def test_a_job_may_start_processes_of_its_own(tmp_path, monkeypatch):
    (tmp_path / "pool_child_job.py").write_text(CHILD_JOB)
    monkeypatch.syspath_prepend(str(tmp_path))      # spawned workers take the parent's sys.path
    events = []
    ProcessPool(1, "pool_child_job:child_exit_status").run([3], events.append)
    assert [(e.kind, e.result) for e in events if e.kind != "started"] == [("finished", 3)]
