"""pyrosys-tester: rebuild problem and model from a checkpoint alone and run the test split.

    pyrosys-tester --m experiments/Digits/LeNet5/<time>/models/best.ckpt [--set testing.problem.batch_size=256]
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyrosys.configuration.loading import COMMAND_LINE, Configuration, dump_yaml, load_configuration, parse_override
from pyrosys.errors import ConfigError
from pyrosys.configuration.param_registry import ParamRegistry
from pyrosys.tracking.tables import TESTING_REPEATS, TESTING_SUMMARY
from pyrosys.workers.worker import add_configuration_flags, add_run_flags, base_parser, run

CHECKPOINT = "the checkpoint"


def test_model(model: Any, problem: Any, folder: Path, name: str | None = None) -> dict:
    """Run the test phase into `folder/testing_<time>/` (or `folder/<name>/`); the whole-set statistics."""
    import pytorch_lightning as pl

    from pyrosys.app_state import AppState
    from pyrosys.atomic import write_text_atomic
    from pyrosys.folders.experiment import create_unique_folder, timestamp
    from pyrosys.callbacks.statistics import CsvSink, StatisticsCollector

    test_folder = create_unique_folder(Path(folder), name or f"testing_{timestamp()}")
    collector = StatisticsCollector([CsvSink(folder, test_folder)])
    trainer = pl.Trainer(accelerator=AppState().accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, callbacks=[collector])
    trainer.test(model, datamodule=problem, verbose=False)
    write_text_atomic(test_folder / TESTING_SUMMARY, dump_yaml(collector.results["test"]))
    write_text_atomic(test_folder / "testing_configuration.yaml", dump_yaml(model.configuration or {}))
    if model.task == "classification":
        confusion_matrix(model, problem, test_folder)
    return {**collector.results["test"], "folder": str(test_folder)}


def confusion_matrix(model: Any, problem: Any, folder: Path) -> list[list[int]]:
    """Count (true, predicted) class pairs over the test split; write confusion_matrix.csv and .png."""
    import torch

    from pyrosys.tracking.plots import plot_confusion

    classes = model.data_definitions["targets"].get("classes") or [
        str(i) for i in range(model.data_definitions["targets"]["num_classes"])]
    counts = torch.zeros(len(classes), len(classes), dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for batch in problem.loader("test"):
            predicted = model.forward_batch(batch).argmax(dim=-1).reshape(-1)
            truth = batch["targets"].reshape(-1)
            counts += torch.bincount(truth * len(classes) + predicted, minlength=len(classes) ** 2).reshape(
                len(classes), len(classes))
    matrix = counts.tolist()
    lines = ["true \\ predicted," + ",".join(classes)] + [",".join([name, *map(str, row)])
                                                         for name, row in zip(classes, matrix)]
    (folder / "confusion_matrix.csv").write_text("\n".join(lines) + "\n")
    plot_confusion(matrix, classes, folder / "confusion_matrix.png",
                   f"{type(model).__name__} on {problem.name}: test confusion matrix")
    return matrix


def _configuration(checkpoint: dict, args: argparse.Namespace) -> Configuration:
    """The checkpoint's configuration, with the files and overrides of this command merged over it."""
    from omegaconf import OmegaConf

    from pyrosys.configuration.loading import leaf_paths, resolve_interpolations

    tree = checkpoint["pyrosys"].get("configuration")
    if not isinstance(tree, dict):
        raise ConfigError("the checkpoint carries no configuration", file=args.model, key="--m",
                          hint="Give a checkpoint written by pyrosys-trainer")
    sources = {leaf: CHECKPOINT for leaf in leaf_paths(tree)}
    merged = OmegaConf.create(tree)
    if args.config:
        extra = load_configuration(args.config)
        merged = OmegaConf.merge(merged, OmegaConf.create(extra.tree))
        sources.update(extra.sources)
    for item in args.overrides:
        key, value = parse_override(item)
        OmegaConf.update(merged, key, value, merge=True, force_add=True)
        sources[key] = COMMAND_LINE
    return Configuration(tree=resolve_interpolations(merged, sources), sources=sources, files=[args.model])


