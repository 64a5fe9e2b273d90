"""Problems from scikit-learn's bundled data sets: Digits images and tabular BreastCancer / Diabetes.

Splits are drawn from the seed; tabular features (and regression targets) are standardised with
statistics fitted on the training split only, and those statistics go into the data definitions,
so that a saved model can be fed raw data later. Each data set's loader is imported inside the
problem that reads it: naming one of these problems does not import all of scikit-learn's data sets.
"""
from __future__ import annotations


import numpy as np
import torch

from pyrosys.configuration.constraints import Boolean, Integer
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.problems.problem import FRACTIONS, InMemoryProblem


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
    """A bundled scikit-learn data set split by the seed; subclasses name the loader and describe the data."""

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        """Inputs, targets and extra definitions (feature names, classes) of the whole data set."""
        raise TypeError(f"{type(self).__name__} must define load_arrays()")

    def describe(self, inputs: np.ndarray, targets: np.ndarray, extra: dict,
                 train: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """Inputs and targets as the model sees them (statistics from the `train` rows only), and their
        data definitions."""
        raise TypeError(f"{type(self).__name__} must define describe()")

    def prepare(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        inputs, targets, extra = self.load_arrays()
        parts = split_indices(len(targets), self.params["fractions"], self.params["seed"])
        inputs, targets, definitions = self.describe(inputs, targets, extra, parts[0])
        inputs = torch.tensor(inputs, dtype=torch.float32)
        targets = torch.tensor(targets, dtype=torch.int64 if self.task == "classification" else torch.float32)
        splits = {name: {"inputs": inputs[torch.from_numpy(idx)], "targets": targets[torch.from_numpy(idx)]}
                  for name, idx in zip(("train", "val", "test"), parts)}
        return splits, definitions


@register("problem")
class Digits(ScikitLearnProblem):
    """Classify 8x8 grey-level digit images (1,797 images, 10 classes); pixels scaled to [0, 1]."""

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(), "fractions": [0.7, 0.15, 0.15]}

    @staticmethod
    def constraints() -> dict:
        return {**InMemoryProblem.constraints(), "fractions": FRACTIONS}

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import load_digits

        data = load_digits()
        return data.images[:, None, :, :], data.target, {}

    def describe(self, inputs: np.ndarray, targets: np.ndarray, extra: dict,
                 train: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        return inputs / 16.0, targets, {
            "inputs": {"kind": "image", "shape": [1, 8, 8], "dtype": "float32", "scale": 16.0},
            "targets": {"shape": [], "dtype": "int64", "num_classes": 10, "classes": [str(d) for d in range(10)]}}


class TabularProblem(ScikitLearnProblem):
    """A table of numeric features; features standardised with training-split statistics."""

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(), "fractions": [0.7, 0.15, 0.15], "standardize": True}

    @staticmethod
    def constraints() -> dict:
        return {**InMemoryProblem.constraints(), "fractions": FRACTIONS, "standardize": Boolean()}

    def describe(self, inputs: np.ndarray, targets: np.ndarray, extra: dict,
                 train: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        inputs_definition = {"kind": "vector", "shape": [inputs.shape[1]], "dtype": "float32",
                             "feature_names": extra["feature_names"]}
        targets_definition = {key: value for key, value in extra.items() if key != "feature_names"}
        if self.params["standardize"]:
            inputs, mean, std = standardise(inputs, train)
            inputs_definition["standardize"] = {"mean": mean, "std": std}
            if self.task == "regression":
                targets, mean, std = standardise(targets, train)
                targets_definition["standardize"] = {"mean": mean, "std": std}
        return inputs, targets, {"inputs": inputs_definition, "targets": targets_definition}


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



@register("problem")
class SyntheticClassification(TabularProblem):
    """Generated classes in a feature space (scikit-learn's make_classification): any size, offline;
    for benchmarks and quick checks of a model's plumbing."""

    @staticmethod
    def get_params() -> dict:
        return {**TabularProblem.get_params(), "samples": 20000, "features": 64, "informative": 16, "classes": 10}

    @staticmethod
    def constraints() -> dict:
        return {**TabularProblem.constraints(), "samples": Integer(low=2), "features": Integer(low=2),
                "informative": Integer(low=2), "classes": Integer(low=2)}

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import make_classification

        params = self.params
        if params["informative"] > params["features"]:
            raise ConfigError(f"informative ({params['informative']}) cannot be more than features "
                              f"({params['features']})", key="problem.informative")
        if params["classes"] > 2 ** params["informative"]:
            raise ConfigError(f"{params['classes']} classes need more than {params['informative']} informative "
                              "features (at most 2 ** informative classes)", key="problem.classes")
        inputs, targets = make_classification(
            n_samples=params["samples"], n_features=params["features"], n_informative=params["informative"],
            n_redundant=0, n_classes=params["classes"], n_clusters_per_class=1, random_state=params["seed"])
        return inputs.astype(np.float32), targets, {
            "feature_names": [f"x{i}" for i in range(params["features"])], "shape": [], "dtype": "int64",
            "num_classes": params["classes"], "classes": [str(c) for c in range(params["classes"])]}
