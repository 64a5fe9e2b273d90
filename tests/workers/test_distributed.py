"""One run over several processes, each way compared with one reference, Lightning's DDP over gloo on one node
with two CPU processes: two torchrun "nodes" of one process each on 127.0.0.1, and two Ray Train workers on a local
Ray instance (`ray start --head` on 127.0.0.1 with 2 CPUs, one for the module, stopped at its end)."""
from __future__ import annotations

import contextlib
import csv
import json
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

BIN = Path(sys.executable).parent
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAULTS = Path(__file__).resolve().parents[1] / "reliability"      # faults.KillAt, for the Ray workers to import
# a test cluster without tokens, whose Ray Train controller polls its workers (and takes their reports) every 0.2 s
RAY_ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled",
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "PYTHONPATH": str(FAULTS)}
TOLERANCE = 1e-6          # relative: gloo's reductions may add in another order over two nodes than over one


def settings(*overrides: str) -> list[str]:
    """The trainer's arguments of a two-epoch Digits MLP run (no MLflow, no TensorBoard, no progress bar)."""
    return ["--c", str(CONFIGS / "digits/mlp.yaml"), "--set", "training.terminal_conditions.epoch_limit=2",
            "logging.mlflow=null", "logging.tensorboard=null", "training.trainer.enable_progress_bar=false",
            *overrides]


def processes(devices: int, nodes: int) -> str:
    """The override of a Lightning DDP run over `nodes` x `devices` CPU processes."""
    return (f"training.trainer={{strategy: ddp, devices: {devices}, num_nodes: {nodes}, accelerator: cpu, "
            "enable_progress_bar: false}")


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def experiments(outdir: Path) -> list[Path]:
    return [status.parent for status in outdir.glob("*/*/*/status.json")]


def assert_same_statistics(run: Path, reference: Path) -> None:
    """The validation rows and the epochs' aggregates of two runs: the same episodes, values equal within TOLERANCE."""
    for table in ("validation_statistics.csv", "validation_set_agg_statistics.csv", "training_set_agg_statistics.csv"):
        ours, theirs = rows(run / table), rows(reference / table)
        assert [r["episode"] for r in ours] == [r["episode"] for r in theirs], table
        for mine, expected in zip(ours, theirs):
            for column in ("loss", "loss_mean", "accuracy", "accuracy_mean"):
                if column in expected:
                    assert float(mine[column]) == pytest.approx(float(expected[column]), rel=TOLERANCE), \
                        (table, column, mine, expected)


