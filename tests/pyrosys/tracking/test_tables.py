"""The statistics tables' names, read without torch (the MLflow helper and the grid's tables use them)."""
from __future__ import annotations

import subprocess
import sys

from pyrosys.folders.experiment import CSV_FILES
from pyrosys.tracking.tables import read_rows


def test_rows_of_a_table_and_none_for_a_missing_file(tmp_path):
    path = tmp_path / CSV_FILES["validation"]
    assert read_rows(path) == []
    path.write_text("episode,loss\n10,0.5\n20,0.25\n")
    assert read_rows(path) == [{"episode": "10", "loss": "0.5"}, {"episode": "20", "loss": "0.25"}]


def test_table_names_and_the_mlflow_module_import_without_torch():
    code = "import sys, pyrosys.tracking.tables, pyrosys.tracking.mlflow_sink, pyrosys.folders.experiment; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
