"""pyrosys-grid-trainer, -tester and -analyzer through their console commands, with real runs."""
from __future__ import annotations

import contextlib
import csv
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pyrosys.workers import grid_analyzer

BIN = Path(sys.executable).parent
MLP = """\
problem: {{name: Digits, batch_size: 64}}
model: {{name: MLP, hidden_sizes: [32]}}
training:
  seed: 11
  optimizer: {{name: {optimizer}, lr: {lr}}}
  terminal_conditions: {{epoch_limit: {epochs}}}
  trainer: {{enable_progress_bar: false}}
logging: {{interval: 5}}
"""


def experiment(epochs: int = 2, lr: float = 0.01, optimizer: str = "Adam") -> str:
    return MLP.format(epochs=epochs, lr=lr, optimizer=optimizer)


def status_rows(grid: Path) -> dict[str, dict[str, str]]:
    with open(grid / "grid_status.csv", newline="") as stream:
        return {row["run"]: row for row in csv.DictReader(stream)}


def grid_folder(outdir: Path) -> Path:
    (folder,) = outdir.glob("grid_*")
    return folder


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    """A fixed-seed grid of 2 learning rates x 2 repetitions, run once with the local pool."""
    root = tmp_path_factory.mktemp("grid")
    (root / "mlp.yaml").write_text(experiment())
    (root / "grid.yaml").write_text(textwrap.dedent("""\
        grid_tasks: [{default_configs: mlp.yaml}]
        grid_search: {training.optimizer.lr: [1.0e-3, 1.0e-2]}
        grid_settings: {experiment_repetitions: 2}
        """))
    done = subprocess.run([BIN / "pyrosys-grid-trainer", "--c", root / "grid.yaml", "--outdir", root / "local"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, grid_folder(root / "local"), done.stdout


def test_a_grid_file_runs_every_run_into_one_grid_folder_with_plan_and_status(small_grid):
    root, grid, output = small_grid
    assert (grid / "grid.yaml").is_file()
    rows = status_rows(grid)
    assert len(rows) == 4 and {row["status"] for row in rows.values()} == {"completed"}
    assert sorted(row["seed"] for row in rows.values()) == ["11", "11", "12", "12"]
    for row in rows.values():
        folder = Path(row["folder"])
        assert folder.parent == grid and (folder / "models" / "best.ckpt").is_file()
        assert (grid / "logs" / f"{row['run']}.log").is_file()
    assert "4 completed, 0 failed" in output and "2 at a time" in output
    # the pool's processes import torch before the first run starts: said, not a silence
    assert output.index("4 waiting") < output.index("starting 2 worker processes") < output.index("| started ")


def grid_runs(grid: Path) -> tuple[list[dict], list[dict]]:
    """The runs in the grid's SQLite MLflow store, read with sqlite3 (importing MLflow here would cost more
    than the test): (the grid's own runs, the runs nested under one), each with its tags."""
    with contextlib.closing(sqlite3.connect(grid / "mlflow.db")) as store:
        runs = {uuid: {"id": uuid, "name": name, "status": status, "start": start, "end": end, "tags": {}}
                for uuid, name, status, start, end in store.execute(
                    "SELECT run_uuid, name, status, start_time, end_time FROM runs")}
        for uuid, key, value in store.execute("SELECT run_uuid, key, value FROM tags"):
            runs[uuid]["tags"][key] = value
    return ([r for r in runs.values() if "mlflow.parentRunId" not in r["tags"]],
            [r for r in runs.values() if "mlflow.parentRunId" in r["tags"]])


def test_a_grid_s_mlflow_runs_are_nested_under_one_run_named_by_the_grid(small_grid):
    _, grid, _ = small_grid
    (parent,), children = grid_runs(grid)
    assert parent["name"] == grid.name and parent["status"] == "FINISHED"
    assert len(children) == 4 and {r["tags"]["pyrosys.grid"] for r in children} == {grid.name}
    assert {r["tags"]["mlflow.parentRunId"] for r in children} == {parent["id"]}
    assert parent["start"] <= min(r["start"] for r in children)    # the grid's own times
    assert parent["end"] >= max(r["end"] for r in children)


def test_runs_of_a_pool_worker_share_its_process(small_grid):
    _, grid, _ = small_grid
    import json

    pids = {json.loads((Path(row["folder"]) / "description.json").read_text()).get("pid")
            for row in status_rows(grid).values()}
    assert len(pids) <= 2


def test_the_grid_tester_tests_every_completed_run_with_repeats(small_grid):
    _, grid, _ = small_grid
    done = subprocess.run([BIN / "pyrosys-grid-tester", "--expdir", grid, "--n", "2"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(grid / "grid_testing.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4 and all(r["status"] == "completed" and float(r["accuracy"]) > 0.3 for r in rows)
    assert all(r["accuracy_std"] != "" for r in rows)


def test_the_analyzer_ranks_runs_by_the_monitor_with_stable_columns_and_a_plot(small_grid):
    _, grid, _ = small_grid
    done = subprocess.run([BIN / "pyrosys-grid-analyzer", "--expdir", grid], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with open(grid / "analysis.csv", newline="") as stream:
        reader = csv.DictReader(stream)
        rows = list(reader)
    columns = reader.fieldnames
    assert columns[:6] == ["rank", "run", "status", "training.optimizer.lr", "seed", "epoch"]
    assert columns[-1] == "seconds" and "val_loss" in columns and "test_accuracy" in columns
    losses = [float(r["val_loss"]) for r in rows]
    assert losses == sorted(losses) and [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert (grid / "analysis.md").read_text().count("\n| ") == 2 + 4 and (grid / "analysis.png").stat().st_size > 10000


def test_epochs_count_from_1_in_tables_and_log_lines_and_repetitions_are_grouped(small_grid):
    _, grid, _ = small_grid
    run = sorted(status_rows(grid).values(), key=lambda row: row["run"])[0]
    folder = Path(run["folder"])
    for name in ("training_statistics.csv", "training_set_agg_statistics.csv", "validation_statistics.csv"):
        with open(folder / name, newline="") as stream:
            epochs = [row["epoch"] for row in csv.DictReader(stream)]
        assert (epochs[0], epochs[-1]) == ("1", "2"), name                   # two epochs: 1 and 2
    assert "training: episode 1  epoch 1  loss" in (folder / "pyrosys.log").read_text()
    rows, _ = grid_analyzer.collect(grid)
    assert {row["best_epoch"] for row in rows} <= {1, 2} and {row["epoch"] for row in rows} == {2}
    panels = grid_analyzer.configurations(grid_analyzer.rank(rows))
    (runs_of,) = panels.values()                                           # one data set
    assert sorted((label, len(runs)) for label, runs in runs_of) == [("optimizer.lr=0.001", 2),
                                                                     ("optimizer.lr=0.01", 2)]
    assert [epoch for epoch, _ in runs_of[0][1][0]["curve"]] == [1.0, 2.0]


def test_the_analyzer_lists_a_retried_run_once_under_its_name_not_its_first_try(small_grid, tmp_path):
    import shutil

    _, original, _ = small_grid
    grid = tmp_path / original.name
    shutil.copytree(original, grid)
    rows = status_rows(grid)
    retried = sorted(rows)[0]
    shutil.copytree(grid / retried, grid / f"{retried}_1")          # the retry; the first try stays as it was
    with open(grid / "grid_status.csv", newline="") as stream:
        table = list(csv.DictReader(stream))
    for row in table:
        row["folder"] = str(grid / (f"{retried}_1" if row["run"] == retried else Path(row["folder"]).name))
    with open(grid / "grid_status.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    analysed, _ = grid_analyzer.collect(grid)
    assert sorted(row["run"] for row in analysed) == sorted(rows)


@pytest.mark.integration     # a local Ray instance: make integration
def test_the_ray_backend_gives_the_same_analysis_as_the_local_pool(small_grid):
    pytest.importorskip("ray")
    root, local, _ = small_grid
    done = subprocess.run([BIN / "pyrosys-grid-trainer", "--c", root / "grid.yaml", "--outdir", root / "ray",
                           "--backend", "ray"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    tables = []
    for grid in (local, grid_folder(root / "ray")):
        subprocess.run([BIN / "pyrosys-grid-analyzer", "--expdir", grid], capture_output=True, check=True, timeout=120)
        with open(grid / "analysis.csv", newline="") as stream:
            tables.append([{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(stream)])
    assert tables[0] == tables[1]


def test_a_second_grid_worker_on_the_same_grid_is_refused(small_grid):
    _, grid, _ = small_grid
    with open(grid / "grid.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(str(os.getpid()))
        lock.flush()
        done = subprocess.run([BIN / "pyrosys-grid-trainer", "--resume", grid], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2 and "another grid worker is running this grid" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_grid_file_exits_2_before_any_folder_is_made(tmp_path):
    (tmp_path / "grid.yaml").write_text("grid_tasks: [{default_configs: nowhere.yaml}]\n")
    done = subprocess.run([BIN / "pyrosys-grid-trainer", "--c", tmp_path / "grid.yaml", "--outdir", tmp_path / "out"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "grid_tasks[0].default_configs" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_failed_runs_are_reported_with_reasons_and_resume_reruns_only_them(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "good_a.yaml").write_text(experiment(lr=0.01))
    (configs / "good_b.yaml").write_text(experiment(lr=0.003))
    (configs / "broken.yaml").write_text(experiment().replace("name: MLP", "name: MLPX"))
    (configs / "diverges.yaml").write_text(experiment(lr=1.0e12, optimizer="SGD"))
    (configs / "killed.yaml").write_text(experiment(epochs=150))
    (configs / "_defaults.yaml").write_text("training: {seed: 3}\n")
    grid_process = subprocess.Popen([BIN / "pyrosys-grid-trainer", "--c", configs, "--outdir", tmp_path / "out",
                                     "--max-concurrent", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    killed = None
    while killed is None and time.monotonic() < deadline:
        time.sleep(0.2)
        grids = list((tmp_path / "out").glob("grid_*"))
        if not grids or not (grids[0] / "grid_status.csv").is_file():
            continue
        row = status_rows(grids[0]).get("004_killed", {})
        if row.get("status") == "running" and row.get("pid") and (Path(row["folder"]) / "models" / "last.ckpt").is_file():
            killed = int(row["pid"])
            os.kill(killed, signal.SIGKILL)
    output, errors = grid_process.communicate(timeout=240)
    assert killed is not None, output + errors
    assert grid_process.returncode == 1, output + errors
    grid = grid_folder(tmp_path / "out")
    rows = status_rows(grid)
    assert set(rows) == {"000_broken", "001_diverges", "002_good_a", "003_good_b", "004_killed"}
    assert rows["002_good_a"]["status"] == rows["003_good_b"]["status"] == "completed"
    assert "MLPX" in rows["000_broken"]["reason"] and "broken.yaml" in rows["000_broken"]["reason"]
    assert "training loss is nan" in rows["001_diverges"]["reason"]
    assert "killed by signal 9" in rows["004_killed"]["reason"]
    assert all(rows[r]["status"] == "failed" for r in ("000_broken", "001_diverges", "004_killed"))

    (configs / "broken.yaml").write_text(experiment())                       # the researcher fixes it
    good_started = {r: (Path(rows[r]["folder"]) / "status.json").read_text() for r in ("002_good_a", "003_good_b")}
    done = subprocess.run([BIN / "pyrosys-grid-trainer", "--resume", grid], capture_output=True, text=True,
                          timeout=300)
    after = status_rows(grid)
    assert done.returncode == 1, done.stdout + done.stderr                    # the diverging run fails again
    assert "3 to run" in done.stdout
    assert {r: after[r]["attempts"] for r in after} == {"000_broken": "2", "001_diverges": "2", "002_good_a": "1",
                                                        "003_good_b": "1", "004_killed": "2"}
    assert after["000_broken"]["status"] == after["004_killed"]["status"] == "completed"
    assert after["004_killed"]["folder"] == rows["004_killed"]["folder"]      # resumed in place, from last.ckpt
    assert '"resumed"' in (Path(after["004_killed"]["folder"]) / "status.json").read_text()
    assert good_started == {r: (Path(after[r]["folder"]) / "status.json").read_text() for r in good_started}
    (parent,), children = grid_runs(grid)             # the resumed grid's runs join the same grid run
    assert {r["tags"]["mlflow.parentRunId"] for r in children} == {parent["id"]}
