"""A search on Ray Tune (`--backend ray [--address HOST:PORT]`): each study of the search (one per base run) is
a Tune experiment in `<grid>/tune/<study>`, run one after another, whose trials are the grid's ordinary trial
runs (`<base>_tNNN` folders, logs, grid.yaml and grid_status.csv rows) and whose studies live in the grid's
optuna.db, as on the local backend.

Mapping: the sampler is Optuna's, through Tune's OptunaSearch on the grid's study; each validation's monitored
value is reported to Tune (TuneReport) and the pruner becomes a Tune scheduler (`scheduler`); a trial's objective
is its best reported value. A trial stopped by the scheduler is recorded pruned (in optuna.db too). After a crash
of the driver, `--resume GRID --backend ray` restores each experiment with Tuner.restore: ended trials are kept,
running ones go on from their run's last.ckpt with the same values, and no more than `trials` are run.
Ray and Optuna are imported inside the functions: this module loads without them."""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError
from pyrosys.execution.grid_plan import GridPlan, GridRun, trial_run
from pyrosys.execution.process_pool import Event, resolve_function
from pyrosys.execution.search_plan import SearchSpec
from pyrosys.execution.study import distributions, open_study, sampler, storage, trial_params
from pyrosys.folders.experiment import TUNE_METRIC as METRIC
from pyrosys.folders.experiment import Experiment
from pyrosys.folders.grid import Grid, GridStatus
from pyrosys.tracking.tables import best_validation

TUNE_STATE_SECONDS = 2       # how often Tune saves its experiment's state (what Tuner.restore reads)
PROBE_SECONDS = 5             # how long an --address gets to answer before the grid is refused
INSTALL_RAY = 'pip install "pyrosys[ray]"'


class TrialRunFailed(RuntimeError):
    """A trial's run failed (its reason is the message): the Tune trial errors, and the search goes on."""


def ray_module() -> Any:
    """Ray, or the refusal that says how to install it."""
    try:
        import ray
        import ray.tune  # noqa: F401 - Tune is part of the extra
    except ImportError:
        raise ConfigError("the Ray backend needs Ray (with Tune), which is not installed", file="the command line",
                          key="--backend", hint=f"Install it with {INSTALL_RAY}") from None
    return ray


def check_ray(address: str | None) -> None:
    """Before anything is written: Ray is installed, and a cluster address answers within PROBE_SECONDS."""
    ray_module()
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_SECONDS).close()
    except (OSError, ValueError) as error:
        raise ConfigError(f"no Ray cluster answers at {address} ({error or type(error).__name__})",
                          file="the command line", key="--address",
                          hint="Start one (ray start --head) and give its HOST:PORT, or leave --address out for a "
                               "local Ray instance") from None


def check_backend(grid: Grid, backend: str) -> None:
    """A search resumes on the backend it ran on: Tune's experiments exist only for a search run on Tune."""
    on_tune = grid.tune_folder.is_dir()
    if on_tune == (backend == "ray") or not (on_tune or grid.study_file.is_file()):
        return
    ran, other = ("ray", "local") if on_tune else ("local", "ray")
    raise ConfigError(f"this search ran on the {ran} backend, not {other}", file=str(grid.folder), key="--backend",
                      hint=f"Resume it with --backend {ran}")


def check_search(spec: SearchSpec, source: str) -> None:
    """What a search on Ray Tune cannot do, refused before the grid folder is made: repetitions, and the
    percentile pruner (Tune has no scheduler for it)."""
    if spec.repetitions != 1:
        raise ConfigError("a search on Ray Tune runs one repetition per trial", file=source,
                          key="search.repetitions", hint="Set repetitions: 1, or run it with --backend local")
    if spec.pruner["name"] == "percentile":
        raise ConfigError("the percentile pruner has no Ray Tune scheduler", file=source, key="search.pruner.name",
                          hint="Use median (Tune's MedianStoppingRule) or hyperband (ASHA) on Ray, or run this "
                               "search with --backend local")


