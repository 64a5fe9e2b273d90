"""pyrosys-init: start a PyroSys project, a package of the lab's own models, problems, callbacks and
configuration groups, that installs and trains out of the box.

    pyrosys-init my_lab [--dest DIR]
    pip install -e my_lab
    cd my_lab && pyrosys-trainer --c my_lab/config/train.yaml model=mlp data=digits
"""
from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.workers.worker import Worker

# the project's files; __name__ is the package name, __Camel__ its CamelCase form
TEMPLATES = {
    ".pyrosys-project": "package = __name__\n",
    ".gitignore": """\
# What runs and installs write: git tracks the project's code and configuration only, so that the
# commit a run's description.json records is the whole story (and its dirty flag means an edited file)
experiments/
mlruns/
mlflow.db
predictions.csv
*.egg-info/
__pycache__/
.pytest_cache/
.venv/
venv/
""",
    "pyproject.toml": """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "__name__"
version = "0.1.0"
description = "__Camel__: models and problems of our lab, trained with PyroSys"
requires-python = ">=3.10"
dependencies = ["pyrosys"]

# our components by name, so that PyroSys knows them without importing them (add a line for each new one)
[project.entry-points."pyrosys.model"]
__Camel__Net = "__name__.models.example:__Camel__Net"

[project.entry-points."pyrosys.problem"]
__Camel__Blobs = "__name__.problems.example:__Camel__Blobs"

[tool.setuptools.packages.find]
include = ["__name__*"]

[tool.setuptools.package-data]
"*" = ["config/*.yaml", "config/**/*.yaml"]
""",
    "README.md": """\
# __name__

A PyroSys project: our models (`__name__/models/`), problems (`__name__/problems/`), callbacks
(`__name__/callbacks/`) and configuration groups (`__name__/config/`).

```bash
pip install -e .                                                # registers our components with PyroSys
git init && git add -A && git commit -m "__name__ as pyrosys-init wrote it"   # runs record the commit
pyrosys-trainer --c __name__/config/train.yaml                  # the default choices of every group
pyrosys-trainer --c __name__/config/train.yaml model=mlp data=digits training.optimizer.lr=0.01
pyrosys-trainer --list model                                    # the choices of a group
pyrosys-grid-trainer --c grid.yaml                              # model x data
pytest tests
```

Each run's `description.json` records the git commit (and a dirty flag) of the configuration it was
started from: commit before you train. `.gitignore` keeps what runs write (`experiments/`,
`predictions.csv`) and what installs write out of git.

Add a choice to a group by adding a YAML file to its folder; add a model or a problem by writing a
class and naming it under `[project.entry-points."pyrosys.model"]` (or `"pyrosys.problem"`) in
`pyproject.toml`, then `pip install -e .` again.
""",
    "grid.yaml": """\
# Every model choice on every data choice (2 x 2 runs): pyrosys-grid-trainer --c grid.yaml
grid_tasks:
  - default_configs: __name__/config/train.yaml
grid_search:
  model: [example, mlp]
  data: [example, digits]
""",
    "tests/test___name__.py": """\
\"\"\"The project trains out of the box: its default configuration, one short run.\"\"\"
from pathlib import Path

from pyrosys.workers import trainer

CONFIG = Path(__file__).resolve().parents[1] / "__name__" / "config" / "train.yaml"


def test_the_default_configuration_trains(tmp_path):
    status = trainer.main(["--c", str(CONFIG), "--outdir", str(tmp_path), "--run-name", "check",
                           "--set", "training.terminal_conditions.epoch_limit=1", "logging.mlflow=null"])
    assert status == 0 and (tmp_path / "check" / "models" / "best.ckpt").is_file()
""",
    "__name__/__init__.py": "\"\"\"__Camel__: our PyroSys components.\"\"\"\n",
    "__name__/models/__init__.py": "from __name__.models.example import __Camel__Net  # noqa: F401\n",
    "__name__/models/example.py": """\
\"\"\"__Camel__Net: a small network for any problem with vector or image inputs and class targets.\"\"\"
from __future__ import annotations

import math

from torch import nn

from pyrosys.factory import register
from pyrosys.models.model import Model


@register("model")
class __Camel__Net(Model):
    \"\"\"Flatten, one hidden layer, class logits.\"\"\"

    input_kinds = ("vector", "image")
    tasks = ("classification",)

    @staticmethod
    def get_params() -> dict:
        return {"hidden": 32, "dropout": 0.0}

    @staticmethod
    def build(params: dict, data_definitions: dict) -> dict[str, nn.Module]:
        inputs = math.prod(data_definitions["inputs"]["shape"])
        classes = data_definitions["targets"]["num_classes"]
        return {"body": nn.Sequential(nn.Flatten(), nn.Linear(inputs, params["hidden"]), nn.ReLU(),
                                      nn.Dropout(params["dropout"]), nn.Linear(params["hidden"], classes))}

    def forward(self, inputs):
        return self.models["body"](inputs)
""",
    "__name__/problems/__init__.py": "from __name__.problems.example import __Camel__Blobs  # noqa: F401\n",
    "__name__/problems/example.py": """\
\"\"\"__Camel__Blobs: points drawn around class centres, generated from the seed (no download).\"\"\"
from __future__ import annotations

import numpy as np

from pyrosys.factory import register
from pyrosys.problems.scikit_learn import TabularProblem


@register("problem")
class __Camel__Blobs(TabularProblem):
    \"\"\"Classify points by the centre they were drawn around.\"\"\"

    @staticmethod
    def get_params() -> dict:
        return {**TabularProblem.get_params(), "samples": 600, "features": 4, "classes": 3, "spread": 1.5}

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import make_blobs

        p = self.params
        inputs, targets = make_blobs(n_samples=p["samples"], n_features=p["features"], centers=p["classes"],
                                     cluster_std=p["spread"], random_state=0)
        return inputs, targets, {"feature_names": [f"x{i}" for i in range(p["features"])], "shape": [],
                                 "dtype": "int64", "num_classes": p["classes"],
                                 "classes": [str(c) for c in range(p["classes"])]}
""",
    "__name__/callbacks/__init__.py": "from __name__.callbacks.example import EpochSummary  # noqa: F401\n",
    "__name__/callbacks/example.py": """\
\"\"\"EpochSummary: one line per validation with its loss (named in config/trainer/callbacks/).\"\"\"
import logging

import pytorch_lightning as pl

log = logging.getLogger("pyrosys.__name__")


class EpochSummary(pl.Callback):
    \"\"\"Log the validation loss of each validation as it ends.\"\"\"

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: Lightning calls the callbacks' epoch-end hook
        # before the model's, where the model logs this validation's val_loss
        loss = trainer.callback_metrics.get("val_loss")
        if loss is not None and not trainer.sanity_checking:
            log.info("epoch %d, episode %d: val_loss %.6f", trainer.current_epoch + 1, trainer.global_step, float(loss))
""",
    "__name__/config/train.yaml": """\
# Training: one choice per group (override any on the command line: model=mlp data=digits).
groups:
  data: example
  model: example
  trainer: default
  trainer/callbacks: none
  mlflow: local
""",
    "__name__/config/test.yaml": """\
# Testing, merged over a checkpoint's own configuration: pyrosys-tester --m <run>/models/best.ckpt --c this file
testing:
  problem: {batch_size: 256}
""",
    "__name__/config/predict.yaml": """\
# Prediction: pyrosys-predictor --c this file (flags on the command line win); paths are relative to
# this file: the bundle of the run `experiments/first` and the project's samples.csv
predict:
  model: ../../experiments/first/models/best
  input: ../../samples.csv
  output: ../../predictions.csv
""",
    "__name__/config/data/example.yaml": "problem: {name: __Camel__Blobs, batch_size: 32}\n",
    "__name__/config/data/digits.yaml": "problem: {name: Digits, batch_size: 32}\n",
    "__name__/config/model/example.yaml": "model: {name: __Camel__Net, hidden: 32}\n",
    "__name__/config/model/mlp.yaml": "model: {name: MLP, hidden_sizes: [64]}\n",
    "__name__/config/trainer/default.yaml": """\
training:
  seed: 1
  optimizer: {name: Adam, lr: 1.0e-2}
  terminal_conditions: {epoch_limit: 5}
""",
    "__name__/config/trainer/callbacks/none.yaml": "training: {callbacks: []}\n",
    "__name__/config/trainer/callbacks/summary.yaml":
        "training: {callbacks: [{_target_: __name__.callbacks.example.EpochSummary}]}\n",
    "__name__/config/mlflow/local.yaml": "logging: {mlflow: {tracking_uri: null}}     # sqlite in the output folder\n",
    "__name__/config/mlflow/off.yaml": "logging: {mlflow: null}\n",
}


