"""pyrosys-mlflow-sync: log experiments to MLflow again from their folders (after a tracking outage, or
to another server): params, every statistics row, tags, test results, artifacts, the best bundle.

    pyrosys-mlflow-sync --expdir experiments/Digits/MLP/<time> [--mlflow URI]
    pyrosys-mlflow-sync --expdir experiments/grid_<time>             # every experiment under it

Each experiment becomes a new MLflow run (tagged pyrosys.relogged), and its status.json and
mlflow_run.json name that run from then on.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from pyrosys.configuration.loading import load_yaml
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.folders.experiment import Experiment, experiment_folders
from pyrosys.folders.grid import Grid
from pyrosys.tracking.mlflow_sink import MLflowSink, flatten, log_run_end, milliseconds, run_tags
from pyrosys.workers.worker import Worker

MODEL_CODE = str(Path(importlib.util.find_spec("pyrosys.models").origin).with_name("pyfunc.py"))  # not imported
STATUSES = {"completed": "FINISHED", "failed": "FAILED", "running": "KILLED"}


@register("worker", name="mlflow_sync")
class MLflowSync(Worker):
    """Log experiments to MLflow again from their folders."""

    prog = "pyrosys-mlflow-sync"

    def run(self, args: argparse.Namespace) -> int:
        """Find the experiments -> log each again -> say which run each became."""
        folder = Path(args.expdir)
        found = experiment_folders(folder) if folder.is_dir() else []
        if not found:
            raise ConfigError(f"no experiment folder ({Experiment.STATUS} and {Experiment.CONFIGURATION}) was "
                              "found here", file=str(folder), key="--expdir")
        failed = 0
        for experiment in found:
            run_id, logged = relog(Experiment.reopen(experiment), args.mlflow)
            failed += not logged
            print(f"[pyrosys] {shown(experiment)}: MLflow run {run_id}"
                  + ("" if logged else " (not logged: see the warning)"))
        return 1 if failed else 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """--expdir and --mlflow."""
        parser.add_argument("--expdir", metavar="DIR", required=True, help="an experiment folder, or a folder of them")
        parser.add_argument("--mlflow", metavar="URI", default=None,
                            help="the tracking store (default: the one the experiment used)")


def relog(experiment: Experiment, tracking_uri: str | None) -> tuple[str, bool]:
    """One experiment folder to a new MLflow run; (its run id, whether everything was logged)."""
    folder = experiment.folder
    configuration = load_yaml(experiment.configuration_file)
    settings = (configuration.get("logging") or {}).get("mlflow") or {}
    uri = tracking_uri or (experiment.status.get("mlflow") or {}).get("tracking_uri") or settings.get("tracking_uri")
    if not uri:
        raise ConfigError("this experiment names no MLflow tracking store", file=str(folder), key="--mlflow",
                          hint="Name one with --mlflow URI")
    names = {section: (configuration.get(section) or {}).get("name")
             or (configuration.get(section) or {}).get("_target_", "") for section in ("problem", "model")}
    sink = MLflowSink(uri, settings.get("experiment_name") or names["problem"],
                      settings.get("run_name") or f"{str(names['model']).rsplit('.', 1)[-1]}_{folder.name}",
                      artifact_root=None, run_file=experiment.mlflow_run_file, start_after=float("inf"),
                      grid=getattr(Grid.holding(folder), "folder", None),
                      start_time=milliseconds(experiment.status.get("started")))
    described = json.loads(experiment.description_file.read_text()) if experiment.description_file.is_file() \
        else {"versions": {"pyrosys": ""}, "command": []}
    sink.log_params_and_tags(flatten(configuration), {**run_tags(described, folder), "pyrosys.relogged": "true"})
    sink.replay(folder, episode=sys.maxsize)
    logged = log_run_end(sink, experiment, experiment.status.get("testing") or {},
                         STATUSES.get(experiment.status.get("status"), "FINISHED"), None, MODEL_CODE,
                         end_time=milliseconds(experiment.status.get("finished")), relogged=True)
    return sink.run_id, logged


main = MLflowSync.main

if __name__ == "__main__":
    sys.exit(main())
