"""Ray Train as the engine of one run (`--backend ray`): on one local Ray instance shared by this module's tests
(`ray start --head` on 127.0.0.1 with 2 CPUs, stopped at the end), two workers train a two-epoch Digits MLP into an
ordinary experiment folder, with the validation statistics of Lightning DDP over gloo on two processes."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.train")

BIN = Path(sys.executable).parent
# a test cluster without tokens, whose Ray Train controller polls its workers (and takes their reports) every 0.2 s
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled",
       "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
QUIET = ["training.trainer.enable_progress_bar=false"]
DDP = "training.trainer={strategy: ddp, devices: 2, accelerator: cpu, enable_progress_bar: false}"
TOLERANCE = 1e-6          # relative, between Ray Train's and Lightning DDP's validation statistics (measured: 0)


@pytest.fixture(scope="module")
def cluster(local_server) -> Iterator[str]:
    """HOST:PORT of a Ray instance with 2 CPUs for this module's tests, its processes stopped at the end."""
    port = local_server.free_port()
    files = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))     # its own (so /tmp/ray names no cluster killed here)
    head = subprocess.Popen([BIN / "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={files}"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGKILL)      # the instance's processes, all in the group started here
        head.wait(10)
        shutil.rmtree(files, ignore_errors=True)


def start(command: str, *args: object, env: dict | None = None) -> subprocess.Popen:
    """A console command started as a user would, its output captured."""
    return subprocess.Popen([str(BIN / command), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env or ENV)


def finish(process: subprocess.Popen, timeout: int = 240) -> tuple[int, str, str]:
    """A started command's exit status, stdout and stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def results_folder(out: str) -> Path:
    """The experiment folder the trainer names last on its `[pyrosys] results:` line."""
    return Path([line for line in out.splitlines() if line.startswith("[pyrosys] results: ")][-1].split(": ", 1)[1])


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


@pytest.fixture
def digits(tmp_path: Path, two_epoch_digits: str) -> Path:
    path = tmp_path / "digits.yaml"
    path.write_text(two_epoch_digits)
    return path


@pytest.mark.slow
def test_two_ray_workers_killed_once_and_resumed_train_the_statistics_of_lightning_ddp(tmp_path, digits, cluster):
    """Two Ray Train workers, one of them killed (SIGKILL) once the first checkpoint exists: Ray restarts them
    (max_failures 1) from it, the run completes in an ordinary folder with the validation statistics of Lightning
    DDP on two gloo processes, the tester and predictor take its checkpoint, and --resume goes on from it."""
    epochs = "training.terminal_conditions.epoch_limit=8"
    ddp = start("pyrosys-trainer", "--c", digits, "--outdir", tmp_path / "ddp", "--set", DDP, epochs)
    run = start("pyrosys-trainer", "--c", digits, "--outdir", tmp_path / "ray", "--backend", "ray", "--address",
                cluster, "--set", *QUIET, epochs, "training.ray.max_failures=1")
    deadline = time.monotonic() + 120
    while not list((tmp_path / "ray").glob("*/*/*/models/last.ckpt")) and time.monotonic() < deadline \
            and run.poll() is None:
        time.sleep(0.1)
    assert os.kill(ray_train_worker(), signal.SIGKILL) is None
    code, out, err = finish(run)
    assert code == 0, err[-3000:]
    folder = results_folder(out)
    record = status(folder)
    assert record["status"] == "completed" and record["epoch"] == 8 and len(record["resumed"]) == 1
    for name in ("training_statistics.csv", "validation_statistics.csv", "models/best.ckpt", "models/last.ckpt",
                 "models/best/model.yaml", "training_configuration.yaml", "description.json"):
        assert (folder / name).exists(), name
    code, ddp_out, err = finish(ddp)
    assert code == 0, err[-3000:]
    on_ray = rows(folder / "validation_statistics.csv")
    on_ddp = rows(results_folder(ddp_out) / "validation_statistics.csv")
    assert [row["episode"] for row in on_ray] == [row["episode"] for row in on_ddp] == [str(e) for e in range(5, 45, 5)]
    for ray_row, ddp_row in zip(on_ray, on_ddp):     # every validation once, none lost or repeated, and equal
        for name in ("loss", "accuracy"):
            assert math.isclose(float(ray_row[name]), float(ddp_row[name]), rel_tol=TOLERANCE), (name, ray_row, ddp_row)
    np.save(tmp_path / "rows.npy", np.zeros((3, 1, 8, 8), dtype=np.float32))
    tester = start("pyrosys-tester", "--m", folder / "models" / "best.ckpt", "--outdir", tmp_path / "tests")
    resumed = start("pyrosys-trainer", "--resume", folder, "--backend", "ray", "--address", cluster, "--set", *QUIET,
                    "training.terminal_conditions.epoch_limit=10")
    code, out, err = finish(start("pyrosys-predictor", "--m", folder / "models" / "best.ckpt", "--input",
                                  tmp_path / "rows.npy", "--output", tmp_path / "predictions.csv"))
    assert code == 0 and len(rows(tmp_path / "predictions.csv")) == 3, err[-3000:]
    assert finish(tester)[0] == 0
    code, out, err = finish(resumed)
    assert code == 0, err[-3000:]
    assert [int(row["episode"]) for row in rows(folder / "validation_statistics.csv")][-3:] == [40, 45, 50]
    assert len(status(folder)["resumed"]) == 2


@pytest.mark.slow
def test_ray_missing_an_address_that_does_not_answer_and_too_many_workers_are_refused_writing_nothing(
        tmp_path, digits, cluster, local_server):
    stub = tmp_path / "no_ray" / "ray"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named ray (hidden by the test)')\n")
    cases = {
        "missing": ([], {**ENV, "PYTHONPATH": str(stub.parent)}, 'pip install "pyrosys[ray]"'),
        "closed port": (["--address", f"127.0.0.1:{local_server.free_port()}"], ENV,
                        "no Ray cluster answers at 127.0.0.1:"),
        "too many": (["--address", cluster, "--set", "training.ray.num_workers=64"], ENV,
                     "64 workers of 1 CPU each need room on the nodes of the Ray cluster at"),
        "misspelt": (["--set", "training.ray.num_worker=2"], ENV, "num_workers"),
    }
    started = time.monotonic()
    running = {name: start("pyrosys-trainer", "--c", digits, "--outdir", tmp_path / name, "--backend", "ray", *flags,
                           env=env) for name, (flags, env, _) in cases.items()}
    for name, process in running.items():
        code, out, err = finish(process, timeout=60)
        assert code == 2 and cases[name][2] in err and "Traceback" not in err, (name, err[-2000:])
        assert not (tmp_path / name).exists(), name
    assert time.monotonic() - started < 30


def ray_train_worker() -> int:
    """The process id of a Ray Train worker (the module's cluster runs one run at a time)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"RayTrainWorker" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError("no Ray Train worker is running")


@pytest.mark.integration
def test_a_run_that_fails_on_its_own_is_not_restarted_and_exits_1_with_its_reason(tmp_path, digits, cluster):
    """A diverged loss fails again after any restart: with max_failures 2 the workers end at the first failure."""
    started = time.monotonic()
    code, out, err = finish(start("pyrosys-trainer", "--c", digits, "--outdir", tmp_path, "--backend", "ray",
                                  "--address", cluster, "--set", *QUIET, "training.ray.max_failures=2",
                                  "training.optimizer={name: SGD, lr: 1.0e12}", "logging.interval=2"))
    assert code == 1 and "the training loss is nan" in out, out[-2000:] + err[-2000:]
    (folder,) = [path.parent for path in tmp_path.glob("*/*/*/status.json")]
    assert status(folder)["status"] == "failed" and "resumed" not in status(folder)
    assert time.monotonic() - started < 120


def test_a_worker_is_placed_whole_on_one_node():
    from pyrosys.workers.pipeline.ray_train import workers_placed

    four_nodes = [{"CPU": 4.0}] * 4
    assert workers_placed(four_nodes, {"CPU": 8.0}) == 0           # 16 CPUs in all, but no node holds 8
    assert workers_placed(four_nodes, {"CPU": 2.0}) == 8
    assert workers_placed([{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0}], {"CPU": 1.0, "GPU": 1.0}) == 1
