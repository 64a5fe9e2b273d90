"""A PyroSys model bundle as an MLflow pyfunc model (MLflow's "models from code"): MLflow copies this file
beside the bundle, and `mlflow models serve` (or `mlflow.pyfunc.load_model`) runs it to answer predictions.

Rows in are the model's input fields as it was trained on them (the bundle's data definitions say their
shape), flattened one sample a row (a DataFrame with `dataframe_split`, or an array with `inputs`); rows
out are `Model.predict`'s outputs, flattened one sample a row (logits for a classifier). Token inputs
(amino-acid ids) are read as integers, with their padding masks computed as training computed them.
"""
from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

BUNDLE = "bundle"      # the name of the bundle folder among the MLflow model's artifacts


class BundleModel(PythonModel):
    """Loads the bundle with `Model.load` (torch is imported only then) and predicts with it."""

    def load_context(self, context: Any) -> None:
        """Rebuild the model from the bundle artifact, in evaluation mode."""
        from pyrosys.models.model import Model

        self.model = Model.load(context.artifacts[BUNDLE])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> Any:
        """One row of outputs per row of inputs, as numpy. (A DataFrame hint is one MLflow infers no schema from:
        requests in both of its formats reach this method as they come, an array for `inputs`.)"""
        import numpy as np
        import torch

        rows = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input)
        inputs = self.model.data_definitions["inputs"]
        shape = [len(rows), *(d if d is not None else -1 for d in inputs.get("shape") or [-1])]
        if inputs.get("kind") == "tokens":
            ids = torch.from_numpy(rows.astype(np.int64)).reshape(shape)
            outputs = self.model.predict(ids, masks=ids != 0)
        else:
            outputs = self.model.predict(torch.from_numpy(rows.astype(np.float32)).reshape(shape))
        return outputs.reshape(len(rows), -1).numpy()


mlflow.models.set_model(BundleModel())
