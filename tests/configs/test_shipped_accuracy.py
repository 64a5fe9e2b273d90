"""The shipped configurations reach their accuracy targets (minutes of training: `make accuracy`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

pytestmark = pytest.mark.accuracy


@pytest.mark.parametrize("config, statistic, target", [
    ("digits/lenet5.yaml", "accuracy", 0.95),
    ("tabular/breast_cancer.yaml", "accuracy", 0.95),
    ("protein/gravy_regression.yaml", "r2", 0.9),
    ("recall/serial_recall.yaml", "accuracy", 0.99),     # per-bit accuracy on the answer steps
])
def test_shipped_config_reaches_its_target(config, statistic, target, tmp_path, cli):
    result = cli("pyrosys-trainer", "--c", CONFIGS / config, *cli.FAST, "--outdir", tmp_path, cwd=tmp_path,
                 timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (status,) = tmp_path.glob("*/*/*/status.json")
    testing = json.loads(status.read_text())["testing"]
    print(f"{config}: test {statistic} {testing[statistic]:.4f} (target {target})")
    assert testing[statistic] >= target