@pytest.fixture(scope="module")
def one_node(tmp_path_factory, cli):
    """pyrosys-trainer with Lightning's own launcher: one node, two processes."""
    outdir = tmp_path_factory.mktemp("one_node")
    result = cli("pyrosys-trainer", *settings(processes(devices=2, nodes=1)), "--outdir", outdir, cwd=outdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = experiments(outdir)
    return run


@pytest.mark.slow
def test_ddp_over_gloo_on_two_cpu_processes_trains_into_one_folder(one_node):
    assert json.loads((one_node / "status.json").read_text())["status"] == "completed"
    validations = rows(one_node / "validation_statistics.csv")
    assert [int(r["episode"]) for r in validations] == [20, 40]     # 1,258 samples, batch 32, two processes
    assert float(rows(one_node / "validation_set_agg_statistics.csv")[0]["samples"]) >= 269
    assert len(rows(one_node / "training_set_agg_statistics.csv")) == 2


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def run_nodes(commands: list[list], cwd: Path, timeout: float = 150) -> list[tuple[int | None, str]]:
    """Start every node's command at once and wait for them all, but not past `timeout` seconds, nor once one has
    failed (torchrun's other agent would wait five minutes for it at its exit barrier). Then whatever still runs
    is asked for its Python stacks (faulthandler, on SIGABRT), which go into its output, and stopped. Each
    node's exit status (None: it was stopped) and output."""
    logs = [cwd / f"node{rank}.log" for rank in range(len(commands))]
    environment = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    nodes = [subprocess.Popen(command, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=environment,
                              start_new_session=True) for command, log in zip(commands, logs)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(node.poll() is None for node in nodes) \
            and not any(node.poll() for node in nodes):
        time.sleep(0.2)
    stopped = [node for node in nodes if node.poll() is None]
    for node in stopped:
        for pid in [node.pid, *descendants(node.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGABRT)
    time.sleep(2 if stopped else 0)
    for node in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()
    outputs = ["".join(line for line in log.read_text().splitlines(keepends=True)
                       if not line.startswith("Extension modules:")) for log in logs]     # faulthandler's long list
    return [(None if node in stopped else node.returncode, output) for node, output in zip(nodes, outputs)]


@pytest.mark.slow
def test_two_torchrun_nodes_on_loopback_give_the_run_of_one_node_with_two_processes(one_node, tmp_path,
                                                                                     local_server):
    """Each node a torchrun agent of one process (--nnodes 2 --node-rank K, rendezvous on 127.0.0.1): the
    first node's process writes the one experiment folder, the other trains its share and writes nothing."""
    port = local_server.free_port()
    nodes = run_nodes([[BIN / "torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                        "--master-addr", "127.0.0.1", "--master-port", str(port), BIN / "pyrosys-trainer",
                        *settings(processes(devices=1, nodes=2)), "--outdir", tmp_path / f"node{rank}"]
                       for rank in (0, 1)], cwd=tmp_path)
    assert [code for code, _ in nodes] == [0, 0], "\n".join(f"--- node {rank}, exit status {code}:\n{output[-4000:]}"
                                                         for rank, (code, output) in enumerate(nodes))
    (run,) = experiments(tmp_path / "node0")
    assert experiments(tmp_path / "node1") == [] and not (tmp_path / "node1").exists()
    assert_same_statistics(run, one_node)


@pytest.mark.slow
def test_a_resumed_ddp_run_goes_on_from_the_checkpoint_in_every_process(one_node, tmp_path, cli):
    """--resume with a later epoch limit: the other process starts from the same checkpoint as the first (not
    from epoch 0, which would train more epochs than the first and leave it waiting)."""
    run = tmp_path / one_node.name
    shutil.copytree(one_node, run)
    result = cli("pyrosys-trainer", "--resume", run, "--set", "training.terminal_conditions.epoch_limit=3",
                 cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [int(r["episode"]) for r in rows(run / "validation_statistics.csv")] == [20, 40, 60]
    assert json.loads((run / "status.json").read_text())["resumed"][0]["episode"] == 40
    assert "Traceback" not in result.stderr          # the other process ended as the first one did


@pytest.mark.parametrize("environment, arguments, other", [
    ({"RANK": "1", "WORLD_SIZE": "2"}, {"devices": 1, "num_nodes": 2}, True),        # torchrun's second node
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}, {"devices": 2, "num_nodes": 2}, True),   # srun's fourth task
    ({"LOCAL_RANK": "1", "PYROSYS_EXPERIMENT_DIR": "/runs/a"}, {"devices": 2}, True),   # Lightning's own child
    ({"RANK": "0", "WORLD_SIZE": "2"}, {"devices": 1, "num_nodes": 2}, False),       # the first process
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}, {"devices": 1}, False),             # srun -n 4 of four runs
    ({"NODE_RANK": "1"}, {}, False),                                                   # a one-process run
    ({"RANK": "1", "WORLD_SIZE": "2"}, {"devices": "auto"}, True),                   # devices the launcher counts
])
def test_only_a_multi_process_run_s_later_ranks_leave_the_folder_to_the_first(environment, arguments, other,
                                                                              monkeypatch):
    from pyrosys.workers.pipeline import fit

    for name in (*fit.RANK_VARIABLES, "WORLD_SIZE", "SLURM_NTASKS", "PYROSYS_EXPERIMENT_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert fit.is_other_rank(arguments) is other


# -- Ray Train: the same run on two workers of a local Ray instance -------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster(local_server) -> Iterator[str]:
    """HOST:PORT of a Ray instance with 2 CPUs for this module's tests, its processes stopped at the end."""
    pytest.importorskip("ray.train")
    port = local_server.free_port()
    files = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))     # its own (so /tmp/ray names no cluster killed here)
    head = subprocess.Popen([BIN / "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={files}"], env=RAY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
                            text=True, env=env or RAY_ENV)