def scheduler(settings: dict, direction: str) -> Any:
    """The Tune scheduler of `search.pruner` (time: validations, Tune's training_iteration, counted from 1):
    median -> MedianStoppingRule, hyperband -> ASHAScheduler (asynchronous successive halving: it stops trials
    and never pauses them, which a trainable without Tune checkpoints needs), none -> FIFO; percentile has no
    Tune scheduler and is refused."""
    from ray.tune import schedulers

    name, common = settings["name"], {"time_attr": "training_iteration", "metric": METRIC, "mode": direction}
    if name == "median":       # Optuna's warmup of w validations: stop from validation w + 1 on
        return schedulers.MedianStoppingRule(**common, grace_period=settings.get("warmup_validations", 1) + 1,
                                             min_samples_required=settings.get("startup_trials", 2))
    if name == "hyperband":
        limit = settings.get("max_validations", "auto")
        return schedulers.ASHAScheduler(**common, grace_period=settings.get("min_validations", 1),
                                        max_t=100 if limit == "auto" else limit,
                                        reduction_factor=settings.get("reduction_factor", 3))
    if name == "percentile":
        raise ConfigError("the percentile pruner has no Ray Tune scheduler", key="search.pruner.name",
                          hint="Use median (Tune's MedianStoppingRule) or hyperband (ASHA) on Ray, or run this "
                               "search with --backend local")
    return schedulers.FIFOScheduler()


def trainable(config: dict, base: GridRun, spec: dict, make_job: Callable[[GridRun], dict], function: str,
              grid_folder: str) -> None:
    """Inside a Tune worker: the trial's run, trained as a grid run (`function` runs the job); its validations
    are reported to Tune by the run's TuneReport callback; a failed run fails the trial with its reason. A run
    that ended before a driver crash Tune did not see is not run again: its best value is reported once."""
    from pyrosys.callbacks.tune_report import REPORTS     # in the Tune worker, which trains with Lightning
    from pyrosys.execution.tune_parts import TRIAL_KEY

    run = trial_run(base, trial_params(config, SearchSpec(**spec)), config[TRIAL_KEY], 0, 1)
    ended = Experiment(Grid(grid_folder).folder / run.name)
    if ended.state() in ("completed", "pruned"):
        report_ended(ended)
        return
    job = {**make_job(run), "tune": True}
    result = resolve_function(function)(job)
    if result["status"] == "failed":
        raise TrialRunFailed(result.get("reason") or "the run failed")
    if not REPORTS.get(job["folder"]):        # resumed after its last validation: Tune has heard nothing of it
        report_ended(Experiment(job["folder"]))


def report_ended(experiment: Experiment) -> None:
    """Report an ended run's best validation value to Tune, once (a run Tune did not see validate)."""
    from ray import tune

    value = best_validation(experiment)
    tune.report({METRIC: float("nan") if value is None else value, "folder": str(experiment.folder)})


def trial_folder_name(trial: Any) -> str:
    """Tune's folder of a trial: its id (its config's long keys would make unwieldy names)."""
    return f"trial_{trial.trial_id}"


