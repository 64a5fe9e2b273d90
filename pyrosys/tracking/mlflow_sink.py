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
import fcntl
import json
import logging
import multiprocessing
import os
import queue
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.folders.experiment import Experiment
from pyrosys.tracking.tables import SPREAD, read_rows

log = logging.getLogger("pyrosys.mlflow")

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000


def flatten(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """Dotted keys and string values of a nested configuration (MLflow params)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def tracked(table: str, name: str) -> bool:
    """Whether a statistics column becomes an MLflow metric: every table's own values, not the per-batch
    spread of the aggregate tables (nor validation_agg's copies of the validation values); those stay
    in the CSV files and TensorBoard. It keeps a run's metrics few enough to log in a blink."""
    return table not in ("testing", "validation_agg") and name not in ("episode", "epoch", "batches", "samples") \
        and not name.endswith(SPREAD)


SQLITE = "sqlite:///"


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
        settings = self.settings
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(settings["experiment_name"])
            if experiment is None:
                root = settings["artifact_root"]
                experiment_id = self.client.create_experiment(
                    settings["experiment_name"], artifact_location=Path(root).resolve().as_uri() if root else None)
            else:
                experiment_id = experiment.experiment_id
            self.run_id = self.client.create_run(experiment_id, run_name=settings["run_name"]).info.run_id
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        if settings["run_file"]:            # so that a killed run can be resumed into the same MLflow run
            write_text_atomic(settings["run_file"],
                              json.dumps({"tracking_uri": settings["tracking_uri"], "run_id": self.run_id}))
        return self.run_id

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

    def artifacts(self, files: list, bundle: str | None, registered_model: str | None) -> None:
        for path in map(Path, files):
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        if bundle is not None and Path(bundle).is_dir():
            self.client.log_artifacts(self.run_id, bundle, artifact_path="model")
            if registered_model:
                from mlflow.exceptions import MlflowException

                try:
                    self.client.create_registered_model(registered_model)
                except MlflowException:
                    pass                          # it exists already: add a version
                source = f"{self.client.get_run(self.run_id).info.artifact_uri}/model"
                self.client.create_model_version(registered_model, source, run_id=self.run_id)

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


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
                 run_id: str | None = None, run_file: Path | None = None, start_after: float = 30.0) -> None:
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.failed, self.finished = False, False
        self.pending: list[tuple] = []
        self.backlog: list[tuple] = [("start",)]
        self.created, self.start_after = time.monotonic(), start_after
        self.settings = {"tracking_uri": tracking_uri, "experiment_name": experiment_name, "run_name": run_name,
                         "artifact_root": str(artifact_root) if artifact_root else None, "run_id": run_id,
                         "run_file": str(run_file) if run_file else None}
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
                    self.pending += [(f"{table}/{key}", float(value), int(time.time() * 1000), int(row["episode"]))
                                     for key, value in row.items() if tracked(table, key) and value]
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
        step, stamp = int(row.get("episode", 0)), int(time.time() * 1000)
        self.pending += [(f"{table}/{name}", float(value), stamp, step) for name, value in row.items()
                         if tracked(table, name) and isinstance(value, (int, float))]
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

    def log_artifacts(self, files: list[Path], bundle: Path | None, registered_model: str | None) -> None:
        self._put(("artifacts", [str(f) for f in files], str(bundle) if bundle else None, registered_model))

    def finish(self, status: str = "FINISHED", timeout: float = 120.0) -> bool:
        """Flush, close the run with `status`; whether everything was logged.

        A run that ended before the helper started (a short one) does its tracking here, in this
        process, after training: no process to start, and MLflow is imported once per process (a grid
        worker's runs share it). Otherwise the helper is told to finish and waited for.
        """
        self.flush()
        self._put(("finish", status))
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
    """MLflow tags of a run: PyroSys version, git commit of the configs, command line, experiment folder."""
    git = described.get("git") or {}
    return {"pyrosys.version": described["versions"]["pyrosys"], "pyrosys.command": " ".join(described["command"]),
            "pyrosys.experiment_folder": str(folder), "mlflow.source.git.commit": git.get("commit", ""),
            "pyrosys.git_dirty": str(git.get("dirty", ""))}


def log_run_end(mlflow: MLflowSink, experiment: Experiment, results: dict, status: str, registered_model: str | None,
                **recorded: Any) -> bool:
    """Test metrics, artifacts (configuration, description, curves, status, the best bundle of a finished
    run), the run's end, and where it went in status.json; whether everything was logged."""
    bundle = experiment.bundle_dir
    mlflow.log_final({f"test/{name}": value for name, value in results.items() if name != "folder"})
    mlflow.log_artifacts([experiment.configuration_file, experiment.description_file, experiment.curves_file,
                          experiment.status_file], bundle if status == "FINISHED" and bundle.is_dir() else None,
                         registered_model)
    logged = mlflow.finish(status)
    experiment.write_status(mlflow={"tracking_uri": mlflow.tracking_uri, "run_id": mlflow.run_id, "logged": logged,
                                    **recorded})
    return logged
