"""AppState: what the current process is doing (device, precision, seed, experiment folder...)."""
from __future__ import annotations

from pathlib import Path

from pyrosys.singleton import Singleton


class AppState(metaclass=Singleton):
    """Process-wide state of the running worker (a singleton; `AppState.reset()` in tests)."""

    def __init__(self) -> None:
        self.accelerator: str = "cpu"
        self.device: str = "cpu"
        self.precision: str = "32-true"
        self.seed: int | None = None
        self.log_level: str = "INFO"
        self.experiment_dir: Path | None = None
        self.visualize: bool = False

    def use_gpu(self) -> None:
        """Switch to the first CUDA device (the worker's --gpu flag), if torch sees one."""
        import torch

        if not torch.cuda.is_available():
            from pyrosys.errors import ConfigError

            raise ConfigError("--gpu was given but torch sees no CUDA device", file="the command line",
                              key="--gpu", hint="Drop --gpu to train on the CPU")
        self.accelerator, self.device = "gpu", "cuda:0"

    def __repr__(self) -> str:
        return f"AppState({vars(self)})"