def run_on_tune(grid: Grid, plan: GridPlan, status: GridStatus, make_job: Callable[[GridRun], dict], function: str,
                directions: dict[str, str], concurrency: int, address: str | None,
                on_event: Callable[[Event], None], gpus_per_trial: float = 0) -> None:
    """Run each study of the search as a Tune experiment (restored when the grid folder has it), at most
    `concurrency` trials at a time; every trial's start and end go to `on_event` as the pool's events do."""
    ray = ray_module()
    from ray import tune

    from pyrosys.execution.tune_parts import RECORDERS

    spec = SearchSpec(**plan.search)
    check_search(spec, plan.source)
    tune_schedulers = {base.name: scheduler(spec.pruner, directions[base.name]) for base in plan.bases}
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(TUNE_STATE_SECONDS))
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": concurrency}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **options)
    try:
        for base in plan.bases:
            open_study(grid.study_url, base.name, spec, directions[base.name], plan.source)   # checked, as locally
            key = f"{grid.folder.resolve()}/{base.name}"
            RECORDERS[key] = recorder(grid, plan, status, base, type(tune_schedulers[base.name]).__name__, on_event)
            resources = {"cpu": 1, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
            function_trainable = tune.with_resources(
                tune.with_parameters(trainable, base=base, spec=plan.search, make_job=make_job, function=function,
                                    grid_folder=str(grid.folder.resolve())),
                resources)
            tuner_for(grid, base.name, spec, directions[base.name], tune_schedulers[base.name], concurrency, key,
                      function_trainable).fit()
            RECORDERS.pop(key, None)
    finally:
        if started_here:
            ray.shutdown()


def tuner_for(grid: Grid, study: str, spec: SearchSpec, direction: str, tune_scheduler: Any, concurrency: int,
              key: str, function_trainable: Any) -> Any:
    """The study's Tuner: restored from `<grid>/tune/<study>` when the grid ran it before, else a new one."""
    from ray import tune

    from pyrosys.execution.tune_parts import GridRecorder, NumberedOptunaSearch

    path = grid.tune_folder / study
    if tune.Tuner.can_restore(str(path.resolve())):
        return tune.Tuner.restore(str(path.resolve()), trainable=function_trainable, resume_unfinished=True,
                                  resume_errored=False)
    search = NumberedOptunaSearch(space=distributions(spec), metric=METRIC, mode=direction, sampler=sampler(spec),
                                  storage=storage(grid.study_url), study_name=study, direction=direction,
                                  trials=spec.budget())
    return tune.Tuner(function_trainable,
                      tune_config=tune.TuneConfig(search_alg=search, scheduler=tune_scheduler,
                                                  num_samples=spec.budget(), max_concurrent_trials=concurrency,
                                                  trial_dirname_creator=trial_folder_name),
                      run_config=tune.RunConfig(storage_path=str(grid.tune_folder.resolve()), name=study, verbose=0,
                                                failure_config=tune.FailureConfig(max_failures=0),
                                                callbacks=[GridRecorder(key)]))


def recorder(grid: Grid, plan: GridPlan, status: GridStatus, base: GridRun, scheduler_name: str,
             on_event: Callable[[Event], None]) -> Callable[[str, Any], None]:
    """What the driver does when a Tune trial starts (its run added to grid.yaml and grid_status.csv) or ends
    (its outcome recorded)."""
    spec, started = SearchSpec(**plan.search), {}

    def record(kind: str, trial: Any) -> None:
        from pyrosys.execution.tune_parts import TRIAL_KEY

        if TRIAL_KEY not in trial.config:
            return
        run = trial_run(base, trial_params(trial.config, spec), trial.config[TRIAL_KEY], 0, 1)
        if kind == "started":
            if run.name not in status.rows:
                plan.runs.append(run)
                write_text_atomic(grid.plan_file, plan.to_yaml())
                status.add(run)
            started[run.name] = time.perf_counter()
            on_event(Event("started", {"name": run.name}))
            return
        seconds = time.perf_counter() - started.pop(run.name, time.perf_counter())
        on_event(Event("finished", {"name": run.name}, result=outcome(kind, trial, scheduler_name), seconds=seconds))

    return record


def failure_text(trial: Any) -> str:
    """The error a Tune trial ended with: its error file on the driver (written before Tune's callbacks are
    called), else the one in Tune's storage."""
    local = Path(trial.error_file) if trial.error_file else None
    if local is not None and local.is_file():
        return local.read_text(encoding="utf-8", errors="replace")
    return str(trial.get_pickled_error() or trial.get_error() or "")


def outcome(kind: str, trial: Any, scheduler_name: str) -> dict[str, Any]:
    """How a Tune trial's run went: failed (its reason), completed, or pruned (by the run's own record, else
    because Tune's scheduler stopped the trial before its run ended)."""
    result = trial.last_result or {}
    folder = result.get("folder")
    if kind == "error":
        text = failure_text(trial)
        lines = [line.split(f"{TrialRunFailed.__name__}: ", 1)[-1] for line in text.splitlines()
                 if f"{TrialRunFailed.__name__}: " in line] or [line for line in text.splitlines() if line.strip()][-1:]
        return {"status": "failed", "reason": lines[-1].strip() if lines else "the trial failed", "folder": folder}
    run = Experiment(folder).read_status() if folder and Experiment(folder).status_file.is_file() else {}
    if run.get("status") in ("completed", "pruned"):
        return {"status": run["status"], "reason": run.get("reason", "") if run["status"] == "pruned" else "",
                "folder": folder}
    value = result.get(METRIC)
    shown = f"{value:.6g}" if isinstance(value, float) else str(value)
    reason = (f"pruned (Tune's {scheduler_name} stopped it: {METRIC} {shown} at validation "
              f"{result.get('validation', result.get('training_iteration'))})")
    if run:                         # its trainer was stopped with its Tune worker: the run's folder says so
        experiment = Experiment(folder)
        experiment.status = run
        experiment.write_status(status="pruned", reason=reason)
    return {"status": "pruned", "folder": folder, "reason": reason}
