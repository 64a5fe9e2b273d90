"""pyrosys.problems.manifest: a CSV manifest with a split column and a loader per field."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.manifest import Manifest

TABLE = "id,split,label,feature_a,feature_b,image\n" + "".join(
    f"s{i},{['train', 'val', 'test'][i % 3]},{'yes' if i % 2 else 'no'},{i},{i * 2},img{i}.npy\n" for i in range(9))


def manifest(path, **loaders):
    loaders = loaders or {"inputs": {"name": "LoadColumns", "startswith": "feature_"},
                          "targets": {"name": "LoadClass", "column": "label"}}
    return Manifest.create({"path": str(path), "loaders": loaders})


def test_columns_and_classes_are_loaded_per_split(write):
    problem = manifest(write("m.csv", TABLE))
    problem.setup()
    assert problem.task == "classification"
    assert torch.equal(problem.splits["val"].fields["inputs"], torch.tensor([[1.0, 2.0], [4.0, 8.0], [7.0, 14.0]]))
    assert problem.data_definitions["targets"]["classes"] == ["no", "yes"]
    assert problem.data_definitions["inputs"]["columns"] == ["feature_a", "feature_b"]


def test_numpy_files_named_in_a_path_column(write, tmp_path):
    for i in range(9):
        np.save(tmp_path / f"img{i}.npy", np.full((1, 2, 2), i, dtype=np.float32))
    problem = manifest(write("m.csv", TABLE), inputs={"name": "LoadNumpy", "column": "image"},
                       targets={"name": "LoadColumns", "columns": ["feature_b"]})
    problem.setup()
    assert problem.task == "regression"
    assert problem.data_definitions["inputs"] == {"kind": "image", "shape": [1, 2, 2], "dtype": "float32"}
    assert problem.splits["test"].fields["inputs"][:, 0, 0, 0].tolist() == [2.0, 5.0, 8.0]


def test_a_missing_numpy_file_names_line_and_column(write):
    path = write("m.csv", TABLE)
    with pytest.raises(ConfigError, match="line 2, column 'image': the file 'img0.npy' does not exist") as caught:
        manifest(path, inputs={"name": "LoadNumpy", "column": "image"},
                 targets={"name": "LoadClass", "column": "label"}).setup()
    assert caught.value.file == str(path)


def test_an_unknown_split_value_names_its_line(write):
    with pytest.raises(ConfigError, match="line 3: split value 'training'"):
        manifest(write("m.csv", TABLE.replace("s1,val", "s1,training"))).setup()


def test_an_unknown_loader_is_refused_with_the_nearest_names(write):
    with pytest.raises(ConfigError, match="LoadColumns"):
        manifest(write("m.csv", TABLE), inputs={"name": "LoadColumn"},
                 targets={"name": "LoadClass", "column": "label"}).setup()