def test(args: argparse.Namespace) -> int:
    """Load -> rebuild -> test -> print."""
    from pyrosys.callbacks.checkpoint import read_checkpoint
    from pyrosys.factory import resolve
    from pyrosys.models.model import load_weights
    from pyrosys.workers.components import build_problem, make_objective, plain, resolve_problem

    if args.n < 1:
        raise ConfigError(f"--n is a number of repeats >= 1, not {args.n}", file="the command line", key="--n")
    checkpoint = read_checkpoint(args.model)
    if args.gpu:
        from pyrosys.app_state import AppState

        AppState().use_gpu()
    ParamRegistry.reset()
    registry = ParamRegistry()
    registry.load(_configuration(checkpoint, args))
    problem_plan = resolve_problem(registry)
    training = registry.section("training")
    loss, metrics = training.get("loss"), plain(training.get("metrics"))
    registry.freeze()
    registry.check_unread(exclude_source=CHECKPOINT)
    if args.print_config:
        print(dump_yaml(registry.to_dict()), end="")
        return 0

    description = checkpoint["pyrosys"]["model"]
    model_cls = resolve({"_target_": description.get("class")}, "model", file=args.model, key="pyrosys.model.class")
    model = model_cls.create(description.get("params"), description.get("data_definitions"))
    load_weights(model, checkpoint["state_dict"], args.model)
    problem = build_problem(problem_plan)
    if problem.data_definitions != model.data_definitions:
        raise ConfigError("the problem's data definitions differ from those the model was trained on",
                          file=args.model, key="problem",
                          hint="Test on the problem the model was trained on, or one with the same inputs and targets")
    objective = make_objective(model, problem, loss, metrics)
    model.attach(objective, lambda _: None, registry.to_dict())
    checkpoint_dir = Path(args.model).resolve().parent
    run_folder = checkpoint_dir.parent if checkpoint_dir.name == "models" else checkpoint_dir
    folder = Path(args.outdir) if args.outdir else run_folder
    if args.n == 1:
        results = test_model(model, problem, folder)
        print(f"[pyrosys] test loss: {results['loss']:.6f}" + "".join(
            f"  test {name}: {results[name]:.6f}" for name in objective.metric_names))
        print(f"[pyrosys] results: {results['folder']}")
        return 0
    summary, parent = repeat_tests(model, problem, folder, args.n)
    print(f"[pyrosys] {args.n} repeats: test loss {summary['loss']['mean']:.6f} +- {summary['loss']['std']:.6f}"
          + "".join(f"  test {name}: {summary[name]['mean']:.6f} +- {summary[name]['std']:.6f}"
                    for name in objective.metric_names))
    print(f"[pyrosys] results: {parent}")
    return 0


def repeat_tests(model: Any, problem: Any, folder: Path, repeats: int) -> tuple[dict, Path]:
    """Test `repeats` times (generated problems draw new test samples each time, from seed + repeat) into
    `testing_<time>/repeat_<i>/`, and write the mean and std of every statistic to testing_repeats.yaml."""
    import statistics

    from pyrosys.atomic import write_text_atomic
    from pyrosys.folders.experiment import create_unique_folder, timestamp

    parent = create_unique_folder(Path(folder), f"testing_{timestamp()}")
    base_seed = problem.phases["test"].get("seed") or 0
    runs = []
    for index in range(1, repeats + 1):
        problem.phases["test"]["seed"] = base_seed + index - 1
        runs.append(test_model(model, problem, parent, name=f"repeat_{index}"))
    problem.phases["test"]["seed"] = base_seed
    names = [key for key, value in runs[0].items() if isinstance(value, float)]
    summary = {key: {"mean": statistics.fmean(r[key] for r in runs), "std": statistics.pstdev(r[key] for r in runs),
                     "values": [r[key] for r in runs]} for key in names}
    write_text_atomic(parent / TESTING_REPEATS, dump_yaml({"repeats": repeats, **summary}))
    return summary, parent


def parser() -> argparse.ArgumentParser:
    """The tester's flags: the common ones plus --m (and optional --c files over the checkpoint's configuration)."""
    result = base_parser("pyrosys-tester", "Test a trained model, rebuilt from its checkpoint alone.")
    result.add_argument("--m", "--model", dest="model", metavar="CHECKPOINT", required=True,
                        help="a checkpoint written by pyrosys-trainer (e.g. <experiment>/models/best.ckpt)")
    result.add_argument("--c", "--config", dest="config", metavar="FILE", nargs="+", action="extend", default=[],
                        help="configuration files merged over the checkpoint's configuration")
    add_configuration_flags(result)
    add_run_flags(result, savetag=False)
    result.add_argument("--n", type=int, default=1, metavar="N",
                        help="test N times and report the mean and std of every statistic (generated problems "
                             "draw new test samples each time)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of pyrosys-tester."""
    return run(test, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
