"""DataDict: a batch as a dict of named fields (inputs, targets, masks...) read by attribute or key."""
from __future__ import annotations

from typing import Any


class DataDict(dict):
    """A dict whose keys are the names in a problem's `data_definitions`; `batch.inputs` works too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this DataDict has no field '{name}'; fields: {sorted(self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __reduce__(self):  # keep the subclass through pickling (DataLoader workers)
        return (DataDict, (dict(self),))

    def to(self, device: Any) -> DataDict:
        """A copy with every tensor field moved to `device`."""
        return DataDict({k: v.to(device) if hasattr(v, "to") else v for k, v in self.items()})


def batch_size(batch: Any) -> int:
    """The number of samples in a batch: the length of its first field."""
    return len(next(iter(batch.values())))
