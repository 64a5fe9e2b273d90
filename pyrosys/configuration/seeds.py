"""Seeds: draw one when the configuration asks for a random seed (-1 or null), and apply it.

Drawing happens while a configuration resolves, which stays free of torch; NumPy and torch are
imported inside `apply_seeds`, when a run is built."""
from __future__ import annotations

import secrets


def resolve_seed(value: int | None) -> int:
    """The seed itself, or a freshly drawn one for -1 / None (so every run can be replayed)."""
    if value is None or value == -1:
        return secrets.randbelow(2**31 - 1)
    return int(value)


def apply_seeds(seed_torch: int, seed_numpy: int) -> None:
    """Seed Python, NumPy and torch (MI-Prometheus keeps separate torch and NumPy seeds)."""
    import random

    import numpy as np
    import torch

    random.seed(seed_torch)
    torch.manual_seed(seed_torch)
    np.random.seed(seed_numpy)
