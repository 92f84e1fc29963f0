"""Model selection: each monitor keeps the epoch it claims, lowers the learning rate once, then stops."""

import numpy as np
import pytest
import tensorflow as tf

from tfctr.training.selection import ModelSelection, monitor_score

# a constructed history: AUC keeps rising while the logloss is best at epoch 2 and then degrades
AUC = [0.80, 0.82, 0.84, 0.85, 0.86, 0.87]
LOGLOSS = [0.50, 0.44, 0.47, 0.60, 0.65, 0.70]
KD_MSE = [1.00, 0.50, 0.30, 0.31, 0.35, 0.40]  # a distilled student's gap to its teacher, closest at epoch 3


def _run(monitor, patience=2, reductions=1, epochs=len(AUC)):
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    selection = ModelSelection(monitor, patience=patience, reductions=reductions)
    selection.set_model(model)
    selection.on_train_begin()
    ran = 0
    for epoch in range(epochs):
        # every epoch leaves its number in the weights, so the restored weights tell which epoch was kept
        model.set_weights([np.full((2, 1), epoch, np.float32), np.zeros(1, np.float32)])
        selection.on_epoch_end(epoch, {"val_auc": AUC[epoch], "val_logloss": LOGLOSS[epoch],
                                       "val_kd_mse": KD_MSE[epoch]})
        ran += 1
        if model.stop_training:
            break
    selection.on_train_end()
    kept = int(model.get_weights()[0][0, 0])
    return selection, kept, ran, float(model.optimizer.learning_rate.numpy())


@pytest.mark.parametrize("monitor, best", [("auc", 6), ("logloss", 2), ("auc-logloss", 2), ("kd_mse", 3)])
def test_each_monitor_keeps_its_best_epoch(monitor, best):
    selection, kept, _, _ = _run(monitor)
    summary = selection.summary()
    assert summary["selected_epoch"] == best
    assert kept == best - 1  # the weights written at that (0-based) epoch were restored
    scores = [monitor_score(monitor, {"val_auc": a, "val_logloss": loss, "val_kd_mse": kd})
              for a, loss, kd in zip(AUC, LOGLOSS, KD_MSE)]
    assert summary["selected_score"] == pytest.approx(max(scores[:len(summary["scores"])]))


def test_plateau_lowers_the_learning_rate_once_then_stops():
    selection, _, ran, rate = _run("logloss", patience=2, reductions=1)
    summary = selection.summary()
    # epochs 3-4 do not improve on epoch 2: the rate drops after epoch 4; epochs 5-6 neither: stop after 6
    assert summary["learning_rate_reductions"] == [{"after_epoch": 4, "learning_rate": pytest.approx(0.001)}]
    assert rate == pytest.approx(0.001)
    assert ran == 6
    assert "no improvement of validation logloss for 2 epochs" in summary["stopped_because"]


def test_without_reductions_it_is_plain_early_stopping():
    selection, kept, ran, rate = _run("auc-logloss", patience=1, reductions=0)
    assert ran == 3 and kept == 1 and rate == pytest.approx(0.01)
    assert selection.summary()["learning_rate_reductions"] == []


def test_improving_run_reports_that_it_ran_every_epoch():
    selection, kept, ran, _ = _run("auc")
    assert ran == 6 and kept == 5
    assert selection.summary()["stopped_because"] == "ran all 6 epochs"


def test_invalid_arguments_name_the_problem():
    with pytest.raises(ValueError, match="monitor='accuracy'"):
        ModelSelection("accuracy")
    with pytest.raises(ValueError, match="patience"):
        ModelSelection(patience=0)
    with pytest.raises(ValueError, match="val_logloss"):
        monitor_score("logloss", {"val_auc": 0.7})


def test_a_resumed_selection_continues_exactly_where_the_killed_one_stopped(tmp_path):
    """Killed after epoch 3 (0-based 2), resumed at epoch 4: the same epochs, weights and summary as a run that
    was never killed."""
    def run(epochs, selection, model, start=0):
        selection.set_model(model)
        selection.on_train_begin()
        for epoch in range(start, epochs):
            selection.on_epoch_begin(epoch)
            model.set_weights([np.full((2, 1), epoch, np.float32), np.zeros(1, np.float32)])
            selection.on_epoch_end(epoch, {"val_auc": AUC[epoch], "val_logloss": LOGLOSS[epoch]})
            if model.stop_training:
                break
        selection.on_train_end()
        return int(model.get_weights()[0][0, 0]), selection.summary()

    def model():
        net = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
        net.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
        return net

    whole = run(len(AUC), ModelSelection("auc-logloss", patience=2, state_dir=tmp_path / "whole"), model())
    run(3, ModelSelection("auc-logloss", patience=2, state_dir=tmp_path / "killed"), model())  # "killed" here
    resumed = run(len(AUC), ModelSelection("auc-logloss", patience=2, state_dir=tmp_path / "killed"), model(), start=3)
    assert resumed == whole and whole[1]["selected_epoch"] == 2
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == \
        sorted(p.name for p in (tmp_path / "whole").iterdir())  # only the last two states and their weights
