"""pyrosys-trainer: resolve a configuration, build problem and model, fit, test the best model, record.

    pyrosys-trainer --c configs/digits/lenet5.yaml [--c more.yaml] [--set key=value ...]

The steps are the run pipeline's (`pyrosys.workers.pipeline`). Its build, fit, test and record steps
import torch and Lightning, so they are imported inside `Trainer.run`, once the configuration is known
to be good: --help and configuration errors answer before them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyrosys.configuration.aliases import alias_comments
from pyrosys.configuration.loading import dump_yaml, load_yaml
from pyrosys.configuration.project import find_project
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.workers.pipeline import ray_train
from pyrosys.workers.pipeline.resolve import resolve
from pyrosys.workers.worker import Worker, add_configuration_flags, add_run_flags, show_progress_lines


@register("worker", name="trainer")
class Trainer(Worker):
    """Train a model on a problem, both named in YAML configuration files."""

    prog = "pyrosys-trainer"

    def run(self, args: argparse.Namespace) -> int:
        """resolve -> build -> fit -> test -> record."""
        if args.list:
            return list_choices(args)
        if getattr(args, "backend", None) == "ray":     # Ray installed, --address answering, before torch's import
            ray_train.check_ray(args.address)
        plan = resolve(args)                                            # configuration -> checked plan
        if args.print_config:
            print(alias_comments(plan.loaded.aliases) + dump_yaml(plan.configuration), end="")
            return 0
        if plan.backend == "ray" and not (args.dry_run or ray_train.on_workers()):   # the driver of a run on Ray Train
            return ray_train.launch(args, plan)
        from pyrosys.workers.pipeline import build, console, fit, record, test  # torch and Lightning from here on

        console.step(f"building the problem {plan.problem.name} and the model {plan.model.name}")
        parts = build.setup(plan, gpu=args.gpu)         # problem, model, objective, optimizer, callbacks
        if args.dry_run:
            return fit.dry_run(parts.model, parts.problem)
        if fit.is_other_rank(parts.arguments):                         # a DDP process other than the first, on any node
            return fit.fit_other_rank(plan, parts, args.resume)
        with record.opened(args, plan) as (experiment, resume):   # nothing was written before; one writer
            show_progress_lines(not parts.arguments["enable_progress_bar"])
            run = build.run(plan, parts, experiment, Path(args.outdir or "experiments"), resume)
            record.started(run, plan, parts, resume, args.log_level)
            try:
                fitted = fit.fit(run, parts, plan, resume)              # fit, best weights, bundle
                console.say_testing(str(experiment.best_checkpoint.relative_to(experiment.folder)), parts.problem)
                results = test.test_model(parts.model, parts.problem, experiment.folder)
                record.completed(run, plan, parts, fitted, results)     # curves, status, MLflow
            except BaseException as error:
                record.failed(run, plan, error)
                raise
            finally:
                record.closed(run)
        console.say_summary(experiment, plan, fitted)                    # one screen: stop, best, model, time
        record.say_results(results, parts.objective.metric_names, experiment.folder)
        return 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """The common flags plus --c, choices, --list, --resume, --m, --run-name, tracking and --seed."""
        parser.add_argument("--c", "--config", dest="config", metavar="FILE", nargs="+", action="extend",
                            default=[], help="configuration files, later ones winning (also a,b,c); with --resume, "
                                             "merged over the experiment's saved configuration")
        parser.add_argument("choices", nargs="*", metavar="GROUP=CHOICE",
                            help="in a PyroSys project: pick config/<GROUP>/<CHOICE>.yaml for a group (model=vae "
                                 "data=cells); other key.sub=value items are overrides, as with --set")
        parser.add_argument("--list", metavar="GROUP", default=None,
                            help="in a PyroSys project: list the choices of a configuration group and exit")
        parser.add_argument("--resume", metavar="EXPERIMENT_DIR", default=None,
                            help="continue an interrupted experiment from its models/last.ckpt, in the same "
                                 "folder, CSVs, TensorBoard and MLflow run")
        parser.add_argument("--m", "--model", dest="model_weights", metavar="CHECKPOINT", default=None,
                            help="start a new experiment from these weights (a checkpoint or bundle, via the Adapter)")
        add_configuration_flags(parser)
        add_run_flags(parser, savetag=True)
        parser.add_argument("--run-name", metavar="NAME", default=None,
                            help="experiment folder <outdir>/NAME instead of <outdir>/<Problem>/<Model>/<time> "
                                 "(grid workers name their runs so)")
        parser.add_argument("--tensorboard", type=int, choices=(0, 1, 2), default=None,
                            help="logging.tensorboard: 0 statistics, 1 + weight histograms, 2 + gradient histograms")
        parser.add_argument("--mlflow", metavar="URI", default=None,
                            help="logging.mlflow.tracking_uri: an MLflow server or store (default: sqlite in --outdir)")
        parser.add_argument("--li", dest="logging_interval", metavar="INTERVAL", type=int, default=None,
                            help="episodes between statistics rows (logging.interval)")
        parser.add_argument("--seed", type=int, default=None, help="the seed (training.seed); -1 draws one")
        parser.add_argument("--backend", choices=("local", "ray"), default=None,
                            help="training.backend: ray runs this one experiment on Ray Train's workers "
                                 "(training.ray: num_workers, use_gpu, resources_per_worker, max_failures)")
        parser.add_argument("--address", metavar="HOST:PORT", default=None,
                            help="training.ray.address: the Ray cluster to run on (default: a local Ray instance)")
        parser.add_argument("--dry-run", action="store_true",
                            help="resolve, build, one batch forward and backward, print the model summary; "
                                 "no training")


def list_choices(args: argparse.Namespace) -> int:
    """--list GROUP: the choices of a group of the project around the configuration (or this folder)."""
    start = args.config[0] if args.config else Path.cwd()
    project = find_project(start)
    if project is None:
        raise ConfigError("this is not inside a PyroSys project (no .pyrosys-project file here or above)",
                          file=str(start), key="--list", hint="Create one with pyrosys-init NAME")
    groups = project.groups()
    if args.list not in groups:
        raise ConfigError(f"the project {project.package} has no group '{args.list}'", file=str(project.config_dir),
                          key="--list", hint="Groups: " + ", ".join(groups))
    config = Path(args.config[0]) if args.config else project.config_dir / "train.yaml"
    default = default_choice(config, args.list)
    for choice in groups[args.list]:
        print(f"{choice}  (default in {shown(config)})" if choice == default else choice)
    return 0


def default_choice(config: Path, group: str) -> str | None:
    """The choice of `group` that the `groups:` section of `config` names (None without one)."""
    if not config.is_file():
        return None
    defaults = load_yaml(config).get("groups")
    choice = defaults.get(group) if isinstance(defaults, dict) else None
    return None if choice is None else str(choice)


def parser() -> argparse.ArgumentParser:
    """The trainer's flags."""
    return Trainer().parser()


main = Trainer.main

if __name__ == "__main__":
    sys.exit(main())
