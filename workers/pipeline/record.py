"""Record: the experiment folder of a training run and what is written into it besides the statistics:
the resolved configuration, status.json from running to completed or failed, description.json, the
curves, and the MLflow run's parameters, test results, artifacts and end."""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyrosys
from pyrosys.atomic import write_text_atomic
from pyrosys.callbacks.tensorboard import TensorBoardSink
from pyrosys.configuration.aliases import alias_comments
from pyrosys.configuration.loading import dump_yaml
from pyrosys.errors import ConfigError, Interrupted, RunFailed, origin
from pyrosys.folders import shown
from pyrosys.folders.experiment import Experiment, now_iso
from pyrosys.folders.resume import clear_interrupted_writes, resume_point, truncate_statistics
from pyrosys.tracking.mlflow_sink import flatten, log_run_end, run_tags, tracked
from pyrosys.tracking.plots import plot_curves
from pyrosys.tracking.provenance import description, git_state
from pyrosys.workers.pipeline.build import Resume, Run, Setup
from pyrosys.workers.pipeline.fit import Fitted
from pyrosys.workers.pipeline.resolve import TrainingPlan

log = logging.getLogger("pyrosys.trainer")
MODEL_CODE = str(Path(importlib.util.find_spec("pyrosys.models").origin).with_name("pyfunc.py"))  # not imported


@contextlib.contextmanager
def opened(args: argparse.Namespace, plan: TrainingPlan) -> Iterator[tuple[Experiment, Resume | None]]:
    """The run's folder (see `open_experiment`), held by this run alone until the block ends."""
    experiment, resume = open_experiment(args, plan)
    try:
        yield experiment, resume
    finally:
        experiment.release()


def open_experiment(args: argparse.Namespace, plan: TrainingPlan) -> tuple[Experiment, Resume | None]:
    """The run's folder, held as its one writer: a new one (named by the problem, model and time, or by
    --run-name), or the resumed one, brought back to its checkpoint (statistics after it dropped, an
    interrupted write cleared)."""
    outdir = args.outdir or "experiments"
    if args.resume is None:
        experiment = Experiment.create_named(outdir, args.run_name) if args.run_name else \
            Experiment.create(outdir, plan.problem.name, plan.model.name, args.savetag)
        experiment.hold()
        return experiment, None
    experiment = Experiment.reopen(args.resume)
    experiment.hold()                                   # one writer: a second --resume is refused here
    try:
        point = resume_point(experiment)                # read again as the one writer: nothing moves it now
        clear_interrupted_writes(experiment)
        truncate_statistics(experiment, point.episode)
    except BaseException:
        experiment.release()
        raise
    return experiment, Resume(point.checkpoint, point.episode, experiment.read_mlflow_run())


def configuration_header(files: list[str], aliases: Iterable[str] = ()) -> str:
    """YAML comments recording the PyroSys version, when the configs live in git the commit, and the
    MI-Prometheus names and keys translated into the PyroSys names below."""
    state = git_state(Path(files[0]).parent) if files else None
    lines = [f"# resolved by pyrosys {pyrosys.__version__}"]
    if state:
        lines.append(f"# configuration files at git commit {state['commit']}" + (" (dirty)" if state["dirty"] else ""))
    return "\n".join(lines) + "\n" + alias_comments(aliases)


def started(run: Run, plan: TrainingPlan, parts: Setup, resume: Resume | None, log_level: str) -> None:
    """The log file, the resolved configuration, status running, description.json, the MLflow run's
    parameters and tags, the weights loaded through the Adapter; then the folder is said."""
    experiment = run.experiment
    run.handler = experiment.start_logging(log_level)
    write_text_atomic(experiment.configuration_file,
                      configuration_header(plan.loaded.files, plan.loaded.aliases) + dump_yaml(plan.configuration))
    resumed = {"resumed": [*experiment.status.get("resumed", []), {"at": now_iso(), "episode": resume.episode}]} \
        if resume else {}
    experiment.write_status(status="running", started=experiment.status.get("started", now_iso()),
                            command=" ".join(sys.argv), seed_torch=plan.seed_torch, seed_numpy=plan.seed_numpy,
                            **resumed)
    run.described = description(plan.loaded.files, {"seed_torch": plan.seed_torch, "seed_numpy": plan.seed_numpy})
    write_text_atomic(experiment.description_file,
                      json.dumps({**run.described, "started": experiment.status["started"]}, indent=2))
    if run.mlflow is not None:
        run.mlflow.log_params_and_tags(flatten(plan.configuration), run_tags(run.described, experiment.folder))
    report = getattr(parts.model, "adapter_report", None)
    if report is not None:
        log.info(report.summary())
        experiment.write_status(weights_loaded={"from": str(plan.model.load["from"]), "summary": report.summary()})
    print(f"[pyrosys] experiment folder: {shown(experiment.folder)}", flush=True)


