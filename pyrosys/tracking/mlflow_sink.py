"""MLflow tracking: params, batched metrics, tags and artifacts of a run, never on the training path.

While a run trains, no MLflow call runs in the trainer's process: jobs wait in order and, 30 s into a
run, a helper process on idle CPU carries them out, so training never waits on the tracking store nor
shares the interpreter lock with it. A run that ends sooner does its tracking after training, in its
own process. Metrics travel in batches (one job per table and flush, never one call per metric per
step). When the store cannot be reached, the trainer logs one warning and tracking stops; training and
the CSV statistics go on.

MLflow itself is imported inside the functions that call it, which run in the helper process or at
the end of a run: importing this module costs the trainer nothing while it trains.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import math
import multiprocessing
import os
import queue
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.folders.experiment import Experiment, TestingFolder
from pyrosys.folders.grid import Grid
from pyrosys.tracking.tables import SPREAD, read_rows

log = logging.getLogger("pyrosys.mlflow")

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000


def flatten(tree: Mapping, prefix: str = "", as_text: bool = True) -> dict[str, Any]:
    """Dotted keys and string values of a nested configuration (MLflow params); with `as_text` false,
    numbers, booleans and strings keep their type (TensorBoard's HParams sorts and filters by them)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path, as_text))
        elif as_text or not isinstance(value, (bool, int, float, str)):
            flat[path] = str(value)[:MAX_PARAM_LENGTH]
        else:
            flat[path] = value
    return flat


def tracked(table: str, name: str) -> bool:
    """Whether a statistics column becomes an MLflow metric: every table's own values, not the per-batch
    spread of the aggregate tables (nor validation_agg's copies of the validation values); those stay
    in the CSV files and TensorBoard. It keeps a run's metrics few enough to log in a blink."""
    return table not in ("testing", "validation_agg") and name not in ("episode", "epoch", "batches", "samples") \
        and not name.endswith(SPREAD)


def metric_rows(table: str, row: Mapping[str, Any], stamp: int, step: int) -> list[tuple]:
    """The (key, value, timestamp, step) metrics of one statistics row. The learning rate comes with its
    log10 beside it: MLflow draws charts on a linear scale, where a decaying rate lies flat along 0."""
    rows = []
    for name, value in row.items():
        if not tracked(table, name) or value in (None, ""):
            continue
        rows.append((f"{table}/{name}", float(value), stamp, step))
        if name == "learning_rate" and float(value) > 0:
            rows.append((f"{table}/learning_rate_log10", math.log10(float(value)), stamp, step))
    return rows


def milliseconds(moment: str | None) -> int | None:
    """An ISO time of a status file (or None) as MLflow's milliseconds since the epoch."""
    return int(dt.datetime.fromisoformat(moment).timestamp() * 1000) if moment else None


SQLITE = "sqlite:///"
GRID_TAG, GRID_FOLDER_TAG, PARENT_TAG = "pyrosys.grid", "pyrosys.grid_folder", "mlflow.parentRunId"


def default_tracking_uri(outdir: str | Path) -> str:
    """The embedded store: a SQLite database in the experiments folder."""
    return f"{SQLITE}{Path(outdir).resolve() / 'mlflow.db'}"


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of an embedded SQLite store; None for a server."""
    return Path(tracking_uri[len(SQLITE):]) if tracking_uri.startswith(SQLITE) else None


def new_sqlite_store(database: Path) -> None:
    """A new, empty SQLite tracking store at `database`, copied from one made once per MLflow version
    and kept in the user's cache (making the tables runs all of MLflow's schema migrations, about
    0.8 s, once per new experiments folder and grid otherwise). Where there is no home folder, the cache
    cannot be written or its copy is damaged, nothing is left here and MLflow makes the store itself."""
    import shutil
    import sqlite3
    import tempfile

    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyrosys"
        template = cache / f"mlflow-{mlflow.__version__}-empty.db"
        if not template.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as scratch:
                MlflowClient(tracking_uri=f"{SQLITE}{scratch}/store.db").search_experiments()
                os.replace(Path(scratch) / "store.db", template)
        partial = database.with_name(f".{database.name}.{os.getpid()}.partial")
        shutil.copyfile(template, partial)
    except (OSError, RuntimeError, KeyError):    # no home folder, a cache that cannot be written
        return                                   # MLflow makes the store itself
    # the Default experiment's artifact folder and times, as MLflow would have set them here and now
    now = int(time.time() * 1000)
    try:
        with contextlib.closing(sqlite3.connect(partial)) as connection, connection:
            connection.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                               "last_update_time = ? WHERE experiment_id = 0",
                               (str(Path.cwd() / "mlruns" / "0"), now, now))
        os.replace(partial, database)
    except (OSError, sqlite3.Error) as error:
        partial.unlink(missing_ok=True)          # MLflow makes the store itself
        if isinstance(error, sqlite3.Error):
            template.unlink(missing_ok=True)     # a damaged copy in the cache: made again next time


class _Tracker:
    """One MlflowClient and the run it logs to (in the helper process, or in the trainer's own at the end
    of a short run)."""

    def __init__(self, settings: dict) -> None:
        from mlflow.tracking import MlflowClient

        self.settings = settings
        database = sqlite_database(settings["tracking_uri"])
        if database is not None and not database.exists():
            new_sqlite_store(database)
        self.client = MlflowClient(tracking_uri=settings["tracking_uri"])
        self.run_id = settings["run_id"]

    def start(self) -> str:
        """Create the run (at its real start time, nested under its grid's run) or reopen it; say where."""
        settings = self.settings
        if self.run_id is None:
            experiment_id = self.experiment_id()
            tags = self.grid_tags(experiment_id) if settings["grid"] else {}
            self.run_id = self.client.create_run(experiment_id, start_time=settings["start_time"], tags=tags,
                                                 run_name=settings["run_name"]).info.run_id
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        if settings["run_file"]:            # so that a killed run can be resumed into the same MLflow run
            write_text_atomic(settings["run_file"],
                              json.dumps({"tracking_uri": settings["tracking_uri"], "run_id": self.run_id}))
        return self.run_id

    def experiment_id(self) -> str:
        """The MLflow experiment the run goes to, created on first use."""
        experiment = self.client.get_experiment_by_name(self.settings["experiment_name"])
        if experiment is not None:
            return experiment.experiment_id
        root = self.settings["artifact_root"]
        return self.client.create_experiment(self.settings["experiment_name"],
                                             artifact_location=Path(root).resolve().as_uri() if root else None)

    def grid_tags(self, experiment_id: str) -> dict[str, str]:
        """The tags that nest a grid's run under the grid's own run in this experiment: found by the grid
        folder (a resumed grid attaches to the same one) or created, starting when the grid wrote its plan;
        it is running while a run starts."""
        name, folder, started = self.settings["grid"]
        found = [run for run in self.client.search_runs([experiment_id], f"tags.`{GRID_TAG}` = '{name}'")
                 if run.data.tags.get(GRID_FOLDER_TAG) == folder and PARENT_TAG not in run.data.tags]
        if found:
            parent = found[0].info.run_id
            self.client.update_run(parent, status="RUNNING")
        else:
            parent = self.client.create_run(experiment_id, start_time=started, run_name=name,
                                            tags={GRID_TAG: name, GRID_FOLDER_TAG: folder}).info.run_id
        return {GRID_TAG: name, GRID_FOLDER_TAG: folder, PARENT_TAG: parent}

    def params(self, params: dict, tags: dict) -> None:
        from mlflow.entities import Param, RunTag

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, v) for k, v in params.items() if k not in existing]
        run_tags = [RunTag(k, str(v)) for k, v in tags.items()]
        for start in range(0, max(len(fresh), 1), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=fresh[start:start + MAX_PARAMS_PER_BATCH],
                                  tags=run_tags if start == 0 else [])

    def metrics(self, rows: list) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(*row) for row in rows]
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + MAX_METRICS_PER_BATCH])

    def artifacts(self, files: list, bundle: str | None, registered_model: str | None,
                  model_code: str | None = None) -> None:
        """Files as the run's artifacts; the bundle as an MLflow model (see `log_bundle`)."""
        for path in map(Path, files):
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        if bundle is not None and Path(bundle).is_dir() and model_code is not None:
            self.log_bundle(bundle, registered_model, model_code)

    def log_bundle(self, bundle: str, registered_model: str | None, model_code: str) -> None:
        """The bundle as a logged pyfunc model of the run (MLflow's "Logged models"; `mlflow models serve`
        answers with it): `model_code` is the file that wraps `Model.load`, the bundle its artifact.
        Requirements are given, not inferred (inferring loads the model in a fresh interpreter)."""
        import mlflow
        from mlflow.models import Model

        import pyrosys

        mlflow.set_tracking_uri(self.settings["tracking_uri"])      # Model.log resolves the store and the
        mlflow.set_experiment(experiment_id=self.client.get_run(self.run_id).info.experiment_id)  # experiment
        # MLflow's advice on type hints and its note that no signature is inferred (the bundle's data definitions
        # describe its inputs) are not the user's to act on
        pyfunc_log, level = logging.getLogger("mlflow.pyfunc"), logging.getLogger("mlflow.pyfunc").level
        pyfunc_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                Model.log(artifact_path=None, name="model", flavor=mlflow.pyfunc, run_id=self.run_id,
                          python_model=model_code, artifacts={"bundle": bundle},
                          registered_model_name=registered_model,
                          pip_requirements=[f"pyrosys=={pyrosys.__version__}", f"mlflow=={mlflow.__version__}"])
        finally:
            pyfunc_log.setLevel(level)

    def finish(self, status: str, end_time: int | None = None) -> None:
        """End the run (now, or at the end a relogged run had); a grid's run ends when none of its runs is under
        way (each run ends itself before it looks, so the last one to end always sees the others ended)."""
        self.client.set_terminated(self.run_id, status=status, end_time=end_time)
        run = self.client.get_run(self.run_id)
        parent = run.data.tags.get(PARENT_TAG)
        if parent and not self.client.search_runs(     # the last of the grid's runs under way ends the grid's run
                [run.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent}' and attributes.status = 'RUNNING'"):
            self.client.set_terminated(parent, status="FINISHED", end_time=end_time)


@contextlib.contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold a file lock beside a SQLite store for one job: concurrent runs (a grid) would otherwise race
    to create its tables and its experiment, and wait on SQLite's sleeping busy handler."""
    database = sqlite_database(tracking_uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _quiet_mlflow(tracking_uri: str) -> None:
    """No retries against a server that does not answer; MLflow's and alembic's chatter off (set after
    MLflow is imported: importing it sets its own levels)."""
    import mlflow  # noqa: F401

    if tracking_uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")     # no bars on the run's console
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def coalesce(jobs: list) -> list:
    """The same jobs with each run of consecutive metric batches merged into one: a backlog of a
    short run's rows goes to the store in a few calls, not one per flush."""
    merged: list = []
    for job in jobs:
        if job is not None and job[0] == "metrics" and merged and merged[-1] is not None \
                and merged[-1][0] == "metrics":
            merged[-1] = ("metrics", merged[-1][1] + job[1])
        else:
            merged.append(job)
    return merged


class _Jobs:
    """Carries out tracking jobs in order; after a failure the rest are dropped (one warning, not many)."""

    def __init__(self, settings: dict) -> None:
        self.settings, self.tracker, self.failed = settings, None, False

    def do(self, job: tuple) -> tuple | None:
        """One job; the reply to hand to the trainer (the run id, a failure), if any."""
        if self.failed:
            return None
        try:
            with _store_lock(self.settings["tracking_uri"]):   # grid runs share one SQLite store
                if self.tracker is None:
                    self.tracker = _Tracker(self.settings)
                if job[0] == "start":
                    return ("run", self.tracker.start())
                getattr(self.tracker, job[0])(*job[1:])
        except Exception as error:  # noqa: BLE001 - any store failure degrades to a warning
            self.failed = True
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return ("failed", f"{type(error).__name__}: {text}")
        return None


def _serve(settings: dict, jobs: Any, replies: Any) -> None:
    """The helper process: carry out the queued jobs in order; report the run id, a failure, the end.

    While training runs it takes only idle CPU cycles (SCHED_IDLE where the system has it, else the
    lowest priority): tracking waits for training rather than slowing it. Once the run is finishing it
    asks for ordinary scheduling, so that the trainer (or the grid's next run) does not wait on it.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        if hasattr(os, "nice"):
            os.nice(19)
    _quiet_mlflow(settings["tracking_uri"])
    worker = _Jobs(settings)
    while True:
        job = jobs.get()
        if job is None:
            replies.put(("done", not worker.failed))
            return
        if job[0] == "finish":
            with contextlib.suppress(AttributeError, OSError):
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        reply = worker.do(job)
        if reply is not None:
            replies.put(reply)


class MLflowSink:
    """Statistics rows to an MLflow run through a helper process; also the run's params, tags and artifacts.

    The helper starts at the first flush `start_after` seconds into the run (or at the end of a shorter
    run): its one-off start (importing MLflow, opening the store) then never slows a short run, and is
    a small share of a long one. Jobs wait in order until it runs.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str, artifact_root: Path | None,
                 run_id: str | None = None, run_file: Path | None = None, start_after: float = 30.0,
                 grid: Path | None = None, start_time: int | None = None) -> None:
        """`grid`: the grid folder the run belongs to (its MLflow run is nested under the grid's);
        `start_time`: the run's start in ms since the epoch (default now: the MLflow run is created later)."""
        grid_start = int(Grid(grid).plan_file.stat().st_mtime * 1000) if grid else None     # the grid's start
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.failed, self.finished = False, False
        self.pending: list[tuple] = []
        self.backlog: list[tuple] = [("start",)]
        self.created, self.start_after = time.monotonic(), start_after
        self.settings = {"tracking_uri": tracking_uri, "experiment_name": experiment_name, "run_name": run_name,
                         "artifact_root": str(artifact_root) if artifact_root else None, "run_id": run_id,
                         "run_file": str(run_file) if run_file else None,
                         "grid": (grid.name, str(grid.resolve()), grid_start) if grid else None,
                         "start_time": start_time or int(time.time() * 1000)}
        self.process = None

    def _put(self, job: tuple | None) -> None:
        if self.process is None:
            self.backlog.append(job)
        else:
            self.jobs.put(job)

    def _start_helper(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.jobs, self.replies = context.Queue(), context.Queue()
        self.process = context.Process(target=_serve, args=(self.settings, self.jobs, self.replies),
                                       name="pyrosys-mlflow", daemon=True)
        self.process.start()
        for job in coalesce(self.backlog):
            self.jobs.put(job)
        self.backlog = []

    def replay(self, folder: Path, episode: int) -> None:
        """Log the statistics rows a run wrote up to `episode` from its CSV files (a resumed run whose
        MLflow run never started, or a run re-logged after an outage)."""
        for table in ("training", "training_agg", "validation", "validation_agg"):
            for row in read_rows(Experiment(folder).csv(table)):
                if int(row["episode"]) <= episode:
                    self.pending += metric_rows(table, row, int(time.time() * 1000), int(row["episode"]))
        self.flush()

    def _take(self, kind: str, value: Any) -> None:
        """A reply of the helper (or of the jobs carried out here): the run id, or a failure."""
        if kind == "run":
            self.run_id = value
        elif kind == "failed":
            self.failed = True
            log.warning("MLflow tracking at %s stopped (%s); training goes on and the CSV statistics are "
                        "complete", self.tracking_uri, value)

    def _read_replies(self, wait: float = 0.0) -> bool:
        """Take the helper's messages; True once it has said it is done."""
        if self.process is None:
            return False
        deadline = time.monotonic() + wait
        while True:
            try:
                kind, value = self.replies.get(timeout=max(0.0, deadline - time.monotonic())) if wait else \
                    self.replies.get_nowait()
            except queue.Empty:
                return False
            if kind == "done":
                return True
            self._take(kind, value)

    def log_params_and_tags(self, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        self._put(("params", dict(params), {k: str(v) for k, v in tags.items()}))

    def write(self, table: str, row: Mapping[str, Any]) -> None:
        """Statistics rows become metrics `<table>/<name>` at their episode, sent in batches."""
        if table == "testing":
            return
        numbers = {name: value for name, value in row.items() if isinstance(value, (int, float))}
        self.pending += metric_rows(table, numbers, int(time.time() * 1000), int(row.get("episode", 0)))
        if table != "training":
            # flushed at validations and epoch ends, where checkpoints are written: a resumed run
            # logs again exactly the episodes its interrupted run had not flushed (no gaps, no repeats)
            self.flush()

    def flush(self) -> None:
        if self.finished:
            return
        batch, self.pending = self.pending, []
        if batch:
            self._put(("metrics", batch))
        if self.process is None and time.monotonic() - self.created >= self.start_after:
            self._start_helper()
        self._read_replies()

    def log_final(self, metrics: Mapping[str, float]) -> None:
        """Whole-set results (test statistics) as metrics at step 0."""
        stamp = int(time.time() * 1000)
        self.pending += [(name, float(value), stamp, 0) for name, value in metrics.items()
                         if isinstance(value, (int, float))]
        self.flush()

    def log_artifacts(self, files: list[Path], bundle: Path | None, registered_model: str | None,
                      model_code: str | None = None) -> None:
        """Files as artifacts; the bundle as an MLflow model whose code is the file `model_code`."""
        self._put(("artifacts", [str(f) for f in files], str(bundle) if bundle else None, registered_model,
                   model_code))

    def finish(self, status: str = "FINISHED", timeout: float = 120.0, end_time: int | None = None) -> bool:
        """Flush, close the run with `status`; whether everything was logged.

        A run that ended before the helper started (a short one) does its tracking here, in this
        process, after training: no process to start, and MLflow is imported once per process (a grid
        worker's runs share it). Otherwise the helper is told to finish and waited for.
        """
        self.flush()
        self._put(("finish", status, end_time))
        self.finished = True
        if self.process is None:
            _quiet_mlflow(self.tracking_uri)
            worker = _Jobs(self.settings)
            for job in coalesce(self.backlog):
                reply = worker.do(job)
                if reply is not None:
                    self._take(*reply)
            self.backlog = []
            return not self.failed
        self._put(None)
        done = self._read_replies(wait=timeout)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
        return done and not self.failed

    def close(self) -> None:
        """Statistics end with the fit; the run is closed by finish()."""
        self.flush()


def run_tags(described: dict, folder: Path) -> dict[str, str]:
    """MLflow tags of a run: its source and user as MLflow's UI shows them ("Source", "Created by"), the git
    commit of the configs, the PyroSys version, command line and experiment folder."""
    git = described.get("git") or {}
    command = described.get("command") or [""]
    return {"mlflow.source.name": Path(command[0]).name, "mlflow.source.type": "LOCAL",
            "mlflow.user": described.get("user", ""), "mlflow.source.git.commit": git.get("commit", ""),
            "pyrosys.version": described["versions"]["pyrosys"], "pyrosys.command": " ".join(command),
            "pyrosys.experiment_folder": str(folder), "pyrosys.git_dirty": str(git.get("dirty", ""))}


def log_run_end(mlflow: MLflowSink, experiment: Experiment, results: dict, status: str, registered_model: str | None,
                model_code: str | None = None, end_time: int | None = None, **recorded: Any) -> bool:
    """Test metrics (without their spread, as the statistics rows), artifacts (configuration, description,
    curves, status, the confusion matrix; the best bundle of a finished run as an MLflow model whose code
    is `model_code`), the run's end, and where it went in status.json; whether everything was logged."""
    bundle = experiment.bundle_dir
    mlflow.log_final({f"test/{name}": value for name, value in results.items() if tracked("test", name)})
    testing = [TestingFolder(results["folder"]).confusion_files[1]] if results.get("folder") else []
    mlflow.log_artifacts([experiment.configuration_file, experiment.description_file, experiment.curves_file,
                          experiment.status_file, *testing],
                         bundle if status == "FINISHED" and bundle.is_dir() else None, registered_model, model_code)
    logged = mlflow.finish(status, end_time=end_time)
    experiment.write_status(mlflow={"tracking_uri": mlflow.tracking_uri, "run_id": mlflow.run_id, "logged": logged,
                                    **recorded})
    return logged


def log_test_run(experiment: Experiment, results: dict, files: list[Path], tags: dict[str, str]) -> str | None:
    """A later test of a trained run (pyrosys-tester) as an MLflow run nested under the training run, in its
    experiment: the test values (without their spread) and `files` (the confusion matrix, the summary).
    None when the training run reached no MLflow run; a store that fails gives one warning, not an error."""
    recorded = experiment.read_mlflow_run()
    if not recorded or not recorded.get("run_id"):
        return None
    uri, parent = recorded["tracking_uri"], recorded["run_id"]
    _quiet_mlflow(uri)
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    try:
        with _store_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            training = client.get_run(parent)
            stamp = int(time.time() * 1000)
            run_id = client.create_run(training.info.experiment_id, run_name=f"test {Path(results['folder']).name}",
                                       tags={**tags, PARENT_TAG: parent}).info.run_id
            client.log_batch(run_id, metrics=[Metric(f"test/{name}", float(value), stamp, 0)
                                              for name, value in results.items()
                                              if tracked("test", name) and isinstance(value, (int, float))])
            for path in (f for f in files if f.is_file()):
                client.log_artifact(run_id, str(path))
            client.set_terminated(run_id)
    except Exception as error:  # noqa: BLE001 - any store failure degrades to a warning
        log.warning("MLflow: the test was not logged to %s (%s: %s)", uri, type(error).__name__, error)
        return None
    return run_id
