"""pyrosys-grid-analyzer on written experiment folders (no training): rankings within each data set,
repetitions of a configuration grouped as mean and std, curves over epochs. Pictures read through their
Figure's axes."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb

from pyrosys.workers import grid_analyzer

EPISODES = 40             # an epoch of every written run


def write_run(folder: Path, problem: str, lr: float, seed: int, losses: list[float]) -> None:
    """An experiment folder as the trainer leaves it: configuration, status, and per-epoch tables."""
    folder.mkdir(parents=True)
    configuration = {"problem": {"name": problem, "batch_size": 32, "seed": seed},
                     "model": {"name": "MLP", "hidden_sizes": [32]},
                     "training": {"seed": seed, "seed_torch": seed, "seed_numpy": seed,
                                  "optimizer": {"name": "Adam", "lr": lr}},
                     "validation": {"monitor": "val_loss", "mode": "min"}}
    (folder / "training_configuration.yaml").write_text(json.dumps(configuration))
    (folder / "status.json").write_text(json.dumps({"status": "completed", "seed_torch": seed,
                                                    "epoch": len(losses), "testing": {"loss": losses[-1]}}))
    for name, column in (("training_set_agg_statistics.csv", "loss_mean"), ("validation_statistics.csv", "loss")):
        with open(folder / name, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["episode", "epoch", column])
            writer.writerows([EPISODES * epoch, epoch, loss] for epoch, loss in enumerate(losses, start=1))


@pytest.fixture(scope="module")
def two_problems(tmp_path_factory):
    """Digits: lr 0.01 twice (seeds 1, 2) and lr 0.001 once; BreastCancer: its losses all lower than Digits'."""
    root = tmp_path_factory.mktemp("analysis")
    write_run(root / "d_fast_1", "Digits", 0.01, 1, [1.0, 0.5, 0.6])
    write_run(root / "d_fast_2", "Digits", 0.01, 2, [1.2, 0.7, 0.65])
    write_run(root / "d_slow_1", "Digits", 0.001, 1, [1.5, 1.1, 0.9])
    write_run(root / "b_fast_1", "BreastCancer", 0.01, 1, [0.3, 0.2, 0.25])
    write_run(root / "b_slow_1", "BreastCancer", 0.001, 1, [0.5, 0.4, 0.35])
    return root


def test_runs_are_ranked_only_against_runs_of_their_data_set(two_problems, capsys):
    assert grid_analyzer.main(["--expdir", str(two_problems)]) == 0
    with open(two_problems / "analysis.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["dataset"], r["rank"], r["run"]) for r in rows] == [
        ("BreastCancer", "1", "b_fast_1"), ("BreastCancer", "2", "b_slow_1"),
        ("Digits", "1", "d_fast_1"), ("Digits", "2", "d_fast_2"), ("Digits", "3", "d_slow_1")]
    assert [r["best_epoch"] for r in rows] == ["2", "3", "2", "3", "3"]           # epochs counted from 1
    assert "| status | dataset | seed |" in (two_problems / "analysis.md").read_text()
    assert (two_problems / "analysis.png").is_file()


def test_repetitions_of_a_configuration_are_one_line_with_a_band_per_data_set(two_problems):
    rows, _ = grid_analyzer.collect(two_problems)
    figure = grid_analyzer.analysis_figure(grid_analyzer.rank(rows), "t")
    try:
        (_, breast_curves), (digits_bars, digits_curves) = (figure.axes[:2], figure.axes[2:4])
        assert breast_curves.get_title() == "BreastCancer: validation val_loss"
        assert [line.get_label() for line in digits_curves.get_lines()] == ["optimizer.lr=0.01 (n=2)",
                                                                          "optimizer.lr=0.001 (n=1)"]
        assert [t.get_text() for t in digits_curves.get_legend().get_texts()] == ["optimizer.lr=0.01 (n=2)",
                                                                                  "optimizer.lr=0.001 (n=1)"]
        repeated = digits_curves.get_lines()[0]
        assert list(repeated.get_xdata()) == [1.0, 2.0, 3.0]                       # in epochs, not episodes
        assert repeated.get_ydata() == pytest.approx([1.1, 0.6, 0.625])
        (band,) = [c for c in digits_curves.collections if isinstance(c, PolyCollection)]     # the repeated one
        low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
        assert (low, high) == pytest.approx((0.6 - 0.1, 1.1 + 0.1))
        assert not [c for c in breast_curves.collections if isinstance(c, PolyCollection)]
        assert [t.get_text() for t in digits_bars.get_yticklabels()] == ["optimizer.lr=0.01", "optimizer.lr=0.001"]
        means = [container.lines[0] for container in digits_bars.containers]         # error bars: mean ± std
        assert [line.get_xdata()[0] for line in means] == pytest.approx([(0.5 + 0.65) / 2, 0.9])
        assert [line.get_ydata()[0] for line in means] == [0, 1]                 # ranked from the top
        assert to_rgb(repeated.get_color()) == to_rgb(means[0].get_color())       # one colour a configuration
        ticks = [t for t in digits_curves.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)
    finally:
        plt.close(figure)


def test_configurations_are_named_by_the_settings_that_tell_them_apart_not_by_their_class_s_own_keys():
    lenet = {"model.name": "LeNet5", "model.channels": [16, 32], "model.hidden_sizes": [120, 84]}
    mlp = {"model.name": "MLP", "model.channels": None, "model.hidden_sizes": [64]}
    settings = [{**model, "training.optimizer.lr": lr} for model in (lenet, mlp) for lr in (0.01, 0.001)]
    differing = grid_analyzer._differing(settings)
    assert differing == ["model.name", "training.optimizer.lr"]
    assert grid_analyzer._label({"settings": settings[3]}, differing) == "MLP, optimizer.lr=0.001"
    wider = {**mlp, "model.hidden_sizes": [128], "training.optimizer.lr": 0.01}      # differs within MLP: shown
    assert grid_analyzer._differing([*settings, wider]) == ["model.name", "model.hidden_sizes", "training.optimizer.lr"]
