"""MLflow tracking: the embedded SQLite store, a real `mlflow server` on 127.0.0.1, and an unreachable one."""
from __future__ import annotations

import getpass
import json
import math
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from pyrosys.models.model import Model
from pyrosys.tracking.mlflow_sink import milliseconds
from pyrosys.tracking.tables import SPREAD
from pyrosys.workers import mlflow_sync, tester, trainer

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
SHORT = ["training.terminal_conditions.epoch_limit=2", "training.trainer.enable_progress_bar=false",
         "logging.interval=10", "logging.tensorboard=null"]


def train(outdir: Path, *extra: str) -> Path:
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(outdir), *extra[:2], "--set", *SHORT,
            *extra[2:]]
    assert trainer.main(argv) == 0
    (status,) = outdir.glob("Digits/MLP/*/status.json")
    return status.parent


def check_run(client: MlflowClient, run_id: str, folder: Path) -> None:
    run = client.get_run(run_id)
    status = json.loads((folder / "status.json").read_text())
    assert run.info.status == "FINISHED"
    # the run's real times (the MLflow run is created after training), to the second status.json keeps
    assert abs(run.info.start_time - milliseconds(status["started"])) < 2000
    span = run.info.end_time - run.info.start_time             # covers the fit (less the start's lost fraction)
    assert run.info.end_time >= milliseconds(status["finished"]) and span > 1000 * status["fit_seconds"] - 1000
    assert span > 0
    assert run.data.params["model.name"] == "MLP" and run.data.params["model.hidden_sizes"] == "[128, 64]"
    assert run.data.tags["pyrosys.version"] == "0.1.0" and run.data.tags["pyrosys.command"] == " ".join(sys.argv)
    assert run.data.tags["mlflow.source.name"] == Path(sys.argv[0]).name
    assert run.data.tags["mlflow.source.type"] == "LOCAL" and run.data.tags["mlflow.user"] == getpass.getuser()
    steps = [m.step for m in client.get_metric_history(run_id, "training/loss")]
    assert steps == [1, 10, 20, 30, 40, 50, 60, 70, 80]          # every logged episode, no gaps, no repeats
    rates = client.get_metric_history(run_id, "training/learning_rate")
    logs = client.get_metric_history(run_id, "training/learning_rate_log10")
    assert [m.step for m in logs] == steps and [m.value for m in logs] == [math.log10(m.value) for m in rates]
    assert len(client.get_metric_history(run_id, "validation/accuracy")) == 2
    assert "test/accuracy" in run.data.metrics
    assert not [name for name in run.data.metrics if name.endswith(SPREAD) or name.startswith("validation_agg/")]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"training_configuration.yaml", "description.json", "curves.png", "confusion_matrix.png"} <= artifacts
    check_logged_model(client, run, folder / "models" / "best")


def check_logged_model(client: MlflowClient, run, bundle: Path) -> None:
    """The bundle is the run's logged model, and MLflow's pyfunc loader predicts what Model.load predicts."""
    (output,) = run.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.source_run_id == run.info.run_id and model.experiment_id == run.info.experiment_id
    rows = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    expected = Model.load(bundle).predict(torch.from_numpy(rows).reshape(5, 1, 8, 8)).numpy()
    mlflow.set_tracking_uri(client.tracking_uri)
    answered = mlflow.pyfunc.load_model(f"models:/{output.model_id}").predict(pd.DataFrame(rows))
    np.testing.assert_allclose(answered, expected, rtol=1e-5, atol=1e-5)


