"""A search's trials for the grid analyzer: each trial's state and objective from its study, and Optuna's own
pictures of each study (optimization history, parameter importances, parallel coordinates) as PNGs."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pyrosys.execution.study import optuna_module  # noqa: E402
from pyrosys.folders.grid import Grid  # noqa: E402
from pyrosys.tracking.plots import save_figure  # noqa: E402

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def trial_outcomes(grid: Grid, studies: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """(study, trial number) -> the trial's state and objective (a pruned trial's: the value that pruned it)."""
    optuna = optuna_module()
    outcomes = {}
    for name in studies:
        study = optuna.load_study(study_name=name, storage=grid.study_url)
        for trial in study.get_trials(deepcopy=False):
            value = trial.value
            if value is None and trial.intermediate_values:
                value = trial.intermediate_values[max(trial.intermediate_values)]
            outcomes[(name, trial.number)] = {"state": STATES.get(trial.state.name, trial.state.name.lower()),
                                              "objective": value}
    return outcomes


def save_study_pictures(grid: Grid, studies: list[str]) -> list[Path]:
    """Optuna's optimization history, parameter importances and parallel coordinates of each study (the
    importances once two trials completed), written beside the analysis; the paths written."""
    optuna = optuna_module()
    plots = optuna.visualization.matplotlib
    written = []
    for name in studies:
        study = optuna.load_study(study_name=name, storage=grid.study_url)
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        drawers = (plots.plot_optimization_history, plots.plot_param_importances, plots.plot_parallel_coordinate)
        for path, draw in zip(grid.search_plots(name, len(studies) > 1), drawers):
            if not complete or (draw is plots.plot_param_importances and len(complete) < 2):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # Optuna marks its matplotlib plots experimental
                axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(10, 5)
            figure.suptitle(f"study {name}")
            figure.tight_layout()                     # room for the long configuration keys
            save_figure(figure, path, dpi=110)
            plt.close(figure)
            written.append(path)
    return written
