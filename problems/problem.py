"""Problem: the data side of an experiment, a LightningDataModule that describes its own data.

A problem declares its parameters (`get_params`), what its batches hold (`data_definitions`),
its task and default objective, and hands out a loader per phase (train, val, test).
"""
from __future__ import annotations

import copy
import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from pyrosys.configuration.constraints import Boolean, Integer, ListOf, Number, OptionalOf, Text, check_params
from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.problems.batching import Batching, PlannedBatches

PHASES = ("train", "val", "test")
SEED_LIMIT = 2**32 - 1        # NumPy's seeds stop here
# a phase -> what it does with its split (for messages)
PHASE_WORK = {"train": "train on", "val": "validate on", "test": "test on"}
FRACTIONS = ListOf(Number(low=0, low_open=True), min_length=3, max_length=3)   # train, val, test shares

# task -> (default loss, default metrics)
DEFAULT_OBJECTIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "classification": ("cross_entropy", ("accuracy",)),
    "regression": ("mse", ("mse", "mae", "r2")),
    "sequence": ("masked_bce_with_logits", ("accuracy", "sequence_accuracy")),
    "multilabel": ("bce_with_logits", ("f1_micro", "f1_macro", "average_precision", "fmax")),
    "residue_classification": ("masked_cross_entropy", ("accuracy", "mcc", "auroc", "average_precision", "f1")),
    "residue_regression": ("masked_mse", ("mse", "mae", "r2")),
}


def class_names(found: Iterable[str], declared: Sequence | None) -> list[str]:
    """A classification problem's classes in their order: those declared (as text), else the labels found, sorted."""
    return [str(c) for c in declared] if declared else sorted(set(found))


def refuse_dropped(phase: str, size: int, params: dict) -> None:
    """Refuse a split of `size` samples, fewer than one batch, that drop_last (batches of batch_size) drops whole."""
    if params["drop_last"] and size < int(params["batch_size"]):
        raise ConfigError(f"the {phase} phase's split holds {size} samples, fewer than one batch of "
                          f"{params['batch_size']}, and drop_last drops it: there is nothing to "
                          f"{PHASE_WORK[phase]}", key="problem.drop_last",
                          hint="Lower batch_size, or set drop_last: false")


