"""Problems from scikit-learn's bundled data sets: Digits images and tabular BreastCancer / Diabetes.

Splits are drawn from the seed; tabular features (and regression targets) are standardised with
statistics fitted on the training split only, and those statistics go into the data definitions,
so that a saved model can be fed raw data later.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.problems.problem import InMemoryProblem


def split_indices(count: int, fractions: list, seed: int | None, key: str = "problem.fractions") -> list[np.ndarray]:
    """Indices of the train, val and test splits: a seeded permutation cut by the fractions."""
    if (not isinstance(fractions, list) or len(fractions) != 3
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in fractions)):
        raise ConfigError(f"fractions must be three positive numbers (train, val, test), not {fractions!r}", key=key)
    order = np.random.default_rng(seed).permutation(count)
    ends = np.round(np.cumsum(np.array(fractions, dtype=float) / sum(fractions)) * count).astype(int)
    return np.split(order, ends[:2])


def standardise(values: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, list, list]:
    """(values - mean) / std with mean and std of the training rows; constant columns keep std 1."""
    mean = values[train].mean(axis=0)
    std = values[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (values - mean) / std, np.atleast_1d(mean).tolist(), np.atleast_1d(std).tolist()


class ScikitLearnProblem(InMemoryProblem):
    """A bundled scikit-learn data set split by the seed; subclasses name the loader and the task."""

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        """Inputs, targets and extra definitions (feature names, classes) of the whole data set."""
        raise TypeError(f"{type(self).__name__} must define load_arrays()")

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        inputs, targets, _ = self.prepared()
        parts = split_indices(len(targets), self.params["fractions"], self.params["seed"])
        return {name: {"inputs": inputs[torch.from_numpy(idx)], "targets": targets[torch.from_numpy(idx)]}
                for name, idx in zip(("train", "val", "test"), parts)}

    def prepared(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Inputs and targets as tensors, standardised where the problem says so, and their definitions."""
        if getattr(self, "_prepared", None) is None:
            self._prepared = self.prepare_arrays()
        return self._prepared

    def prepare_arrays(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        inputs, targets, extra = self.load_arrays()
        return (torch.tensor(inputs, dtype=torch.float32),
                torch.tensor(targets, dtype=torch.int64 if self.task == "classification" else torch.float32), extra)


@register("problem")
class Digits(ScikitLearnProblem):
    """Classify 8x8 grey-level digit images (1,797 images, 10 classes); pixels scaled to [0, 1]."""

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(), "fractions": [0.7, 0.15, 0.15]}

    def define_data(self) -> dict:
        return {"inputs": {"kind": "image", "shape": [1, 8, 8], "dtype": "float32", "scale": 16.0},
                "targets": {"shape": [], "dtype": "int64", "num_classes": 10,
                            "classes": [str(d) for d in range(10)]}}

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import load_digits

        data = load_digits()
        return (data.images / 16.0)[:, None, :, :], data.target, {}


class TabularProblem(ScikitLearnProblem):
    """A table of numeric features; features standardised with training-split statistics."""

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(), "fractions": [0.7, 0.15, 0.15], "standardize": True}

    def prepare_arrays(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        inputs, targets, extra = self.load_arrays()
        train = split_indices(len(targets), self.params["fractions"], self.params["seed"])[0]
        inputs_definition = {"kind": "vector", "shape": [inputs.shape[1]], "dtype": "float32",
                             "feature_names": extra["feature_names"]}
        targets_definition = {key: value for key, value in extra.items() if key != "feature_names"}
        if self.params["standardize"]:
            inputs, mean, std = standardise(inputs, train)
            inputs_definition["standardize"] = {"mean": mean, "std": std}
            if self.task == "regression":
                targets, mean, std = standardise(targets, train)
                targets_definition["standardize"] = {"mean": mean, "std": std}
        self._definitions = {"inputs": inputs_definition, "targets": targets_definition}
        dtype = torch.int64 if self.task == "classification" else torch.float32
        return torch.tensor(inputs, dtype=torch.float32), torch.tensor(targets, dtype=dtype), extra

    def define_data(self) -> dict:
        self.prepared()
        return {field: dict(definition) for field, definition in self._definitions.items()}


@register("problem")
class BreastCancer(TabularProblem):
    """Wisconsin breast cancer: 569 tumours, 30 features, malignant or benign."""

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        return data.data, data.target, {"feature_names": list(map(str, data.feature_names)), "shape": [],
                                        "dtype": "int64", "num_classes": 2,
                                        "classes": list(map(str, data.target_names))}


@register("problem")
class Diabetes(TabularProblem):
    """Diabetes progression: 442 patients, 10 features, a disease progression score a year later."""

    task = "regression"

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import load_diabetes

        data = load_diabetes(scaled=False)
        return data.data, data.target, {"feature_names": list(map(str, data.feature_names)), "shape": [],
                                        "dtype": "float32"}

