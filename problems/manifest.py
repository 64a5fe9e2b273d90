"""Manifest: a serotiny-style CSV that describes a data set, one row a sample, a column for the split,
and a loader per field (`inputs`, `targets`, ...) that turns rows into a tensor.

    problem:
      name: Manifest
      path: cells.csv
      loaders:
        inputs: {name: LoadColumns, startswith: feature_}
        targets: {name: LoadClass, column: label}
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pyrosys.configuration.constraints import Boolean, MappingOf, Text
from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.factory import instantiate, register, resolve
from pyrosys.problems.batching import Batching
from pyrosys.problems.problem import FileProblem, class_names, read_rows

SPLITS = ("train", "val", "test")


class Loader:
    """Turns the rows of a manifest into one tensor, and says what that tensor holds."""

    task: str | None = None    # the task a loader implies when it loads the targets

    def load(self, rows: Sequence[dict], manifest: Path) -> tuple[torch.Tensor, dict]:
        """(tensor with one entry per row, its data definition)."""
        raise TypeError(f"{type(self).__name__} must define load(rows, manifest)")


def _kind(shape: Sequence[int]) -> str:
    return {0: "vector", 1: "vector", 2: "sequence", 3: "image"}.get(len(shape), "tensor")


@register("loader")
class LoadColumns(Loader):
    """Numeric columns chosen by names, a prefix or a regular expression, as float features."""

    task = "regression"

    def __init__(self, columns: list | None = None, startswith: str | None = None, regex: str | None = None) -> None:
        if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
            raise ValueError(f"columns is a list of column names, not {columns!r}")
        if startswith is not None and not isinstance(startswith, str):
            raise ValueError(f"startswith is the start of column names, not {startswith!r}")
        try:
            re.compile(regex or "")
        except (re.error, TypeError) as error:
            raise ValueError(f"regex {regex!r} is not a regular expression ({error})") from None
        self.columns, self.startswith, self.regex = columns, startswith, regex

    def chosen(self, header: Sequence[str], manifest: Path) -> list[str]:
        if self.columns is not None:
            missing = [c for c in self.columns if c not in header]
            if missing:
                raise ConfigError(f"the manifest has no column {missing[0]!r} (columns: {', '.join(header)})",
                                  file=str(manifest), key="problem.loaders")
            return list(self.columns)
        chosen = [c for c in header if (self.startswith is not None and c.startswith(self.startswith))
                  or (self.regex is not None and re.search(self.regex, c))]
        if not chosen:
            raise ConfigError("no manifest column matches the loader (give columns, startswith or regex)",
                              file=str(manifest), key="problem.loaders")
        return chosen

    def load(self, rows: Sequence[dict], manifest: Path) -> tuple[torch.Tensor, dict]:
        columns = self.chosen(list(rows[0]), manifest)
        values = np.zeros((len(rows), len(columns)), dtype=np.float32)
        for i, row in enumerate(rows):
            for j, column in enumerate(columns):
                try:
                    values[i, j] = float(row[column])
                except (TypeError, ValueError):
                    values[i, j] = math.nan
                if not math.isfinite(values[i, j]):
                    raise ConfigError(f"line {i + 2}, column '{column}': {row[column]!r} is not a finite number",
                                      file=str(manifest), key="problem.loaders",
                                      hint="Mend or leave out rows with missing or infinite values")
        tensor = torch.from_numpy(values)
        shape = [len(columns)]
        if len(columns) == 1 and self.columns is not None:
            tensor, shape = tensor[:, 0], []
        return tensor, {"kind": "vector", "shape": shape, "dtype": "float32", "columns": columns}


@register("loader")
class LoadClass(Loader):
    """One column of class labels, numbered in sorted order (or the order of `classes`)."""

    task = "classification"

    def __init__(self, column: str, classes: list | None = None) -> None:
        self.column, self.classes = column, classes

    def load(self, rows: Sequence[dict], manifest: Path) -> tuple[torch.Tensor, dict]:
        if self.column not in rows[0]:
            raise ConfigError(f"the manifest has no column {self.column!r}", file=str(manifest),
                              key="problem.loaders")
        labels = [row[self.column] for row in rows]
        classes = class_names(labels, self.classes)
        index = {label: i for i, label in enumerate(classes)}
        for i, label in enumerate(labels):
            if label not in index:
                raise ConfigError(f"line {i + 2}, column '{self.column}': {label!r} is not one of the classes",
                                  file=str(manifest), key="problem.loaders")
        return (torch.tensor([index[label] for label in labels]),
                {"shape": [], "dtype": "int64", "num_classes": len(classes), "classes": classes})


class LoadFile(Loader):
    """One file per row, named (relative to the manifest) in a path column; all of one shape."""

    def __init__(self, column: str) -> None:
        self.column = column

    def read(self, path: Path) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define read(path)")

    def check_column(self, rows: Sequence[dict], manifest: Path) -> None:
        """Refuse a manifest without this loader's path column."""
        if self.column not in rows[0]:
            raise ConfigError(f"the manifest has no column {self.column!r}", file=str(manifest),
                              key="problem.loaders")

    def path_of(self, line: int, row: dict, manifest: Path) -> Path:
        """The file row `line` (0 for the first row) names, refused where it does not exist."""
        path = manifest.parent / row[self.column]
        if not path.is_file():
            raise ConfigError(f"line {line + 2}, column '{self.column}': the file {row[self.column]!r} does not "
                              f"exist (looked for {path})", file=str(manifest), key="problem.loaders")
        return path

    def read_row(self, line: int, row: dict, manifest: Path, shape: Sequence[int] | None = None) -> torch.Tensor:
        """Row `line`'s file as a tensor, refused (naming file and line) when unreadable, not finite, or not of
        `shape` (the first file's)."""
        path = self.path_of(line, row, manifest)
        try:
            tensor = self.read(path)
        except (OSError, ValueError, RuntimeError, EOFError) as error:
            raise ConfigError(f"line {line + 2}, column '{self.column}': {path.name} cannot be read ({error})",
                              file=str(manifest), key="problem.loaders") from None
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ConfigError(f"line {line + 2}, column '{self.column}': {path.name} holds values that are not finite "
                              "numbers (NaN or infinite)", file=str(manifest), key="problem.loaders")
        if shape is not None and list(tensor.shape) != list(shape):
            raise ConfigError(f"line {line + 2}: {path.name} has shape {list(tensor.shape)}, the first file "
                              f"{list(shape)}", file=str(manifest), key="problem.loaders")
        return tensor

    def define(self, rows: Sequence[dict], manifest: Path) -> dict:
        """The data definition read from the first row's file (every row's file checked to exist), as load's."""
        self.check_column(rows, manifest)
        for line, row in enumerate(rows):
            self.path_of(line, row, manifest)
        shape = list(self.read_row(0, rows[0], manifest).shape)
        return {"kind": _kind(shape), "shape": shape, "dtype": "float32"}

    def load(self, rows: Sequence[dict], manifest: Path) -> tuple[torch.Tensor, dict]:
        self.check_column(rows, manifest)
        tensors: list[torch.Tensor] = []
        for line, row in enumerate(rows):
            tensors.append(self.read_row(line, row, manifest, tensors[0].shape if tensors else None))
        tensor = torch.stack(tensors).float()
        shape = list(tensor.shape[1:])
        return tensor, {"kind": _kind(shape), "shape": shape, "dtype": "float32"}


