"""pyrosys-tester: rebuild problem and model from a checkpoint alone and run the test split.

    pyrosys-tester --m experiments/Digits/LeNet5/<time>/models/best.ckpt [--set testing.problem.batch_size=256]

The steps are the run pipeline's; its build and test steps import torch and Lightning, so they are
imported inside `Tester.run`: --help answers before them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyrosys.app_state import AppState
from pyrosys.configuration.loading import dump_yaml
from pyrosys.configuration.param_registry import ParamRegistry
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.folders.experiment import Experiment, TestingFolder
from pyrosys.workers.pipeline.console import say_loading_model
from pyrosys.workers.pipeline.resolve import plain, resolve_problem
from pyrosys.workers.worker import Worker, add_configuration_flags, add_run_flags


@register("worker", name="tester")
class Tester(Worker):
    """Test a trained model, rebuilt from its checkpoint alone."""

    prog = "pyrosys-tester"

    def run(self, args: argparse.Namespace) -> int:
        """Load -> resolve -> rebuild -> test -> print."""
        if args.n < 1:
            raise ConfigError(f"--n is a number of repeats >= 1, not {args.n}", file="the command line", key="--n")
        if not args.print_config:                                   # its output is the configuration alone
            say_loading_model(args.model)
        from pyrosys.callbacks.checkpoint import read_checkpoint    # torch from here on
        from pyrosys.models.model import Model
        from pyrosys.workers.pipeline import build, console, record, test

        checkpoint = read_checkpoint(args.model)
        if args.gpu:
            AppState().use_gpu()
        ParamRegistry.reset()
        registry = ParamRegistry()
        registry.load(test.checkpoint_configuration(checkpoint, args.model, args.config, args.overrides))
        problem_plan = resolve_problem(registry)
        training = registry.section("training")
        loss, metrics = plain(training.get("loss")), plain(training.get("metrics"))
        registry.freeze()
        registry.check_unread(exclude_source=test.CHECKPOINT)
        if args.print_config:
            print(dump_yaml(registry.to_dict()), end="")
            return 0
        model = Model.from_checkpoint(checkpoint, args.model)
        problem = build.build_problem(problem_plan)
        if problem.data_definitions != model.data_definitions:
            raise ConfigError("the problem's data definitions differ from those the model was trained on",
                              file=args.model, key="problem", hint="Test on the problem the model was trained on, "
                                                                   "or one with the same inputs and targets")
        objective = build.make_objective(model, problem, loss, metrics)
        model.attach(objective, lambda _: None, registry.to_dict())
        folder = Path(args.outdir) if args.outdir else Experiment.holding(args.model)
        console.say_testing(args.model + (f", {args.n} times," if args.n > 1 else ""), problem)
        if args.n == 1:
            results = test.test_model(model, problem, folder)
            record.say_results(results, objective.metric_names, results["folder"])
            say_tracked(args.model, results, Path(results["folder"]))
            return 0
        summary, parent = test.repeat_tests(model, problem, folder, args.n)
        print(f"[pyrosys] {args.n} repeats: test loss {summary['loss']['mean']:.6f} +- {summary['loss']['std']:.6f}"
              + "".join(f"  test {name}: {summary[name]['mean']:.6f} +- {summary[name]['std']:.6f}"
                        for name in objective.metric_names))
        print(f"[pyrosys] results: {shown(parent)}")
        say_tracked(args.model, {name: values["mean"] for name, values in summary.items()}, parent)
        return 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """The common flags plus --m (and optional --c files over the checkpoint's configuration), --n."""
        parser.add_argument("--m", "--model", dest="model", metavar="CHECKPOINT", required=True,
                            help="a checkpoint written by pyrosys-trainer (e.g. <experiment>/models/best.ckpt)")
        parser.add_argument("--c", "--config", dest="config", metavar="FILE", nargs="+", action="extend", default=[],
                            help="configuration files merged over the checkpoint's configuration")
        add_configuration_flags(parser)
        add_run_flags(parser, savetag=False)
        parser.add_argument("--n", type=int, default=1, metavar="N",
                            help="test N times and report the mean and std of every statistic (generated problems "
                                 "draw new test samples each time)")


def say_tracked(checkpoint: str, results: dict, testing: Path) -> None:
    """Log the test to MLflow as a run nested under the training run (when that one reached MLflow): the test
    values (the means over repeats) and the testing folder's confusion matrix and summaries; say which run."""
    from pyrosys.tracking.mlflow_sink import log_test_run, run_tags
    from pyrosys.tracking.provenance import description

    files = TestingFolder(testing)
    run_id = log_test_run(Experiment(Experiment.holding(checkpoint)), {**results, "folder": str(testing)},
                          [*files.confusion_files, files.summary_file, files.repeats_file],
                          run_tags(description([], {}), testing))
    if run_id:
        print(f"[pyrosys] MLflow: test run {run_id}, nested under the training run")


def parser() -> argparse.ArgumentParser:
    """The tester's flags."""
    return Tester().parser()


main = Tester.main

if __name__ == "__main__":
    sys.exit(main())
