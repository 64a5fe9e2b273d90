"""AppState: what the current process runs on (the accelerator its workers hand to Lightning)."""
from __future__ import annotations

from pyrosys.errors import ConfigError
from pyrosys.singleton import Singleton


class AppState(metaclass=Singleton):
    """Process-wide state of the running worker (a singleton; `AppState.reset()` in tests)."""

    def __init__(self) -> None:
        self.accelerator: str = "cpu"

    def use_gpu(self) -> None:
        """Switch to the first CUDA device (the worker's --gpu flag), if torch sees one."""
        import torch     # only for --gpu: the configuration step stays free of torch

        if not torch.cuda.is_available():
            raise ConfigError("--gpu was given but torch sees no CUDA device", file="the command line",
                              key="--gpu", hint="Drop --gpu to train on the CPU")
        self.accelerator = "gpu"

    def __repr__(self) -> str:
        return f"AppState({vars(self)})"
