"""RayTrainReport: a run on Ray Train's workers reports each validation to Ray, with a checkpoint that names the
experiment folder (its weights stay in the folder's models/last.ckpt), so that Ray, restarting its workers after
one died, tells them which folder to resume."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl

from pyrosys.folders.experiment import RAY_TRAIN_ENV

CHECKPOINT_FILE = "experiment.json"      # in a Ray checkpoint: {folder, episode}


class RayTrainReport(pl.Callback):
    """Every worker reports each validation's values to Ray (Ray Train waits for all); the first one adds the
    checkpoint naming its experiment folder."""

    @classmethod
    def from_environment(cls) -> list[RayTrainReport]:
        """The callback of a run on Ray Train's workers (RAY_TRAIN_ENV set), else none."""
        return [cls()] if os.environ.get(RAY_TRAIN_ENV) else []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The first worker tells the driver its experiment folder (the file RAY_TRAIN_ENV names)."""
        if trainer.is_global_zero:
            path = Path(json.loads(os.environ[RAY_TRAIN_ENV])["folder_file"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(Path(trainer.default_root_dir).resolve()))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import ray.train      # only a run on Ray Train's workers has this callback

        if trainer.sanity_checking or trainer.state.fn != "fit":    # the first worker's validation after the fit
            return                                                   # is its own: the others have left
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("val")}
        metrics["episode"] = trainer.global_step
        if not trainer.is_global_zero:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            record = {"folder": str(Path(trainer.default_root_dir).resolve()), "episode": trainer.global_step}
            (Path(folder) / CHECKPOINT_FILE).write_text(json.dumps(record))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def checkpointed_folder() -> str | None:
    """Inside a Ray Train worker: the experiment folder of Ray's latest checkpoint (after a restart), else None."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / CHECKPOINT_FILE).read_text())["folder"]