class Problem(pl.LightningDataModule):
    """Base of every problem: parameters, data definitions, task, default objective, loaders."""

    task: ClassVar[str] = "classification"
    path_params: ClassVar[tuple[str, ...]] = ()      # parameters naming files, taken relative to their YAML file
    curriculum: ClassVar[dict | None] = None         # curriculum_learning parameters and defaults, if supported

    @staticmethod
    def get_params() -> dict:
        """Parameters and defaults shared by every problem; subclasses extend this dict."""
        return {
            "batch_size": 64,      # samples per batch
            "split": "train",      # which data split a phase reads (train, val or test)
            "shuffle": None,       # None: shuffle the training phase only
            "drop_last": False,
            "num_workers": 0,
            "seed": None,          # None: the experiment's seed (filled in by the worker)
        }

    @staticmethod
    def constraints() -> dict:
        """The valid values of each parameter of get_params(), checked before anything is read or built."""
        return {"batch_size": Integer(low=1), "split": Text(), "drop_last": Boolean(), "num_workers": Integer(low=0),
                "shuffle": OptionalOf(Boolean(), "the training phase only"),
                "seed": OptionalOf(Integer(low=0, high=SEED_LIMIT), "the experiment's seed")}

    def __init__(self, params: Mapping, phases: Mapping[str, Mapping] | None = None) -> None:
        super().__init__()
        self.params = dict(params)
        self.phases = {phase: {**self.params, **dict((phases or {}).get(phase, {}))} for phase in PHASES}

    @classmethod
    def create(cls, params: Mapping | None = None, phases: Mapping[str, Mapping] | None = None) -> Problem:
        """A problem from (partial) parameters: defaults filled in, unknown keys and invalid values refused."""
        defaults = cls.get_params()
        for where, given in [("problem", params or {})] + [(f"{p}.problem", v) for p, v in (phases or {}).items()]:
            for key in given:
                if key not in defaults:
                    raise ConfigError(f"{cls.__name__} has no parameter '{key}'", key=f"{where}.{key}",
                                      hint=did_you_mean(key, defaults))
            check_params(cls, given, section=where, defaults=defaults)
        return cls({**defaults, **dict(params or {})}, phases)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def default_loss(self) -> str:
        """The loss of this problem's task (a configuration may name another)."""
        return DEFAULT_OBJECTIVES[self.task][0]

    @property
    def default_metrics(self) -> tuple[str, ...]:
        """The metrics of this problem's task (a configuration may name others)."""
        return DEFAULT_OBJECTIVES[self.task][1]

    def set_curriculum(self, params: Mapping) -> None:
        """Take curriculum_learning parameters (problems with a `curriculum` only)."""
        raise ConfigError(f"the problem {self.name} has no curriculum to learn", key="training.curriculum_learning",
                          hint="Remove curriculum_learning, or use a problem that grows its difficulty")

    def batch_statistics(self, batch: Any) -> dict:
        """Statistics of a training batch the problem adds to the training rows (none by default)."""
        return {}

    def update_curriculum(self, episode: int) -> None:
        """Set the difficulty for the coming episode (problems that generate their samples call this)."""

    def curriculum_end(self) -> int:
        """The episode from which the curriculum has reached full difficulty (0 without a curriculum)."""
        return 0

    @property
    def data_definitions(self) -> dict:
        """What a batch holds, field by field (kind, shape, dtype, classes...): what models size themselves
        from. The targets' definition also names the task."""
        definitions = self.define_data()
        definitions["targets"] = {"task": self.task, **definitions["targets"]}
        return definitions

    def define_data(self) -> dict:
        """Subclasses describe their fields here: {'inputs': {...}, 'targets': {...}, ...}."""
        raise TypeError(f"{type(self).__name__} must define define_data()")

    def phase_params(self, phase: str) -> dict:
        """The parameters of one phase: the shared ones with that phase's overrides over them."""
        return copy.deepcopy(self.phases[phase])

    def train_dataloader(self) -> Any:
        return self.loader("train")

    def val_dataloader(self) -> Any:
        return self.loader("val")

    def test_dataloader(self) -> Any:
        return self.loader("test")

    def loader(self, phase: str) -> Any:
        """The iterable of DataDict batches for one phase."""
        raise TypeError(f"{type(self).__name__} must define loader(phase)")


class TensorSplit(Dataset):
    """One split held as named tensors; a batch is cut by one tensor index, not sample by sample."""

    def __init__(self, fields: Mapping[str, torch.Tensor]) -> None:
        sizes = {name: len(t) for name, t in fields.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"fields of one split differ in length: {sizes}")
        self.fields = dict(fields)
        self.size = next(iter(sizes.values()))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> DataDict:
        return DataDict({name: t[index] for name, t in self.fields.items()})

    def __getitems__(self, indices: Sequence[int]) -> DataDict:
        index = torch.as_tensor(indices, dtype=torch.long)
        return DataDict({name: t[index] for name, t in self.fields.items()})


