"""Safe loading: a checkpoint or bundle carrying a pickle payload is refused unread; YAML Python tags are
refused; a class named in a configuration or a checkpoint must be of the kind expected there;
configurations inside checkpoints are plain data."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.errors import ConfigError
from pyrosys.workers import predictor, tester, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class Payload:
    """Unpickling this would create a file: the proof that a payload ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    assert trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(root), "--run-name", "run",
                         "--set", "training.terminal_conditions.epoch_limit=1", "logging.mlflow=null",
                         "training.trainer.enable_progress_bar=false"]) == 0
    return root / "run"


def test_a_checkpoint_with_a_pickle_payload_is_refused_without_running_it(run, tmp_path, capsys):
    checkpoint = read_checkpoint(run / "models" / "best.ckpt")
    checkpoint["extra"] = Payload(str(tmp_path / "ran"))
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    for main, argv in ((tester.main, ["--m", str(tmp_path / "evil.ckpt")]),
                       (trainer.main, ["--c", str(CONFIGS / "digits/mlp.yaml"), "--m", str(tmp_path / "evil.ckpt"),
                                       "--outdir", str(tmp_path / "out")])):
        assert main(argv) == 2
        assert "refused unread" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists()


def test_a_bundle_whose_weights_are_a_pickle_is_refused_without_running_it(run, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.yaml").write_text((run / "models" / "best" / "model.yaml").read_text())
    torch.save({"weights": Payload(str(tmp_path / "ran"))}, bundle / "weights.safetensors")
    (tmp_path / "x.npy").write_bytes(b"")
    assert predictor.main(["--m", str(bundle), "--input", str(tmp_path / "x.npy")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "ran").exists()


def test_checkpoints_carry_their_configuration_as_plain_data_only(run):
    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool))

    described = read_checkpoint(run / "models" / "last.ckpt")["pyrosys"]
    assert "configuration" in described and "model" in described
    # everything but the random generators' states (arrays, read weights-only) is plain data
    assert plain({key: value for key, value in described.items() if key != "random_states"})


@pytest.mark.parametrize("target", ["os.system", "subprocess.Popen", "builtins.eval", "shutil.rmtree"])
def test_a_target_of_the_wrong_kind_in_a_checkpoint_is_refused_before_it_is_called(run, tmp_path, target, capsys):
    checkpoint = read_checkpoint(run / "models" / "best.ckpt")
    checkpoint["pyrosys"]["model"]["class"] = target
    torch.save(checkpoint, tmp_path / "swapped.ckpt")
    assert tester.main(["--m", str(tmp_path / "swapped.ckpt")]) == 2
    error = capsys.readouterr().err
    assert target in error and "Traceback" not in error


def test_yaml_python_tags_are_refused(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text(f"problem: !!python/object/apply:os.system ['touch {tmp_path / 'ran'}']\n")
    assert trainer.main(["--c", str(config)]) == 2
    assert "Python tags" in capsys.readouterr().err and not (tmp_path / "ran").exists()
