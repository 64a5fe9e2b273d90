"""Algorithmic recall problems generated on the fly, after MI-Prometheus: SerialRecall and ReverseRecall.

A sample of length L is: a store marker, L random data words, a recall marker, then L blank
steps during which the model must answer with the stored words (in order, or reversed). The
`masks` field marks the answer steps; only they count in the loss and the metrics. All samples
of a batch share one length, drawn between the minimum and the current maximum length, which
`curriculum_learning` grows during training.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
from torch.utils.data import DataLoader, IterableDataset

from pyrosys.configuration.aliases import Aliases, Fixed
from pyrosys.configuration.constraints import Integer
from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.problems.problem import Problem

PHASE_SEEDS = {"train": 0, "val": 1, "test": 2}


class GeneratedBatches(IterableDataset):
    """`episodes` batches from a problem's `generate(length, generator)`, drawn from a seeded generator."""

    def __init__(self, problem: RecallProblem, phase: str) -> None:
        self.problem, self.phase = problem, phase

    def __len__(self) -> int:
        return int(self.problem.phases[self.phase]["episodes"])

    def __iter__(self) -> Iterator[DataDict]:
        params = self.problem.phases[self.phase]
        draws = self.problem.training_epochs if self.phase == "train" else 0
        generator = torch.Generator().manual_seed(int(params["seed"] or 0) * 7919 + PHASE_SEEDS[self.phase]
                                                  + draws * 104729)
        if self.phase == "train":
            self.problem.training_epochs += 1
        for _ in range(len(self)):
            if self.phase == "train":
                self.problem.update_curriculum(self.problem.episodes_generated)
                self.problem.episodes_generated += 1
            high = self.problem.current_max_length if self.phase == "train" else params["max_sequence_length"]
            length = int(torch.randint(params["min_sequence_length"], high + 1, (1,), generator=generator))
            yield self.problem.generate(int(params["batch_size"]), length, generator)


def episodes_from_size(size: object, params: Mapping) -> dict:
    """MI-Prometheus's `size` (samples an epoch) as PyroSys's `episodes` (batches an epoch, the last one whole)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size (samples an epoch) is a whole number >= 1, not {size!r}")
    return {"episodes": math.ceil(size / int(params["batch_size"]))}


def mi_prometheus(name: str) -> Aliases:
    """What MI-Prometheus's `<name>CommandLines` problem and its keys mean for a recall problem."""
    return Aliases(names={f"{name}CommandLines": {}}, converted={"size": episodes_from_size},
                   fixed={"bias": Fixed(0.5, "every data bit is 1 with probability 0.5")})


