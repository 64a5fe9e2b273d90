"""One run over several processes: Lightning's DDP over gloo on one node (two CPU processes), and two torchrun
"nodes" of one process each on 127.0.0.1, which give the same run."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TOLERANCE = 1e-6          # relative: gloo's reductions may add in another order over two nodes than over one


def settings(devices: int, nodes: int) -> list[str]:
    """The trainer's arguments of a two-epoch Digits MLP run over `nodes` x `devices` CPU processes."""
    return ["--c", str(CONFIGS / "digits/mlp.yaml"), "--set", "training.terminal_conditions.epoch_limit=2",
            f"training.trainer={{strategy: ddp, devices: {devices}, num_nodes: {nodes}, accelerator: cpu, "
            "enable_progress_bar: false}", "logging.mlflow=null", "logging.tensorboard=null"]


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def experiments(outdir: Path) -> list[Path]:
    return [status.parent for status in outdir.glob("*/*/*/status.json")]


@pytest.fixture(scope="module")
def one_node(tmp_path_factory, cli):
    """pyrosys-trainer with Lightning's own launcher: one node, two processes."""
    outdir = tmp_path_factory.mktemp("one_node")
    result = cli("pyrosys-trainer", *settings(devices=2, nodes=1), "--outdir", outdir, cwd=outdir)
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


@pytest.mark.slow
def test_two_torchrun_nodes_on_loopback_give_the_run_of_one_node_with_two_processes(one_node, tmp_path,
                                                                                     local_server):
    """Each node a torchrun agent of one process (--nnodes 2 --node-rank K, rendezvous on 127.0.0.1): the
    first node's process writes the one experiment folder, the other trains its share and writes nothing."""
    port = local_server.free_port()
    nodes = [subprocess.Popen([BIN / "torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                               "--master-addr", "127.0.0.1", "--master-port", str(port), BIN / "pyrosys-trainer",
                               *settings(devices=1, nodes=2), "--outdir", tmp_path / f"node{rank}"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    (run,) = experiments(tmp_path / "node0")
    assert experiments(tmp_path / "node1") == [] and not (tmp_path / "node1").exists()
    for table in ("validation_statistics.csv", "validation_set_agg_statistics.csv", "training_set_agg_statistics.csv"):
        ours, reference = rows(run / table), rows(one_node / table)
        assert [r["episode"] for r in ours] == [r["episode"] for r in reference], table
        for mine, theirs in zip(ours, reference):
            for column in ("loss", "loss_mean", "accuracy", "accuracy_mean"):
                if column in theirs:
                    assert float(mine[column]) == pytest.approx(float(theirs[column]), rel=TOLERANCE), (table, column)


@pytest.mark.slow
def test_a_resumed_ddp_run_goes_on_from_the_checkpoint_in_every_process(one_node, tmp_path, cli):
    """--resume with a later epoch limit: the other process starts from the same checkpoint as the first (not
    from epoch 0, which would train more epochs than the first and leave it waiting)."""
    import shutil

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