class TensorBatches:
    """The batch-level data path of an in-memory split: one permutation per epoch, one tensor index per
    batch, no sampler, no per-sample calls, no collation (what a hand-written loop does).

    Resumable mid-epoch: a checkpoint keeps the epoch's order (`state_dict`, which Lightning stores),
    and the iteration after a restore goes on with that order past the batches the trainer had
    processed (`processed()`), so a run resumed from any batch sees the uninterrupted run's batches."""

    def __init__(self, split: TensorSplit, batch_size: int, shuffle: bool, drop_last: bool,
                 processed: Callable[[], int] | None = None) -> None:
        self.split, self.batch_size, self.shuffle, self.drop_last = split, int(batch_size), shuffle, drop_last
        self.processed = processed
        self.order: torch.Tensor | None = None
        self.restored: dict | None = None

    def __len__(self) -> int:
        full, rest = divmod(len(self.split), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def state_dict(self) -> dict:
        """What a checkpoint keeps: this epoch's order (the position is the trainer's own progress)."""
        return {"order": self.order}

    def load_state_dict(self, state: Mapping) -> None:
        """Go on, at the next iteration, with a checkpoint's order past the batches already processed."""
        self.restored = dict(state)

    def _start(self) -> tuple[torch.Tensor | None, int]:
        """The order and first batch of an iteration: a restored epoch's, or a new epoch's."""
        restored, self.restored = self.restored, None
        done = self.processed() if restored is not None and self.processed is not None else 0
        if restored is not None and 0 < done < len(self):
            return restored.get("order"), done
        return (torch.randperm(len(self.split)) if self.shuffle else None), 0

    def __iter__(self) -> Iterator[DataDict]:
        fields, size = self.split.fields, self.batch_size
        order, start = self._start()
        self.order = order
        for batch in range(start, len(self)):
            index = order[batch * size:(batch + 1) * size] if order is not None else \
                slice(batch * size, (batch + 1) * size)
            yield DataDict({name: tensor[index] for name, tensor in fields.items()})


def keep_batch(batch: DataDict) -> DataDict:
    """The collate function for TensorSplit: the batch is already whole."""
    return batch


class InMemoryProblem(Problem):
    """A problem whose splits fit in memory as tensors; subclasses write `prepare`, read once and cached."""

    def prepare(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """Every split ('train', 'val', 'test') as named tensors of equal length, and the data definitions."""
        raise TypeError(f"{type(self).__name__} must define prepare()")

    def prepared(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """`prepare()`'s result, computed once: splits and definitions come from the same reading."""
        if getattr(self, "_prepared", None) is None:
            self._prepared = self.prepare()
        return self._prepared

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every split as a dict of named tensors."""
        return self.prepared()[0]

    def define_data(self) -> dict:
        return {field: dict(definition) for field, definition in self.prepared()[1].items()}

    def data_file(self) -> str | None:
        """The file the data are read from (for messages); None for bundled or generated data."""
        return None

    def splits_key(self) -> str:
        """The key that decides which samples each split holds (for messages)."""
        return "problem.fractions" if "fractions" in self.params else "problem.split"

    def labels_key(self) -> str:
        """The key that names the classification labels (for messages)."""
        return "problem"

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "splits", None) is None:
            splits = {name: TensorSplit(fields) for name, fields in self.load_splits().items()}
            self.check_data(splits)
            self.splits = splits

    def check_data(self, splits: Mapping[str, TensorSplit]) -> None:
        """Refuse data that cannot train or test: a single class, or values that are not finite numbers."""
        targets = self.data_definitions["targets"]
        if self.task in ("classification", "residue_classification") and int(targets.get("num_classes", 2)) < 2:
            raise ConfigError(f"the data hold a single class ({(targets.get('classes') or ['?'])[0]!r}): there is "
                              "nothing to tell apart", file=self.data_file(), key=self.labels_key(),
                              hint="A classification needs samples of at least two classes")
        for name, split in splits.items():
            for field, tensor in split.fields.items():
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    row = int((~torch.isfinite(tensor)).reshape(len(tensor), -1).any(dim=1).nonzero()[0])
                    raise ConfigError(f"the {field} of sample {row + 1} of the {name} split are not finite numbers "
                                      "(NaN or infinite)", file=self.data_file(), key="problem",
                                      hint="Remove or mend the samples with missing or infinite values")

    def phase_split(self, phase: str) -> TensorSplit:
        """The split a phase reads, refused when it does not exist or holds no samples."""
        self.setup()
        split = self.phases[phase]["split"]
        if split not in self.splits:
            raise ConfigError(f"{self.name} has no split '{split}'", key=f"{phase}.problem.split",
                              hint=did_you_mean(str(split), self.splits))
        if not len(self.splits[split]):
            sizes = ", ".join(f"{name} {len(part)}" for name, part in self.splits.items())
            raise ConfigError(f"the {phase} phase reads the split '{split}', which holds no samples ({sizes}): "
                              f"there is nothing to {PHASE_WORK[phase]}", file=self.data_file(), key=self.splits_key(),
                              hint="Give every split some samples, or use more data")
        return self.splits[split]

    def batches_processed(self) -> int:
        """The training batches of the current epoch the trainer has processed (restored from a checkpoint
        when it resumes), so that a resumed epoch's batches go on where they stopped."""
        trainer = self.trainer
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed) if trainer is not None else 0

    def positional_fields(self) -> list[str]:
        """The fields whose second dimension is the sequence position (`per_position` in their data definition):
        the ones a batch of variable-length sequences is trimmed to its longest in."""
        return [name for name, definition in self.data_definitions.items() if definition.get("per_position")]

    def planned_batches(self, phase: str, split: TensorSplit, shuffle: bool) -> PlannedBatches:
        """The batches of a phase whose `batching` is a mapping (problems/batching.py); under DDP this
        process's share, and for training resumable mid-epoch and reshuffled every epoch."""
        params, trainer = self.phases[phase], self.trainer
        training = phase == "train" and trainer is not None
        return PlannedBatches(split.fields, self.positional_fields(), Batching.from_params(params["batching"], params),
                              shuffle, rank=trainer.global_rank if trainer is not None else 0,
                              world=trainer.world_size if trainer is not None else 1,
                              processed=self.batches_processed if training else None,
                              epoch=(lambda: trainer.current_epoch) if training else None)

    def loader(self, phase: str) -> DataLoader | TensorBatches | PlannedBatches:
        split, params = self.phase_split(phase), self.phases[phase]
        shuffle = params["shuffle"] if params["shuffle"] is not None else phase == "train"
        if params.get("batching") is not None:
            return self.planned_batches(phase, split, bool(shuffle))
        refuse_dropped(phase, len(split), params)
        workers = int(params["num_workers"])
        trainer = self.trainer                   # set by Lightning while it fits, validates or tests
        if workers == 0 and (trainer is None or trainer.world_size == 1):
            return TensorBatches(split, int(params["batch_size"]), bool(shuffle), bool(params["drop_last"]),
                                 processed=self.batches_processed if phase == "train" else None)
        # worker processes, or DDP (whose sampler shares the split out between processes): a DataLoader
        return DataLoader(split, batch_size=int(params["batch_size"]), shuffle=bool(shuffle),
                          drop_last=bool(params["drop_last"]), num_workers=int(params["num_workers"]),
                          collate_fn=keep_batch, persistent_workers=int(params["num_workers"]) > 0)


class FileProblem(InMemoryProblem):
    """An in-memory problem read from one file, `path` (relative to the YAML file that names it)."""

    path_params = ("path",)

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(), "path": None}

    @staticmethod
    def constraints() -> dict:
        return {**InMemoryProblem.constraints(), "path": OptionalOf(Text())}

    def data_file(self) -> str | None:
        return self.params["path"]


def read_text(path: Path, key: str = "problem.path") -> str:
    """A data file's text, refused (with the line and column of the first bad byte) unless it is UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"the file cannot be read ({error.strerror or error})", file=str(path), key=key) from None
    try:
        return data.decode("utf-8-sig")          # a byte-order mark (spreadsheets write one) is not data
    except UnicodeDecodeError as error:       # error.object: the bytes after any byte-order mark
        read, at = bytes(error.object), error.start
        line, column = read.count(b"\n", 0, at) + 1, at - read.rfind(b"\n", 0, at)
        raise ConfigError(f"line {line}, column {column}: byte {read[at]:#04x} is not UTF-8 text",
                          file=str(path), key=key,
                          hint="Save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 OLD > NEW)") from None


def read_rows(path: Path, key: str = "problem.path", delimiter: str = ",") -> tuple[list[str], list[tuple[int, dict]]]:
    """A CSV or TSV table's columns and its rows, each with the line it ends on; a table the csv module
    cannot read (a field over its size limit, as an unclosed quote makes one) is refused with its line."""
    reader = csv.DictReader(io.StringIO(read_text(path, key), newline=""), delimiter=delimiter)
    rows = []
    try:
        columns = list(reader.fieldnames or [])
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as error:                # line_num counts the lines of the rows read whole
        raise ConfigError(f"line {reader.line_num + 1}: the row that starts here cannot be read ({error})",
                          file=str(path), key=key,
                          hint="Look for an unclosed quote (\") at or before this line: it runs one field on over "
                               "the lines after it") from None
    return columns, rows
