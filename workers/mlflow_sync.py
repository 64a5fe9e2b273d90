"""pyrosys-mlflow-sync: log experiments to MLflow again from their folders (after a tracking outage, or
to another server): params, every statistics row, tags, test results, artifacts, the best bundle.

    pyrosys-mlflow-sync --expdir experiments/Digits/MLP/<time> [--mlflow URI]
    pyrosys-mlflow-sync --expdir experiments/grid_<time>             # every experiment under it

Each experiment becomes a new MLflow run (tagged pyrosys.relogged), and its status.json and
mlflow_run.json name that run from then on.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pyrosys.errors import ConfigError
from pyrosys.workers.worker import base_parser, run

STATUSES = {"completed": "FINISHED", "failed": "FAILED", "running": "KILLED"}


def relog(folder: Path, tracking_uri: str | None) -> tuple[str, bool]:
    """One experiment folder to a new MLflow run; (its run id, whether everything was logged)."""
    from pyrosys.configuration.loading import load_yaml
    from pyrosys.folders.experiment import Experiment
    from pyrosys.tracking.mlflow_sink import RUN_FILE, MLflowSink, flatten
    from pyrosys.workers.trainer import log_run_end, run_tags

    experiment = Experiment.reopen(folder)
    configuration = load_yaml(folder / "training_configuration.yaml")
    settings = (configuration.get("logging") or {}).get("mlflow") or {}
    uri = tracking_uri or (experiment.status.get("mlflow") or {}).get("tracking_uri") or settings.get("tracking_uri")
    if not uri:
        raise ConfigError("this experiment names no MLflow tracking store", file=str(folder), key="--mlflow",
                          hint="Name one with --mlflow URI")
    names = {section: (configuration.get(section) or {}).get("name") or (configuration.get(section) or {}).get("_target_", "")
             for section in ("problem", "model")}
    sink = MLflowSink(uri, settings.get("experiment_name") or names["problem"],
                      settings.get("run_name") or f"{str(names['model']).rsplit('.', 1)[-1]}_{folder.name}",
                      artifact_root=None, run_file=folder / RUN_FILE, start_after=float("inf"))
    described = json.loads((folder / "description.json").read_text()) if (folder / "description.json").is_file() \
        else {"versions": {"pyrosys": ""}, "command": []}
    sink.log_params_and_tags(flatten(configuration), {**run_tags(described, folder), "pyrosys.relogged": "true"})
    sink.replay(folder, episode=sys.maxsize)
    logged = log_run_end(sink, experiment, experiment.status.get("testing") or {},
                         STATUSES.get(experiment.status.get("status"), "FINISHED"), None, relogged=True)
    return sink.run_id, logged


def sync(args: argparse.Namespace) -> int:
    """Find the experiments -> log each again -> say which run each became."""
    from pyrosys.folders.experiment import experiment_folders

    folder = Path(args.expdir)
    found = experiment_folders(folder) if folder.is_dir() else []
    if not found:
        raise ConfigError("no experiment folder (status.json and training_configuration.yaml) was found here",
                          file=str(folder), key="--expdir")
    failed = 0
    for experiment in found:
        run_id, logged = relog(experiment, args.mlflow)
        failed += not logged
        print(f"[pyrosys] {experiment}: MLflow run {run_id}" + ("" if logged else " (not logged: see the warning)"))
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    """The sync worker's flags."""
    result = base_parser("pyrosys-mlflow-sync", "Log experiments to MLflow again from their folders.")
    result.add_argument("--expdir", metavar="DIR", required=True, help="an experiment folder, or a folder of them")
    result.add_argument("--mlflow", metavar="URI", default=None,
                        help="the tracking store (default: the one the experiment used)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of pyrosys-mlflow-sync."""
    return run(sync, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