def finish(process: subprocess.Popen, timeout: int = 240) -> tuple[int, str, str]:
    """A started command's exit status, stdout and stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def results_folder(out: str) -> Path:
    """The experiment folder the trainer names last on its `[pyrosys] results:` line."""
    return Path([line for line in out.splitlines() if line.startswith("[pyrosys] results: ")][-1].split(": ", 1)[1])


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


@pytest.mark.slow
def test_two_ray_train_workers_one_killed_and_restarted_train_the_run_of_one_node(one_node, tmp_path, ray_cluster):
    """Two Ray Train workers; one SIGKILLs itself in epoch 2 (a fault callback at step 25, after epoch 1's
    checkpoint). Ray restarts them (max_failures 1) from that checkpoint; the run completes in an ordinary folder
    with the statistics of the one-node DDP run, the tester and predictor take its checkpoint, and --resume goes on."""
    kill = json.dumps([{"_target_": "faults.KillAt", "where": "step", "at": 25, "marker": str(tmp_path / "killed")}])
    code, out, err = finish(start("pyrosys-trainer", *settings("training.ray.max_failures=1",
                                                               f"training.callbacks={kill}"),
                                  "--outdir", tmp_path / "ray", "--backend", "ray", "--address", ray_cluster))
    assert code == 0, err[-3000:]
    printed = [{line for line in text.splitlines() if "RayTrainWorker" in line and "[pyrosys] " in line}
               for text in (out, err)]
    assert printed[0] and not printed[0] & printed[1]     # a worker's printed lines reach the driver once, on stdout
    folder = results_folder(out)
    record = status(folder)
    assert (tmp_path / "killed").is_file() and record["status"] == "completed" and record["epoch"] == 2
    assert [resumed["episode"] for resumed in record["resumed"]] == [20]     # restarted once, from epoch 1's end
    for name in ("training_statistics.csv", "models/best.ckpt", "models/last.ckpt", "models/best/model.yaml",
                 "training_configuration.yaml", "description.json"):
        assert (folder / name).exists(), name
    assert_same_statistics(folder, one_node)          # every validation once, none lost or repeated, and equal
    assert Path(json.loads((folder / "description.json").read_text())["command"][0]).name == "pyrosys-trainer"
    np.save(tmp_path / "rows.npy", np.zeros((3, 1, 8, 8), dtype=np.float32))
    tester = start("pyrosys-tester", "--m", folder / "models" / "best.ckpt", "--outdir", tmp_path / "tests")
    resumed = start("pyrosys-trainer", "--resume", folder, "--backend", "ray", "--address", ray_cluster,
                    "--set", "training.terminal_conditions.epoch_limit=3")
    code, out, err = finish(start("pyrosys-predictor", "--m", folder / "models" / "best.ckpt", "--input",
                                  tmp_path / "rows.npy", "--output", tmp_path / "predictions.csv"))
    assert code == 0 and len(rows(tmp_path / "predictions.csv")) == 3, err[-3000:]
    assert finish(tester)[0] == 0
    code, out, err = finish(resumed)
    assert code == 0, err[-3000:]
    assert [int(row["episode"]) for row in rows(folder / "validation_statistics.csv")] == [20, 40, 60]
    assert len(status(folder)["resumed"]) == 2


@pytest.mark.slow
def test_ray_missing_an_address_that_does_not_answer_and_too_many_workers_are_refused_writing_nothing(
        tmp_path, ray_cluster, local_server):
    stub = tmp_path / "no_ray" / "ray"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named ray (hidden by the test)')\n")
    cases = {
        "missing": ([], {**RAY_ENV, "PYTHONPATH": str(stub.parent)}, 'pip install "pyrosys[ray]"'),
        "closed port": (["--address", f"127.0.0.1:{local_server.free_port()}"], RAY_ENV,
                        "no Ray cluster answers at 127.0.0.1:"),
        "too many": (["--address", ray_cluster, "--set", "training.ray.num_workers=64"], RAY_ENV,
                     "64 workers of 1 CPU each need room on the nodes of the Ray cluster at"),
        "misspelt": (["--set", "training.ray.num_worker=2"], RAY_ENV, "num_workers"),
    }
    started = time.monotonic()
    running = {name: start("pyrosys-trainer", *settings(), "--outdir", tmp_path / name, "--backend", "ray", *flags,
                           env=env) for name, (flags, env, _) in cases.items()}
    for name, process in running.items():
        code, out, err = finish(process, timeout=60)
        assert code == 2 and cases[name][2] in err and "Traceback" not in err, (name, err[-2000:])
        assert not (tmp_path / name).exists(), name
    assert time.monotonic() - started < 30


@pytest.mark.integration
def test_a_ray_run_that_fails_on_its_own_is_not_restarted_and_exits_1_with_its_reason(tmp_path, ray_cluster):
    """A diverged loss fails again after any restart: with max_failures 2 the workers end at the first failure."""
    started = time.monotonic()
    code, out, err = finish(start("pyrosys-trainer", *settings("training.ray.max_failures=2",
                                                               "training.optimizer={name: SGD, lr: 1.0e12}",
                                                               "logging.interval=2"),
                                  "--outdir", tmp_path, "--backend", "ray", "--address", ray_cluster))
    assert code == 1 and "the training loss is nan" in out, out[-2000:] + err[-2000:]
    (folder,) = experiments(tmp_path)
    assert status(folder)["status"] == "failed" and "resumed" not in status(folder)
    assert time.monotonic() - started < 120


def test_a_ray_worker_is_placed_whole_on_one_node():
    from pyrosys.workers.pipeline.ray_train import workers_placed

    four_nodes = [{"CPU": 4.0}] * 4
    assert workers_placed(four_nodes, {"CPU": 8.0}) == 0           # 16 CPUs in all, but no node holds 8
    assert workers_placed(four_nodes, {"CPU": 2.0}) == 8
    assert workers_placed([{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0}], {"CPU": 1.0, "GPU": 1.0}) == 1