def completed(run: Run, plan: TrainingPlan, parts: Setup, fitted: Fitted, results: dict) -> None:
    """The curves, status completed with the figures of the run, and the MLflow run's end."""
    experiment = run.experiment
    names = parts.objective.metric_names
    plot_curves(experiment, names[0] if names else None, f"{plan.model.name} on {plan.problem.name}", results)
    timing = {k: round(v, 3) if isinstance(v, float) and k != "first_step_at" else v
              for k, v in run.collector.timing.items()}
    state = "pruned" if fitted.reason.startswith("pruned") else "completed"     # a search's pruner stopped it
    experiment.write_status(status=state, finished=now_iso(), reason=fitted.reason, epoch=fitted.epoch,
                            episode=fitted.episode, seconds=round(time.perf_counter() - fitted.started, 3),
                            fit_seconds=fitted.fit_seconds, **timing, best_checkpoint=str(experiment.best_checkpoint),
                            validation=run.collector.results.get("val", {}), testing=results)
    describe_to_tensorboard(run, plan, results)
    finish_tracking(run, plan, results, "FINISHED")


def describe_to_tensorboard(run: Run, plan: TrainingPlan, results: dict) -> None:
    """The run in TensorBoard's HParams dashboard: its configuration with the last validation and the test
    values (when TensorBoard is on)."""
    final = {f"{table}/{name}": value for table, values in (("validation", run.collector.results.get("val", {})),
                                                             ("test", results))
             for name, value in values.items() if tracked(table, name) and isinstance(value, (int, float))}
    for board in (sink for sink in run.collector.sinks if isinstance(sink, TensorBoardSink)):
        board.hparams(flatten(plan.configuration, as_text=False), final, run.trainer.global_step)


def failed(run: Run, plan: TrainingPlan, error: BaseException) -> None:
    """Status interrupted (with the episode and the checkpoint written) or failed with the reason (a PyroSys
    bug says so), the MLflow run's end, the reason in pyrosys.log. Each write is best-effort: on a full
    disk the failure path itself must not fail, and the status it leaves is true as far as it got."""
    episode = run.trainer.global_step
    if isinstance(error, (Interrupted, KeyboardInterrupt, SystemExit)):
        fields = {"status": "interrupted", "reason": str(error) if isinstance(error, Interrupted) else
                  f"interrupted ({type(error).__name__})", "episode": getattr(error, "episode", None) or episode,
                  "checkpoint": getattr(error, "checkpoint", None)}
    else:
        bug = not isinstance(error, (RunFailed, ConfigError, OSError)) and origin(error)[0] == "pyrosys"
        fields = {"status": "failed", "reason": ("bug: " if bug else "") + f"{type(error).__name__}: {error}",
                  "episode": episode}
    best_effort(run.experiment.write_status, finished=now_iso(), epoch=run.trainer.current_epoch, **fields)
    best_effort(finish_tracking, run, plan, {}, "KILLED" if fields["status"] == "interrupted" else "FAILED")
    if isinstance(error, (RunFailed, ConfigError, OSError, Interrupted)):
        log.error("training %s: %s", fields["status"], error, extra={"file_only": True})   # outcome() says it
    elif not isinstance(error, (KeyboardInterrupt, SystemExit)):
        best_effort(log.exception, "training failed")


def best_effort(write: Any, *args: Any, **fields: Any) -> None:
    """Call a write of the failure path; an OS error (a full disk, a folder gone) is logged, not raised."""
    try:
        write(*args, **fields)
    except OSError as error:
        log.warning("could not record the run's end (%s)", error)


def closed(run: Run) -> None:
    """After the run, finished or not: the collector's sinks closed (a grid worker goes on to its next
    run), the end time in description.json, the log file detached; best-effort, as the failure path."""
    best_effort(run.collector.close)
    experiment = run.experiment
    if run.described is not None:
        best_effort(write_text_atomic, experiment.description_file,
                    json.dumps({**run.described, "started": experiment.status["started"], "finished": now_iso()},
                               indent=2))
    if run.handler is not None:
        Experiment.stop_logging(run.handler)


def say_results(results: dict, metric_names: tuple[str, ...] | list[str], folder: Path | str) -> None:
    """The test figures and the results folder, on the console."""
    print(f"[pyrosys] test loss: {results['loss']:.6f}" + "".join(
        f"  test {name}: {results[name]:.6f}" for name in metric_names))
    print(f"[pyrosys] results: {shown(folder)}")


def finish_tracking(run: Run, plan: TrainingPlan, results: dict, status: str) -> None:
    """The end of a trained run's MLflow tracking (none when MLflow is off)."""
    if run.mlflow is not None:
        log.info("recording the run in MLflow (%s)", run.mlflow.tracking_uri)
        log_run_end(run.mlflow, run.experiment, results, status, plan.mlflow["registered_model_name"], MODEL_CODE)