def test_embedded_sqlite_store_holds_params_metrics_tags_artifacts_and_a_registered_model(tmp_path, monkeypatch,
                                                                                           recwarn, capfd):
    run = train(tmp_path, "--set", "logging.mlflow.registered_model_name=digits-mlp")
    said = capfd.readouterr().err + "".join(str(w.message) for w in recwarn)
    assert "type hints" not in said and "signature" not in said          # MLflow's advice is not the user's
    status = json.loads((run / "status.json").read_text())
    assert status["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert status["mlflow"]["logged"] is True
    client = MlflowClient(tracking_uri=status["mlflow"]["tracking_uri"])
    check_run(client, status["mlflow"]["run_id"], run)
    versions = client.search_model_versions("name='digits-mlp'")
    assert [v.run_id for v in versions] == [status["mlflow"]["run_id"]]
    check_a_later_test_is_nested_under_the_training_run(client, status["mlflow"]["run_id"], run)
    monkeypatch.chdir(tmp_path)                       # a store named on the command line keeps its artifacts here
    check_a_relogged_run_keeps_its_times_and_its_model(tmp_path, run)


def check_a_relogged_run_keeps_its_times_and_its_model(tmp_path: Path, folder: Path) -> None:
    """pyrosys-mlflow-sync into another store: the run's own start and end, its bundle as a logged model."""
    uri = f"sqlite:///{tmp_path.resolve()}/other.db"
    assert mlflow_sync.main(["--expdir", str(folder), "--mlflow", uri]) == 0
    status = json.loads((folder / "status.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(status["mlflow"]["run_id"])
    assert (run.info.start_time, run.info.end_time) == (milliseconds(status["started"]),
                                                       milliseconds(status["finished"]))
    check_logged_model(client, run, folder / "models" / "best")


def check_a_later_test_is_nested_under_the_training_run(client: MlflowClient, training: str, folder: Path) -> None:
    """pyrosys-tester on the finished run: a child run with the test values and the confusion matrix."""
    assert tester.main(["--m", str(folder / "models" / "best.ckpt")]) == 0
    experiment = client.get_run(training).info.experiment_id
    (child,) = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{training}'")
    (testing,) = [f for f in folder.glob("testing_*") if f.name == child.info.run_name.removeprefix("test ")]
    summary = yaml.safe_load((testing / "testing_set_agg_statistics.yaml").read_text())
    assert child.data.metrics == {"test/loss": summary["loss"], "test/accuracy": summary["accuracy"]}
    assert child.data.tags["mlflow.source.name"] == Path(sys.argv[0]).name
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"confusion_matrix.png", "confusion_matrix.csv", "testing_set_agg_statistics.yaml"} <= artifacts


def test_mlflow_can_be_switched_off(tmp_path):
    run = train(tmp_path, "--set", "logging.mlflow=null")
    assert "mlflow" not in json.loads((run / "status.json").read_text())
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.integration   # a real `mlflow server`: make integration
def test_a_real_mlflow_server_on_localhost_receives_the_run(tmp_path, local_server):
    port = local_server.free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                               "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        local_server.wait_until_answering(f"{uri}/health", server, seconds=90)
        run = train(tmp_path / "runs", "--mlflow", uri)
        status = json.loads((run / "status.json").read_text())
        assert status["mlflow"] == {"tracking_uri": uri, "run_id": status["mlflow"]["run_id"], "logged": True}
        check_run(MlflowClient(tracking_uri=uri), status["mlflow"]["run_id"], run)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_unreachable_server_gives_a_warning_and_training_completes(tmp_path, capsys, local_server):
    run = train(tmp_path, "--mlflow", f"http://127.0.0.1:{local_server.free_port()}")
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["mlflow"]["logged"] is False
    assert "MLflow tracking at http://127.0.0.1" in capsys.readouterr().err
    with open(run / "training_statistics.csv") as stream:
        assert len(stream.read().splitlines()) == 1 + 9


def test_consecutive_metric_batches_are_merged_in_order_and_other_jobs_keep_their_place():
    from pyrosys.tracking.mlflow_sink import coalesce

    a, b, c = ("loss", 1.0, 0, 1), ("loss", 0.5, 0, 2), ("acc", 0.9, 0, 2)
    jobs = [("start",), ("metrics", [a]), ("metrics", [b, c]), ("params", {}, {}), ("metrics", [c]),
            ("finish", "FINISHED"), None]
    assert coalesce(jobs) == [("start",), ("metrics", [a, b, c]), ("params", {}, {}), ("metrics", [c]),
                              ("finish", "FINISHED"), None]


def test_a_new_store_is_copied_from_the_cached_empty_one_and_works(tmp_path, monkeypatch):
    import sqlite3

    import mlflow

    from pyrosys.tracking.mlflow_sink import new_sqlite_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    new_sqlite_store(tmp_path / "first.db")
    assert (tmp_path / "cache" / "pyrosys" / f"mlflow-{mlflow.__version__}-empty.db").is_file()
    new_sqlite_store(tmp_path / "second.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "first.db", "second.db"]   # no partial file
    with sqlite3.connect(tmp_path / "second.db") as connection:
        (location,) = connection.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0").fetchone()
    assert location == str(tmp_path / "mlruns" / "0")               # as MLflow would have made it here
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'second.db'}")
    run = client.create_run(client.create_experiment("copied"))
    client.log_metric(run.info.run_id, "loss", 0.5, step=3)
    assert [(m.value, m.step) for m in client.get_metric_history(run.info.run_id, "loss")] == [(0.5, 3)]


def test_an_unwritable_cache_leaves_the_store_to_mlflow(tmp_path, monkeypatch):
    from pyrosys.tracking.mlflow_sink import new_sqlite_store

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    new_sqlite_store(tmp_path / "store.db")
    assert not (tmp_path / "store.db").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'store.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_a_damaged_cached_store_leaves_nothing_behind_and_the_store_to_mlflow(tmp_path, monkeypatch):
    import mlflow

    from pyrosys.tracking.mlflow_sink import new_sqlite_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "pyrosys").mkdir(parents=True)
    template = tmp_path / "cache" / "pyrosys" / f"mlflow-{mlflow.__version__}-empty.db"
    template.write_text("not a database")
    (tmp_path / "runs").mkdir()
    new_sqlite_store(tmp_path / "runs" / "store.db")
    assert list((tmp_path / "runs").iterdir()) == [] and not template.exists()      # made again next time
    new_sqlite_store(tmp_path / "runs" / "store.db")
    assert template.is_file() and (tmp_path / "runs" / "store.db").is_file()


def test_a_grid_s_run_ends_with_the_last_of_its_runs_under_way(tmp_path):
    from pyrosys.tracking.mlflow_sink import _Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    settings = {"tracking_uri": uri, "experiment_name": "grid", "run_name": None, "artifact_root": None,
                "run_file": None, "grid": ("grid_1", str(tmp_path), 0), "start_time": None}
    first, second = _Tracker({**settings, "run_id": None}), _Tracker({**settings, "run_id": None})
    first.start(), second.start()
    parent = first.client.get_run(first.run_id).data.tags["mlflow.parentRunId"]
    assert second.client.get_run(second.run_id).data.tags["mlflow.parentRunId"] == parent
    first.finish("FINISHED")
    assert first.client.get_run(parent).info.status == "RUNNING"           # the second run is under way
    second.finish("FINISHED")
    assert first.client.get_run(parent).info.status == "FINISHED"
