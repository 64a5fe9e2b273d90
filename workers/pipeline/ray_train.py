"""Ray Train as the engine of one run (`training.backend: ray`, or `pyrosys-trainer --backend ray [--address
HOST:PORT]`).

The driver (the pyrosys-trainer process) checks Ray, the address and the cluster's resources before anything is
written, then fits a `TorchTrainer` whose workers each run the trainer command, as DDP's processes re-run the
command line: the first (world rank 0) writes the experiment folder as any run does, the others train into it
writing nothing (`fit.fit_other_rank`). Their pl.Trainer gets Ray's `RayDDPStrategy` and `RayLightningEnvironment`
and goes through `prepare_trainer`; each validation is reported to Ray with a checkpoint naming the folder
(`RayTrainReport`), so that when a worker dies Ray restarts them all (`FailureConfig(max_failures)`) and they
resume that folder from its models/last.ckpt. Ray is imported inside the functions: this module loads without it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError, RunFailed
from pyrosys.execution.tune_backend import check_ray
from pyrosys.folders import shown
from pyrosys.folders.experiment import HANDOVER_ENV, RAY_TRAIN_ENV, Experiment
from pyrosys.tracking.tables import SPREAD
from pyrosys.workers.pipeline.resolve import TrainingPlan

STORAGE = ".ray_train"         # Ray's storage in --outdir: a folder per launch (its checkpoints name the run)
FOLDER_FILE = "experiment"     # in that folder: the experiment folder the first worker opened
ENDED_FILE = "ended.json"      # and how a worker's run ended when it did not complete: {code, reason}
RESOURCE_WAIT_SECONDS = 5      # how long a cluster's missing resources may take to appear (nodes joining)


def launch(args: argparse.Namespace, plan: TrainingPlan) -> int:
    """The driver: Ray checked and started (or joined), the run fitted on its workers, its outcome told; the exit
    status is the run's (0 completed, 1 failed)."""
    settings = plan.ray
    check_ray(settings["address"])                 # installed, and an address answers within seconds
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": settings["address"]} if settings["address"] else \
            {"address": "local", "num_cpus": os.cpu_count() or 1}      # a new instance, whatever ran before
        ray.init(include_dashboard=False, configure_logging=False, **options)
    try:
        check_resources(settings)
        storage = (Path(args.outdir or "experiments") / STORAGE).resolve()
        name = f"{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
        failure = fit_on_workers(args, plan, storage, name)
    finally:
        if started_here:
            ray.shutdown()
    return outcome(storage / name / FOLDER_FILE, failure)


def worker_resources(settings: dict) -> dict[str, float]:
    """What one of the run's workers takes of a node."""
    each = {name: float(amount) for name, amount in settings["resources_per_worker"].items()}
    if settings["use_gpu"]:
        each.setdefault("GPU", 1.0)
    return each


def workers_placed(nodes: list[dict], each: dict[str, float]) -> int:
    """How many workers the nodes hold, each worker whole on one node (Ray places a worker's bundle so)."""
    return sum(int(min((node.get(name, 0.0) / amount if amount else math.inf) for name, amount in each.items()))
               if each else 1 << 30 for node in nodes)


def check_resources(settings: dict) -> None:
    """Refuse a run the cluster cannot hold, each worker whole on one node (Ray would wait for it without end);
    a cluster's nodes may still be joining, so an address gets RESOURCE_WAIT_SECONDS."""
    import ray

    each, wanted = worker_resources(settings), settings["num_workers"]
    deadline = time.monotonic() + (RESOURCE_WAIT_SECONDS if settings["address"] else 0)
    while True:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        placed = workers_placed(nodes, each)
        if placed >= wanted or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if placed < wanted:
        where = f"the Ray cluster at {settings['address']}" if settings["address"] else "the local Ray instance"
        largest = {name: max((node.get(name, 0.0) for node in nodes), default=0.0) for name in each}
        raise ConfigError(f"{wanted} workers of {_shown(each)} each need room on the nodes of {where}, which hold "
                          f"{placed} (its nodes: {len(nodes)}; the largest has {_shown(largest)})",
                          file="the command line", key="training.ray.num_workers",
                          hint="Ask for fewer workers (or fewer resources_per_worker), or give --address of a "
                               "larger cluster")


