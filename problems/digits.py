"""Digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), split by the seed."""
from __future__ import annotations

import numpy as np
import torch

from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.problems.problem import InMemoryProblem


@register("problem")
class Digits(InMemoryProblem):
    """Classify 8x8 grey-level digit images; train/val/test split drawn from the seed."""

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(),
                "fractions": [0.7, 0.15, 0.15]}   # train, val, test shares of the 1,797 images

    def define_data(self) -> dict:
        return {"inputs": {"kind": "image", "shape": [1, 8, 8], "dtype": "float32"},
                "targets": {"shape": [], "dtype": "int64", "num_classes": 10,
                            "classes": [str(d) for d in range(10)]}}

    def load_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        from sklearn.datasets import load_digits

        fractions = self.params["fractions"]
        if (not isinstance(fractions, list) or len(fractions) != 3
                or not all(isinstance(f, (int, float)) and f > 0 for f in fractions)):
            raise ConfigError(f"fractions must be three positive numbers (train, val, test), not {fractions!r}",
                              key="problem.fractions")
        data = load_digits()
        images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
        labels = torch.tensor(data.target, dtype=torch.int64)
        order = np.random.default_rng(self.params["seed"]).permutation(len(labels))
        shares = np.array(fractions, dtype=float) / sum(fractions)
        ends = np.round(np.cumsum(shares) * len(labels)).astype(int)
        parts = np.split(order, ends[:2])
        return {name: {"inputs": images[torch.from_numpy(idx)], "targets": labels[torch.from_numpy(idx)]}
                for name, idx in zip(("train", "val", "test"), parts)}