@register("loader")
class LoadNumpy(LoadFile):
    """An .npy array per row (loaded without pickles)."""

    def read(self, path: Path) -> torch.Tensor:
        return torch.from_numpy(np.load(path, allow_pickle=False))


@register("loader")
class LoadTensor(LoadFile):
    """A tensor saved with torch.save per row (loaded weights-only)."""

    def read(self, path: Path) -> torch.Tensor:
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"holds a {type(value).__name__}, not a tensor")
        return value


@register("problem")
class Manifest(FileProblem):
    """Any data set described by a CSV manifest with a split column and a loader per field."""

    @staticmethod
    def get_params() -> dict:
        return {**FileProblem.get_params(),     # path: the manifest CSV
                "split_column": "split",  # values train, val, test
                "loaders": {},            # field -> {name: LoadColumns | LoadClass | LoadNumpy | LoadTensor, ...}
                "in_memory": True}        # false: per-sample files (LoadNumpy, LoadTensor) read with their batch
                                          # (docs/proteins.md, "Large files")

    @staticmethod
    def constraints() -> dict:
        return {**FileProblem.constraints(), "split_column": Text(), "loaders": MappingOf(), "in_memory": Boolean()}

    def splits_key(self) -> str:
        return "problem.split_column"

    def labels_key(self) -> str:
        return "problem.loaders.targets"

    @property
    def task(self) -> str:  # type: ignore[override]
        """Classification when the targets' loader reads class labels, regression otherwise."""
        spec = self.params["loaders"].get("targets") if isinstance(self.params["loaders"], Mapping) else None
        loader_cls = resolve(spec, "loader", key="problem.loaders.targets") if spec else None
        return getattr(loader_cls, "task", None) or "regression"

    def checked_rows(self) -> tuple[Path, list[dict], Mapping]:
        """The manifest, its rows (split values checked) and the loaders' specs."""
        params = self.params
        if not params["path"]:
            raise ConfigError("no manifest is named", key="problem.path", hint="Set problem.path to a CSV manifest")
        manifest = Path(params["path"])
        if not manifest.is_file():
            raise ConfigError("the manifest does not exist", file=str(manifest), key="problem.path")
        loaders = params["loaders"]
        if not isinstance(loaders, Mapping) or "inputs" not in loaders or "targets" not in loaders:
            raise ConfigError("loaders must name at least an 'inputs' and a 'targets' loader", file=str(manifest),
                              key="problem.loaders", hint="e.g. loaders: {inputs: {name: LoadColumns, startswith: "
                                                          "feature_}, targets: {name: LoadClass, column: label}}")
        rows = [row for _, row in read_rows(manifest)[1]]
        if not rows:
            raise ConfigError("the manifest holds no rows", file=str(manifest), key="problem.path")
        split_column = params["split_column"]
        if split_column not in rows[0]:
            raise ConfigError(f"the manifest has no split column {split_column!r}", file=str(manifest),
                              key="problem.split_column")
        for i, row in enumerate(rows):
            if row[split_column] not in SPLITS:
                raise ConfigError(f"line {i + 2}: split value {row[split_column]!r} is not train, val or test",
                                  file=str(manifest), key="problem.split_column")
        return manifest, rows, loaders

    def setup(self, stage: str | None = None) -> None:
        if self.params["in_memory"]:
            return super().setup(stage)
        if getattr(self, "splits", None) is None:
            self.splits, self.file_definitions = open_files(*self.checked_rows(), self.params["split_column"])
            self.check_data({})

    def define_data(self) -> dict:
        if self.params["in_memory"]:
            return super().define_data()
        self.setup()
        return {field: dict(definition) for field, definition in self.file_definitions.items()}

    def loader(self, phase: str) -> Any:
        if self.params["in_memory"]:
            return super().loader(phase)
        return files_loader(self, phase)

    def prepare(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """Every field loaded and cut into the splits the manifest names."""
        manifest, rows, loaders = self.checked_rows()
        split_column = self.params["split_column"]
        fields, definitions = {}, {}
        for field, spec in loaders.items():
            loader = instantiate(spec, "loader", file=str(manifest), key=f"problem.loaders.{field}")
            fields[field], definitions[field] = loader.load(rows, manifest)
        splits = {}
        for name in SPLITS:
            index = torch.tensor([i for i, row in enumerate(rows) if row[split_column] == name], dtype=torch.long)
            splits[name] = {field: tensor[index] for field, tensor in fields.items()}
        return splits, definitions


class FileSplit(Dataset):
    """One split of a manifest read with `in_memory: false`: the columns' and classes' tensors held, each row's
    file (LoadFile fields) read when its batch is read."""

    def __init__(self, rows: Sequence[dict], lines: np.ndarray, manifest: Path, held: dict[str, torch.Tensor],
                 files: dict[str, tuple[LoadFile, list[int]]], order: Sequence[str]) -> None:
        self.rows, self.lines, self.manifest = [rows[line] for line in lines.tolist()], lines, manifest
        self.held, self.files, self.order = held, files, list(order)
        self.lengths = np.ones(len(lines), dtype=np.int64)    # a Batching plan's lengths: rows, not tokens

    def __len__(self) -> int:
        return len(self.lines)

    def __getitems__(self, positions: Sequence[int]) -> DataDict:
        """The samples at `positions` of the split as one batch (its files read and their shapes checked)."""
        index = torch.as_tensor(list(positions), dtype=torch.long)
        batch = {}
        for field in self.order:
            if field in self.held:
                batch[field] = self.held[field][index]
                continue
            loader, shape = self.files[field]
            batch[field] = torch.stack([loader.read_row(int(self.lines[p]), self.rows[p], self.manifest, shape).float()
                                        for p in index.tolist()])
        return DataDict(batch)

    def __getitem__(self, position: int) -> DataDict:
        batch = self.__getitems__([position])
        return DataDict({name: values[0] for name, values in batch.items()})


def open_files(manifest: Path, rows: list[dict], loaders: Mapping,
               split_column: str) -> tuple[dict[str, FileSplit], dict]:
    """The splits of a manifest whose file fields stay on disk, and the data definitions (as in memory's)."""
    held, files, definitions = {}, {}, {}
    for field, spec in loaders.items():
        loader = instantiate(spec, "loader", file=str(manifest), key=f"problem.loaders.{field}")
        if isinstance(loader, LoadFile):
            definitions[field] = loader.define(rows, manifest)
            files[field] = (loader, definitions[field]["shape"])
        else:
            held[field], definitions[field] = loader.load(rows, manifest)
    splits = {}
    for name in SPLITS:
        lines = np.array([i for i, row in enumerate(rows) if row[split_column] == name], dtype=np.int64)
        index = torch.from_numpy(lines)
        splits[name] = FileSplit(rows, lines, manifest, {field: tensor[index] for field, tensor in held.items()},
                                 files, list(loaders))
    return splits, definitions


WORKER_ERROR = re.compile(r"ConfigError: Configuration error in (.*?), at key '([^']*)': (.*?)\.?\s*$", re.S)


def worker_error(error: ConfigError) -> ConfigError:
    """A ConfigError a DataLoader worker raised (which torch raises again as one long message holding the worker's
    traceback) as the worker's own: its file, key and message."""
    found = WORKER_ERROR.search(str(error.message)) if error.file is None else None
    return ConfigError(found[3], file=found[1], key=found[2]) if found else error


def files_loader(problem: Manifest, phase: str) -> Any:
    """A phase's batches of a manifest read from disk: `batch_size` rows (in a seeded order where shuffled), read
    by a DataLoader with `num_workers`; under DDP this process's share, for training resumable mid-epoch."""
    from pyrosys.problems.protein_streaming import StreamedBatches

    class FileBatches(StreamedBatches):
        """StreamedBatches whose workers' ConfigErrors come back as the worker raised them."""

        def __iter__(self) -> Iterator[DataDict]:
            try:
                yield from super().__iter__()
            except ConfigError as error:
                raise worker_error(error) from None

    split, params, trainer = problem.phase_split(phase), problem.phases[phase], problem.trainer
    shuffle = params["shuffle"] if params["shuffle"] is not None else phase == "train"
    training = phase == "train" and trainer is not None
    return FileBatches(split, Batching.from_params({"by": "order"}, params), bool(shuffle),
                           rank=trainer.global_rank if trainer is not None else 0,
                           world=trainer.world_size if trainer is not None else 1,
                           processed=problem.batches_processed if training else None,
                           epoch=(lambda: trainer.current_epoch) if training else None,
                           workers=int(params["num_workers"]))
