"""The pictures' content, read through their matplotlib Figures (axes, lines, texts), not their pixels."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from pyrosys.folders.experiment import CSV_FILES, Experiment
from pyrosys.tracking.plots import (confusion_figure, curves_figure, experiment_curves, plot_curves,
                                    validation_epochs)

# three epochs of 40 episodes, validated every half epoch: the best loss (0.5) at episode 80, epoch 2's end
TRAINING = [{"episode": str(40 * e), "epoch": str(e), "loss_mean": str(2.0 / e), "accuracy_mean": str(0.3 * e)}
            for e in (1, 2, 3)]
VALIDATION = [{"episode": str(episode), "epoch": str(epoch), "loss": str(loss), "accuracy": str(accuracy)}
              for episode, epoch, loss, accuracy in ((20, 1, 1.5, 0.4), (40, 1, 1.0, 0.6), (60, 2, 0.8, 0.7),
                                                     (80, 2, 0.5, 0.8), (100, 3, 0.6, 0.9), (120, 3, 0.7, 0.85))]


def labelled(axis, prefix: str) -> list:
    return [line for line in axis.get_lines() if line.get_label().startswith(prefix)]


@pytest.fixture
def figures():
    made = []
    yield made
    for figure in made:
        plt.close(figure)


def test_validations_lie_at_their_fraction_of_an_epoch():
    assert validation_epochs(TRAINING, VALIDATION) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert validation_epochs([], VALIDATION[:2]) == [1.0, 1.0]      # no epoch ended: the epoch column


def test_curves_have_whole_epoch_ticks_the_best_epoch_marked_and_the_test_value(figures):
    figure = curves_figure(TRAINING, VALIDATION, "accuracy", "MLP on Digits", ("loss", "min"),
                           {"loss": 0.55, "accuracy": 0.81})
    figures.append(figure)
    loss, accuracy = figure.axes
    for axis in (loss, accuracy):
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert axis.get_xlabel() == "epoch"
    (best,) = labelled(loss, "best")
    assert list(best.get_xdata()) == [2.0] and list(best.get_ydata()) == [0.5] and best.get_label() == "best: epoch 2"
    assert not labelled(accuracy, "best")                       # the monitor is the loss
    (test,) = labelled(accuracy, "test")
    assert list(test.get_ydata()) == [0.81, 0.81] and test.get_label() == "test: 0.81"
    training = labelled(loss, "training")[0]
    assert list(training.get_xdata()) == [1, 2, 3]              # epochs counted from 1, as the tables count them


def test_a_monitor_of_its_own_gets_its_panel_and_max_mode_marks_the_highest(figures):
    figure = curves_figure(TRAINING, VALIDATION, None, "t", ("accuracy", "max"))
    figures.append(figure)
    assert [axis.get_title() for axis in figure.axes] == ["loss", "accuracy"]
    (best,) = labelled(figure.axes[1], "best")
    assert list(best.get_xdata()) == [2.5] and best.get_label() == "best: epoch 3"
    assert not labelled(figure.axes[0], "test")                 # not tested: no test value


def test_an_experiment_s_curves_read_its_monitor_and_its_test_values(tmp_path, figures):
    experiment = Experiment(tmp_path)
    for table, rows in (("training_agg", TRAINING), ("validation", VALIDATION)):
        (tmp_path / CSV_FILES[table]).write_text(",".join(rows[0]) + "\n"
                                                 + "".join(",".join(r.values()) + "\n" for r in rows))
    experiment.configuration_file.write_text("validation: {monitor: val_accuracy, mode: max}\n")
    experiment.status_file.write_text(json.dumps({"status": "completed", "testing": {"accuracy": 0.75}}))
    figure = experiment_curves(experiment, "accuracy", "t")
    figures.append(figure)
    assert labelled(figure.axes[1], "best")[0].get_label() == "best: epoch 3"
    assert labelled(figure.axes[1], "test")[0].get_label() == "test: 0.75"
    assert plot_curves(experiment, "accuracy", "t", {}) == experiment.curves_file and experiment.curves_file.is_file()


def test_the_confusion_figure_shows_counts_beside_rows_that_sum_to_one_and_the_accuracy(figures):
    classes = ["cytoplasm", "nucleus", "endoplasmic reticulum", "mitochondrial membrane"]
    matrix = [[8, 1, 1, 0], [2, 6, 0, 0], [0, 0, 0, 0], [1, 0, 3, 4]]
    figure = confusion_figure(matrix, classes, "CNN on Proteins")
    figures.append(figure)
    counts, normalised = (axis for axis in figure.axes if axis.get_title())
    assert (counts.get_title(), normalised.get_title()) == ("counts", "normalised per true class")
    assert np.array_equal(counts.get_images()[0].get_array(), matrix)
    shares = np.asarray(normalised.get_images()[0].get_array())
    assert np.allclose(shares.sum(axis=1), [1, 1, 0, 1])            # a class absent from the test split: zeros
    assert np.allclose(shares[0], [0.8, 0.1, 0.1, 0.0])
    assert "accuracy 69.23% (18 of 26)" in figure.get_suptitle()
    for axis in (counts, normalised):
        labels = [label.get_text().split() for label in axis.get_xticklabels() + axis.get_yticklabels()]
        assert all(label.get_rotation() == 0 for label in axis.get_xticklabels())
        assert [" ".join(words) for words in labels[4:]] == classes     # wrapped, every word kept


def test_twenty_classes_keep_their_labels_upright_and_apart(figures):
    classes = [f"compartment {index}" for index in range(20)]
    figure = confusion_figure(np.eye(20, dtype=int).tolist(), classes, "t")
    figures.append(figure)
    renderer = figure.canvas.get_renderer()                 # laid out by tight_layout: no drawing needed
    axis = figure.axes[0]
    boxes = [label.get_window_extent(renderer) for label in axis.get_xticklabels()]
    assert all(label.get_rotation() == 0 for label in axis.get_xticklabels())
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))