def _shown(resources: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {name}" for name, amount in resources.items()) or "no resources"


def fit_on_workers(args: argparse.Namespace, plan: TrainingPlan, storage: Path, name: str) -> str | None:
    """TorchTrainer's fit, each worker running `train_worker`; Ray's reason when it gave up, else None."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    settings = plan.ray
    # Ray Train's print patch would send each printed line of a worker to the driver twice (stdout and stderr);
    # Ray Train hands this variable from the driver to its controller and workers
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    arguments = {**vars(args), "overrides": [*args.overrides, f"training.seed_torch={plan.seed_torch}",
                                             f"training.seed_numpy={plan.seed_numpy}"]}   # drawn seeds: every worker's
    config = {"args": arguments, "argv": list(sys.argv), "cwd": os.getcwd(),
              "folder_file": str(storage / name / FOLDER_FILE), "use_gpu": settings["use_gpu"]}
    scaling = ScalingConfig(num_workers=settings["num_workers"], use_gpu=settings["use_gpu"],
                            resources_per_worker=settings["resources_per_worker"])
    trainer = TorchTrainer(train_worker, train_loop_config=config, scaling_config=scaling,
                           run_config=RunConfig(storage_path=str(storage), name=name,
                                                failure_config=FailureConfig(max_failures=settings["max_failures"]),
                                                checkpoint_config=CheckpointConfig(num_to_keep=1)))
    try:
        trainer.fit()
    except TrainingFailedError as error:
        return str(error).strip().splitlines()[0]
    return None


def outcome(folder_file: Path, failure: str | None) -> int:
    """What the ordinary trainer says at the end (the folder, the test, the results), from the folder's status;
    0 for a completed (or pruned) run, 1 otherwise."""
    folder = Path(folder_file.read_text()) if folder_file.is_file() else None
    status = Experiment(folder).read_status() if folder and Experiment(folder).status_file.is_file() else {}
    state = status.get("status")
    if state in ("completed", "pruned") and failure is None:
        testing = status.get("testing", {})
        print(f"[pyrosys] {state} on Ray Train: {status.get('reason')}, epoch {status.get('epoch')}, "
              f"episode {status.get('episode')}")
        print("[pyrosys] test " + "  test ".join(f"{name}: {value:.6f}" for name, value in testing.items()
                                                 if isinstance(value, float) and name not in ("batches", "samples")
                                                 and not name.endswith(SPREAD)))
        print(f"[pyrosys] results: {shown(folder)}")
        return 0
    ended = folder_file.with_name(ENDED_FILE)
    told = json.loads(ended.read_text()) if ended.is_file() else {}
    reason = told.get("reason") or (status.get("reason") if state in ("failed", "interrupted") else failure) or \
        "its workers ended without a word (see their output above)"
    where = f" (experiment folder {shown(folder)})" if folder else ""
    print(f"[pyrosys] the run failed on Ray Train: {reason}{where}", flush=True)
    return 2 if told.get("code") == 2 else 1          # bad input that only a worker could find is still status 2


def train_worker(config: dict) -> None:
    """Inside a Ray Train worker: the trainer command, with the driver's flags and seeds, in the driver's folder;
    after a restart, resuming the folder Ray's latest checkpoint names. A run that fails (a diverged loss) raises,
    its status written, so that Ray ends its other workers."""
    import ray.train

    from pyrosys.callbacks.ray_train_report import checkpointed_folder
    from pyrosys.factory import resolve
    from pyrosys.workers.worker import outcome as run_outcome

    os.chdir(config["cwd"])
    sys.argv = list(config["argv"])           # the command the run records is the driver's, not Ray's worker's
    args = argparse.Namespace(**config["args"])
    told = Path(config["folder_file"])          # the folder the first worker opened, before a restart
    ended = told.with_name(ENDED_FILE)
    if ended.is_file():            # a restart after a run that failed on its own (bad input, a diverged loss):
        return                     # the same failure again; the workers end and the driver says it
    folder = checkpointed_folder() or (told.read_text() if told.is_file() else None)
    if folder is not None and any(path.is_file() for path in (Experiment(folder).last_checkpoint,
                                                              Experiment(folder).best_checkpoint)):
        args.resume = folder                       # a restart: every worker goes on from the folder's checkpoint
    first = ray.train.get_context().get_world_rank() == 0
    os.environ[RAY_TRAIN_ENV] = json.dumps({"folder_file": config["folder_file"], "use_gpu": config["use_gpu"]})
    if not first:
        os.environ[HANDOVER_ENV] = args.resume or str(Path(config["folder_file"]).parent)
    failed_itself: list[str] = []

    def run(arguments: argparse.Namespace) -> int:
        try:
            return resolve({"name": "trainer"}, "worker")().run(arguments)
        except RunFailed as error:          # the run's own failure (a diverged loss), not a lost worker's
            failed_itself.append(str(error))
            raise

    code, reason = run_outcome(run, args)
    if code == 2 or failed_itself:      # would fail again after a restart: told, so that restarts end at once
        ended.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ended, json.dumps({"code": code, "reason": reason.strip()}))
    if code != 0:               # Ray ends the other workers (which would wait for this one without end)
        raise RuntimeError(f"the trainer ended with status {code}: {reason}")


def on_workers() -> bool:
    """Whether this process is a worker of a run on Ray Train."""
    return bool(os.environ.get(RAY_TRAIN_ENV))


def worker_arguments(arguments: dict) -> dict:
    """pl.Trainer's arguments on a Ray Train worker: one device, Ray's DDP strategy and cluster environment."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    use_gpu = json.loads(os.environ[RAY_TRAIN_ENV])["use_gpu"]
    return {**arguments, "accelerator": "gpu" if use_gpu else "cpu", "devices": "auto", "strategy": RayDDPStrategy(),
            "plugins": [RayLightningEnvironment()]}


def prepared(trainer: Any) -> Any:
    """Ray's prepare_trainer on a worker's pl.Trainer (it checks the strategy and environment are Ray's)."""
    from ray.train.lightning import prepare_trainer

    return prepare_trainer(trainer)

