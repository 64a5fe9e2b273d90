"""The Ray Tune classes of a search on Tune (imported only by tune_backend, inside its functions, as they need
Ray): the Optuna searcher that numbers its trials and records scheduler stops as pruned, and the callback that
records each trial in the grid folder."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from pyrosys.execution.study import tell
from pyrosys.execution.study import trial_id as trial_id_of
from pyrosys.folders.experiment import TUNE_METRIC as METRIC
from pyrosys.folders.experiment import Experiment

TRIAL_KEY = "_trial"          # the config key that carries a trial's number in its study
RECORDERS: dict[str, Callable[[str, Any], None]] = {}     # (grid folder/study) -> the live driver's recorder


class NumberedOptunaSearch(OptunaSearch):
    """OptunaSearch whose configs carry their Optuna trial number, whose completed trials are told their best
    reported value (the run's best validation), and whose trials stopped by Tune's scheduler are told PRUNED, not
    COMPLETE (Tune marks a stopped trial's last result done, so the run's own status.json decides)."""

    def __init__(self, *args: Any, direction: str = "min", trials: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direction, self.trials = direction, trials

    def suggest(self, trial_id: str) -> dict | str | None:
        """A trial's values: those of a study trial left running by a driver that died before Tune saved it (so
        it goes on, not lost), else a new trial's, until the study has `trials` (then Tune is told FINISHED)."""
        if trial_id not in self._ot_trials:
            from optuna.trial import Trial, TrialState

            known = {trial.number for trial in self._ot_trials.values()}
            trials = self._ot_study.get_trials(deepcopy=False)
            orphan = next((t for t in trials if t.state == TrialState.RUNNING and t.number not in known), None)
            if orphan is not None:
                self._ot_trials[trial_id] = Trial(self._ot_study, trial_id_of(orphan))
            elif len(trials) >= self.trials:
                return Searcher.FINISHED
        config = super().suggest(trial_id)
        if config is not None:
            config[TRIAL_KEY] = self._ot_trials[trial_id].number
        return config

    def restore(self, checkpoint_path: str) -> None:
        """The searcher as Tune last saved it, its sampler reseeded: the saved random state may predate trials
        asked before the crash, whose values it would draw again."""
        super().restore(checkpoint_path)
        self._ot_study.sampler.reseed_rng()

    def ended(self, trial_id: str) -> bool:
        """Whether the study already holds the trial's end (a trial Tune runs again after a restore)."""
        trial = self._ot_trials.get(trial_id)
        return trial is not None and self._ot_study._storage.get_trial(trial_id_of(trial)).state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if METRIC in result and not self.ended(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials or self.ended(trial_id):
            self._completed_trials.add(trial_id)
            return
        from optuna.trial import TrialState

        trial = self._ot_trials[trial_id]
        self._completed_trials.add(trial_id)
        if error or not result:
            self.tell(trial, state=TrialState.FAIL if error else TrialState.PRUNED)
            return
        step = result.get("training_iteration")
        if METRIC in result and step not in self._ot_study._storage.get_trial(trial_id_of(trial)).intermediate_values:
            trial.report(result[METRIC], step)      # the value the scheduler stopped it at, unreported so far
        values = list(self._ot_study._storage.get_trial(trial_id_of(trial)).intermediate_values.values())
        folder = result.get("folder")
        if folder is None or Experiment(folder).state() != "completed" or not values:   # the scheduler stopped it
            self.tell(trial, state=TrialState.PRUNED)
        else:
            self.tell(trial, max(values) if self.direction == "max" else min(values))

    def tell(self, trial: Any, *args: Any, **kwargs: Any) -> None:
        """The study told as inside Optuna's optimize loop (see study.tell)."""
        tell(self._ot_study, trial, *args, **kwargs)


class GridRecorder(Callback):
    """Each trial's start and end, handed to the live driver's recorder (looked up by key, so that a Tuner
    restored from its pickle reports to the driver that restored it)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        RECORDERS[self.key]("started", trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        RECORDERS[self.key]("complete", trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        RECORDERS[self.key]("error", trial)
