"""MLflow tracking: params, batched metrics, tags and artifacts of a run, logged from a background thread.

Every MLflow call runs in one worker thread fed by a queue, so training never waits on the tracking
store; metrics travel in batches (one call per table per flush, never one per metric per step).
When the store cannot be reached, the first failure is logged as a warning and tracking stops;
training and the CSV statistics go on.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic

log = logging.getLogger("pyrosys.mlflow")

RUN_FILE = "mlflow_run.json"

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


def default_tracking_uri(outdir: str | Path) -> str:
    """The embedded store: a SQLite database in the experiments folder."""
    return f"sqlite:///{Path(outdir).resolve() / 'mlflow.db'}"


class MLflowSink:
    """Statistics rows to an MLflow run, through a background thread; also the run's params, tags, artifacts."""

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str, artifact_root: Path | None,
                 run_id: str | None = None, run_file: Path | None = None) -> None:
        self.tracking_uri, self.experiment_name, self.run_name = tracking_uri, experiment_name, run_name
        self.artifact_root, self.run_id, self.run_file = artifact_root, run_id, run_file
        self.failed = False
        self.pending: list[Any] = []
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.started = threading.Event()
        if tracking_uri.startswith(("http://", "https://")):
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.thread = threading.Thread(target=self._work, name="pyrosys-mlflow", daemon=True)
        self.thread.start()
        self.submit(self._start)

    # -- the worker thread ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.failed:
                continue
            try:
                job()
            except Exception as error:  # noqa: BLE001 - any store failure degrades to a warning
                self.failed = True
                log.warning("MLflow tracking at %s stopped (%s: %s); training goes on and the CSV statistics "
                            "are complete", self.tracking_uri, type(error).__name__,
                            str(error).strip().splitlines()[0] if str(error).strip() else "")
            finally:
                if not self.started.is_set() and (self.run_id or self.failed):
                    self.started.set()

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)

    def _start(self) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                location = self.artifact_root.resolve().as_uri() if self.artifact_root else None
                experiment_id = self.client.create_experiment(self.experiment_name, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_name).info.run_id
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        if self.run_file is not None:       # so that a killed run can be resumed into the same MLflow run
            write_text_atomic(self.run_file, json.dumps({"tracking_uri": self.tracking_uri, "run_id": self.run_id}))
        self.started.set()

    # -- what the trainer calls -------------------------------------------------------------------

    def wait_for_run(self, timeout: float = 30.0) -> str | None:
        """The run id once the run exists (None when tracking failed or took longer than `timeout`)."""
        self.started.wait(timeout)
        return None if self.failed else self.run_id

    def log_params_and_tags(self, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        items = [Param(k, v) for k, v in params.items()]
        run_tags = [RunTag(k, str(v)) for k, v in tags.items()]

        def job() -> None:
            existing = self.client.get_run(self.run_id).data.params
            fresh = [p for p in items if p.key not in existing]
            for start in range(0, max(len(fresh), 1), MAX_PARAMS_PER_BATCH):
                self.client.log_batch(self.run_id, params=fresh[start:start + MAX_PARAMS_PER_BATCH],
                                      tags=run_tags if start == 0 else [])

        self.submit(job)

    def write(self, table: str, row: Mapping[str, Any]) -> None:
        """Statistics rows become metrics `<table>/<name>` at their episode, sent in batches."""
        if table == "testing":
            return
        from mlflow.entities import Metric

        step = int(row.get("episode", 0))
        stamp = int(time.time() * 1000)
        self.pending += [Metric(f"{table}/{name}", float(value), stamp, step) for name, value in row.items()
                         if name not in ("episode", "epoch") and isinstance(value, (int, float))]
        if table != "training":
            # flushed at validations and epoch ends, where checkpoints are written: a resumed run
            # logs again exactly the episodes its interrupted run had not flushed (no gaps, no repeats)
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return

        def job() -> None:
            for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=batch[start:start + MAX_METRICS_PER_BATCH])

        self.submit(job)

    def log_final(self, metrics: Mapping[str, float]) -> None:
        """Whole-set results (test statistics) as metrics at step 0."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.pending += [Metric(name, float(value), stamp, 0) for name, value in metrics.items()
                         if isinstance(value, (int, float))]
        self.flush()

    def log_artifacts(self, files: list[Path], bundle: Path | None, registered_model: str | None) -> None:
        def job() -> None:
            for path in files:
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))
            if bundle is not None and bundle.is_dir():
                self.client.log_artifacts(self.run_id, str(bundle), artifact_path="model")
                if registered_model:
                    from mlflow.exceptions import MlflowException

                    try:
                        self.client.create_registered_model(registered_model)
                    except MlflowException:
                        pass                      # it exists already: add a version
                    source = f"{self.client.get_run(self.run_id).info.artifact_uri}/model"
                    self.client.create_model_version(registered_model, source, run_id=self.run_id)

        self.submit(job)

    def finish(self, status: str = "FINISHED", timeout: float = 120.0) -> bool:
        """Flush, close the run with `status`, and wait for the thread; whether everything was logged."""
        self.flush()
        self.submit(lambda: self.client.set_terminated(self.run_id, status=status))
        self.jobs.put(None)
        self.thread.join(timeout)
        return not self.failed and not self.thread.is_alive()

    def close(self) -> None:
        """Statistics end with the fit; the run is closed by finish()."""
        self.flush()
