"""Concurrency, disk and tracking outages: distinct folders for simultaneous runs, a grid status that is
never half-written, clear errors with nothing half-written when files cannot be written, and training
that completes through an MLflow server's outage and is logged again afterwards."""
from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pyrosys.execution.grid_plan import GridRun
from pyrosys.folders.grid import Grid, GridStatus

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BIN = Path(sys.executable).parent
QUICK = ["--set", "training.terminal_conditions.epoch_limit=2", "training.trainer.enable_progress_bar=false",
         "logging.mlflow=null"]


def trainer(*argv: str, **options) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "pyrosys-trainer"), *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, **options)


def test_two_trainers_started_in_the_same_second_get_distinct_folders(tmp_path):
    runs = [trainer("--c", CONFIGS / "digits/mlp.yaml", "--outdir", tmp_path, *QUICK) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    folders = sorted(p.parent for p in tmp_path.glob("Digits/MLP/*/status.json"))
    assert len(folders) == 2 and folders[0] != folders[1]
    assert all(json.loads((f / "status.json").read_text())["status"] == "completed" for f in folders)


def test_grid_status_is_never_seen_half_written(tmp_path):
    runs = [GridRun(name=f"{i:03d}_run", configs=["x.yaml"]) for i in range(50)]
    status = GridStatus(Grid(tmp_path), runs)
    status.save()
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            with open(tmp_path / "grid_status.csv", newline="") as stream:
                seen.append(len(list(csv.DictReader(stream))))

    reader = threading.Thread(target=read)
    reader.start()
    for index in range(400):
        status.update(runs[index % 50].name, status="running", reason="x" * (index % 97))
    stop.set()
    reader.join()
    assert len(seen) > 10 and set(seen) == {50}


def test_a_full_disk_fails_the_run_clearly_and_leaves_no_half_written_checkpoint(tmp_path):
    def small_files() -> None:                     # files may not grow past 64 KB: a checkpoint cannot be written
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    run = trainer("--c", CONFIGS / "digits/mlp.yaml", "--outdir", tmp_path, "--run-name", "full", *QUICK,
                  preexec_fn=small_files)
    _, error = run.communicate(timeout=300)
    assert run.returncode == 1 and "Traceback" not in error
    assert "could not be written" in error and "models/" in error
    status = json.loads((tmp_path / "full" / "status.json").read_text())
    assert status["status"] == "failed" and "could not be written" in status["reason"]
    assert not list((tmp_path / "full" / "models").glob("*"))      # no checkpoint, no temporary file


def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_starts(tmp_path):
    # /sys refuses new folders to every user, root included (a chmod'ed folder would not stop root)
    run = trainer("--c", CONFIGS / "digits/mlp.yaml", "--outdir", "/sys/pyrosys-experiments", *QUICK, cwd=tmp_path)
    _, error = run.communicate(timeout=300)
    assert run.returncode == 2 and "Traceback" not in error, error
    assert "--outdir" in error and "/sys/pyrosys-experiments" in error and "cannot be created" in error
    assert not Path("/sys/pyrosys-experiments").exists() and list(tmp_path.iterdir()) == []


def mlflow_server(store: Path, port: int, local_server) -> subprocess.Popen:
    server = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{store}/server.db",
                               "--artifacts-destination", str(store / "artifacts"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    local_server.wait_until_answering(f"http://127.0.0.1:{port}/health", server, seconds=90)
    return server


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.mark.reliability      # two mlflow server starts: over a minute; make reliability
def test_an_mlflow_server_lost_mid_run_warns_training_completes_and_the_run_is_logged_again(tmp_path, local_server):
    port = local_server.free_port()
    uri = f"http://127.0.0.1:{port}"
    server = mlflow_server(tmp_path, port, local_server)
    run = trainer("--c", CONFIGS / "digits/mlp.yaml", "--outdir", tmp_path / "runs", "--run-name", "outage",
                  "--mlflow", uri, "--set", "training.terminal_conditions.epoch_limit=6", "logging.interval=5",
                  "training.trainer.enable_progress_bar=false")
    folder = tmp_path / "runs" / "outage"
    deadline = time.monotonic() + 120
    while not (folder / "training_statistics.csv").is_file():        # training has started
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.1)
    stop(server)                                                     # the server goes away mid-run
    _, error = run.communicate(timeout=300)
    assert run.returncode == 0, error
    assert f"MLflow tracking at {uri} stopped" in error
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "completed" and status["mlflow"]["logged"] is False
    with open(folder / "training_statistics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["episode"]) for r in rows] == [1, *range(5, 6 * 40 + 1, 5)]     # complete, no gaps

    server = mlflow_server(tmp_path, port, local_server)                           # back up: log the run again
    try:
        done = subprocess.run([str(BIN / "pyrosys-mlflow-sync"), "--expdir", folder], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        relogged = json.loads((folder / "status.json").read_text())["mlflow"]
        assert relogged["logged"] is True and relogged["relogged"] is True
        client = MlflowClient(tracking_uri=uri)
        history = client.get_metric_history(relogged["run_id"], "training/loss")
        assert [m.step for m in history] == [int(r["episode"]) for r in rows]
        logged = client.get_run(relogged["run_id"])
        assert logged.info.status == "FINISHED" and "test/accuracy" in logged.data.metrics
        assert logged.data.params["model.name"] == "MLP"
    finally:
        stop(server)
