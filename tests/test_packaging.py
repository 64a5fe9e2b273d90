"""Packaging: one distribution, `pyrosys`, whose components install as pyrosys.models/problems/workers."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_the_pyrosys_package_with_its_components(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "experiments", "build",
                                                                "*.egg-info", "__pycache__", ".pytest_cache"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "--disable-pip-version-check", "-w", str(tmp_path / "wheel"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("pyrosys-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"pyrosys", wheel.name.split("-py3")[0] + ".dist-info"}
    for module in ("pyrosys/models/lenet5.py", "pyrosys/problems/scikit_learn.py", "pyrosys/models/modules/encoders.py", "pyrosys/workers/trainer.py",
                   "pyrosys/configuration/loading.py", "pyrosys/namespace_index.json"):
        assert module in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "pyrosys-trainer = pyrosys.workers.trainer:main" in entry_points
    assert "pyrosys-tester = pyrosys.workers.tester:main" in entry_points
    assert "[pyrosys.model]\nAutoencoder = pyrosys.models.autoencoder:Autoencoder" in entry_points


def test_every_install_command_uses_the_torch_constraint():
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()
    makefile = (REPO / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip" in line and "install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