def check_name(name: str) -> str:
    """A project name is a Python package name: lower case letters, digits and underscores."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name) or name in ("pyrosys", "test", "tests"):
        raise ConfigError(f"'{name}' cannot name a project: it becomes a Python package", file="the command line",
                          key="NAME", hint="Use lower case letters, digits and underscores, starting with a letter "
                                           "(e.g. my_lab)")
    return name


def create(name: str, destination: Path) -> Path:
    """Write the project `destination/name`; refuse a folder that exists."""
    root = destination / check_name(name)
    if root.exists():
        raise ConfigError("the folder exists already", file=str(root), key="NAME",
                          hint="Choose another name, or --dest another folder")
    camel = "".join(part.capitalize() for part in name.split("_") if part)
    for template, text in TEMPLATES.items():
        path = root / template.replace("__name__", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("__name__", name).replace("__Camel__", camel), encoding="utf-8")
    # a few raw inputs of the example problem, for the predictor
    rows = ["x0,x1,x2,x3", "-6.9,-7.3,9.6,2.1", "5.0,-9.5,-7.1,4.2", "-2.8,9.0,4.6,1.9"]
    (root / "samples.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@register("worker", name="init")
class Init(Worker):
    """Create a PyroSys project: a package for your models, problems, callbacks and configuration groups."""

    prog = "pyrosys-init"

    def run(self, args: argparse.Namespace) -> int:
        """Write the project and say what to do next."""
        root = create(args.name, Path(args.dest))
        print(f"[pyrosys] project {args.name} in {shown(root)}")
        print(f"[pyrosys] next: pip install -e {shown(root)}  then, in {shown(root)}: "
              f"pyrosys-trainer --c {args.name}/config/train.yaml")
        print("[pyrosys] keep it in git (git init && git add -A && git commit -m start): every run's "
              "description.json then records the commit of its configuration")
        return 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """NAME and --dest."""
        parser.add_argument("name", metavar="NAME", help="the project's package name, e.g. my_lab")
        parser.add_argument("--dest", metavar="DIR", default=".", help="where the project folder goes (default: here)")


main = Init.main

if __name__ == "__main__":
    sys.exit(main())