class RecallProblem(Problem):
    """Store a sequence of bit words, then recall it; subclasses choose the order of the answer."""

    task = "sequence"
    curriculum = {"initial_max_sequence_length": 2, "interval": 500}

    @staticmethod
    def get_params() -> dict:
        return {**Problem.get_params(), "control_bits": 2, "data_bits": 8, "min_sequence_length": 1,
                "max_sequence_length": 10, "episodes": 1000}

    @staticmethod
    def constraints() -> dict:
        return {**Problem.constraints(), "control_bits": Integer(low=2), "data_bits": Integer(low=1),
                "min_sequence_length": Integer(low=1), "max_sequence_length": Integer(low=1),
                "episodes": Integer(low=1)}

    def __init__(self, params: Mapping, phases: Mapping[str, Mapping] | None = None) -> None:
        super().__init__(params, phases)
        self.schedule: dict | None = None
        self.current_max_length = int(self.phases["train"]["max_sequence_length"])
        self.episodes_generated = 0
        self.training_epochs = 0

    def state_dict(self) -> dict:
        """Where generation stands (saved in checkpoints, so that a resumed run draws the same samples)."""
        return {"episodes_generated": self.episodes_generated, "training_epochs": self.training_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.episodes_generated = int(state["episodes_generated"])
        self.training_epochs = int(state["training_epochs"])
        self.update_curriculum(self.episodes_generated)

    def define_data(self) -> dict:
        params = self.phases["train"]          # every phase has the same word size (check())
        return {"inputs": {"kind": "sequence", "shape": [None, params["control_bits"] + params["data_bits"]],
                           "dtype": "float32"},
                "targets": {"shape": [None, params["data_bits"]], "dtype": "float32"},
                "masks": {"shape": [None], "dtype": "bool"}}

    def batch_statistics(self, batch: DataDict) -> dict:
        """The problem's own statistic in the training rows: the length of the batch's sequences."""
        return {"sequence_length": float((batch["inputs"].shape[1] - 2) // 2)}

    def answer(self, data: torch.Tensor) -> torch.Tensor:
        """The words the model must give back, from the stored words [N, L, B]."""
        raise TypeError(f"{type(self).__name__} must define answer(data)")

    def generate(self, batch_size: int, length: int, generator: torch.Generator) -> DataDict:
        """One batch of samples of `length` words."""
        control, bits = int(self.phases["train"]["control_bits"]), int(self.phases["train"]["data_bits"])
        data = torch.randint(0, 2, (batch_size, length, bits), generator=generator).float()
        steps = 2 * length + 2
        inputs = torch.zeros(batch_size, steps, control + bits)
        inputs[:, 0, 0] = 1.0                                   # store marker
        inputs[:, 1:length + 1, control:] = data
        inputs[:, length + 1, 1] = 1.0                          # recall marker
        targets = torch.zeros(batch_size, steps, bits)
        targets[:, length + 2:] = self.answer(data)
        masks = torch.zeros(batch_size, steps, dtype=torch.bool)
        masks[:, length + 2:] = True
        return DataDict(inputs=inputs, targets=targets, masks=masks)

    def check(self) -> None:
        """Refuse lengths that cannot produce a sample, and phases whose words differ in size (one model reads
        them all); each value's own range is in constraints()."""
        for key in ("control_bits", "data_bits"):
            sizes = {phase: params[key] for phase, params in self.phases.items()}
            if len(set(sizes.values())) > 1:
                raise ConfigError(f"the phases' {key} differ ({sizes}): one model reads every phase",
                                  key=f"problem.{key}", hint=f"Give {key} once, in the problem section")
        for params in self.phases.values():
            low, high = params["min_sequence_length"], params["max_sequence_length"]
            if low > high:
                raise ConfigError(f"min_sequence_length {low} is above max_sequence_length {high}",
                                  key="problem.min_sequence_length")

    def setup(self, stage: str | None = None) -> None:
        self.check()

    def loader(self, phase: str) -> DataLoader:
        self.check()
        return DataLoader(GeneratedBatches(self, phase), batch_size=None)

    def set_curriculum(self, params: Mapping) -> None:
        """Start at `initial_max_sequence_length` and grow by one every `interval` episodes."""
        for key in ("initial_max_sequence_length", "interval"):
            value = params[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key} must be a whole number >= 1, not {value!r}",
                                  key=f"training.curriculum_learning.{key}")
        self.schedule = dict(params)
        self.update_curriculum(0)

    def update_curriculum(self, episode: int) -> None:
        if self.schedule is None:
            return
        high = int(self.phases["train"]["max_sequence_length"])
        low = int(self.phases["train"]["min_sequence_length"])
        grown = int(self.schedule["initial_max_sequence_length"]) + episode // int(self.schedule["interval"])
        self.current_max_length = max(low, min(high, grown))

    def curriculum_end(self) -> int:
        """The episode from which the curriculum has reached the full maximum length (0 without one)."""
        if self.schedule is None:
            return 0
        missing = int(self.phases["train"]["max_sequence_length"]) - int(self.schedule["initial_max_sequence_length"])
        return max(0, missing) * int(self.schedule["interval"])


@register("problem")
class SerialRecall(RecallProblem):
    """Recall the stored words in the order they were given."""

    aliases = mi_prometheus("SerialRecall")

    def answer(self, data: torch.Tensor) -> torch.Tensor:
        return data


@register("problem")
class ReverseRecall(RecallProblem):
    """Recall the stored words in reverse order."""

    aliases = mi_prometheus("ReverseRecall")

    def answer(self, data: torch.Tensor) -> torch.Tensor:
        return data.flip(1)

