"""``tfctr tune``: a resumable Optuna study over ``train`` whose best values ``tfctr train --hp`` reads back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfctr.training.tuning import check_space, default_space, split_hp, tune

ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
TFCTR = Path(sys.executable).parent / "tfctr"
SPACE = {"learning_rate": {"float": [1e-3, 1e-2], "log": True}, "batch_size": {"choice": [512, 1024]},
         "hidden_units": {"choice": [[16], [32, 16]]}, "dropout": {"choice": [0.0, 0.2]}}


@pytest.fixture(scope="module")
def study(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "study"
    result = tune(small_data["train"], small_data["valid"], str(out), model="deepfm", trials=3, space=SPACE,
                  epochs=2, embedding_dim=4)
    return out, result


def test_three_trials_write_the_study_the_best_values_and_a_leaderboard(study):
    out, result = study
    assert (out / "study.db").exists()
    assert len(result.leaderboard) == 3
    best = json.loads((out / "best_hp.json").read_text())
    assert best == result.best_hp and set(best) == set(SPACE)
    assert best["hidden_units"] in SPACE["hidden_units"]["choice"]
    finished = [row for row in result.leaderboard if row["state"] == "complete"]
    assert result.best_score == max(row["score"] for row in finished)
    assert result.leaderboard[0]["score"] == result.best_score
    board = (out / "leaderboard.md").read_text()
    assert board.count("\n| ") >= 3 and "valid auc-logloss" in board
    for row in finished:  # every finished trial is a complete run directory scored by its selected epoch
        metrics = json.loads((out / "trials" / f"{row['trial']:04d}" / "metrics.json").read_text())
        assert metrics["training"]["selection"]["selected_score"] == pytest.approx(row["score"])


def test_the_study_resumes_instead_of_starting_again(study, small_data):
    out, _ = study
    again = tune(small_data["train"], small_data["valid"], str(out), model="deepfm", trials=4, space=SPACE,
                 epochs=2, embedding_dim=4)
    assert len(again.leaderboard) == 4
    assert sorted(row["trial"] for row in again.leaderboard) == [0, 1, 2, 3]


def test_train_reads_the_best_values_back(study, small_data, tmp_path):
    out, result = study
    run = tmp_path / "run"
    done = subprocess.run([str(TFCTR), "train", "--train", small_data["train"], "--valid", small_data["valid"],
                           "--model", "deepfm", "--epochs", "1", "--embedding-dim", "4", "--hp",
                           str(out / "best_hp.json"), "--verbose", "0", "--out", str(run)],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    training, hp = split_hp(result.best_hp)
    assert config["training"]["learning_rate"] == pytest.approx(training["learning_rate"])
    assert config["training"]["batch_size"] == training["batch_size"]
    for name, value in hp.items():
        assert config["hyper_parameters"][name] == value


def test_spaces_are_checked_against_the_model():
    assert "num_layers" in default_space("dcnv2") and "num_layers" not in default_space("deepfm")
    assert "learning_rate" in default_space("lr") and "hidden_units" not in default_space("lr")
    with pytest.raises(ValueError, match="'num_heads' is neither"):
        check_space({"num_heads": {"int": [1, 2]}}, "deepfm")
    with pytest.raises(ValueError, match="exactly one of"):
        check_space({"dropout": {"float": [0, 1], "choice": [0.1]}}, "deepfm")
    with pytest.raises(ValueError, match=r"\[low, high\]"):
        check_space({"dropout": {"float": [0.1]}}, "deepfm")


def test_tune_runs_under_a_strategy(small_data, tmp_path):
    result = tune(small_data["train"], small_data["valid"], str(tmp_path / "mirrored"), model="lr", trials=2,
                  space={"learning_rate": {"float": [1e-3, 1e-1], "log": True}}, epochs=1, strategy="mirrored")
    assert len(result.leaderboard) == 2
    config = json.loads((tmp_path / "mirrored" / "trials" / "0000" / "config.json").read_text())
    assert config["training"]["strategy"] == "mirrored"


def test_tune_command_prints_the_leaderboard_and_writes_best_hp(small_data, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"learning_rate": {"float": [1e-3, 1e-1], "log": True}}))
    done = subprocess.run([str(TFCTR), "tune", "--model", "lr", "--train", small_data["train"], "--valid",
                           small_data["valid"], "--trials", "2", "--epochs", "1", "--space", str(space),
                           "--label", "label", "--exclude", "true_ctr", "--verbose", "0", "--out", str(tmp_path / "t")],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| rank | trial | state |" in done.stdout and "best_hp.json" in done.stdout
    assert set(json.loads((tmp_path / "t" / "best_hp.json").read_text())) == {"learning_rate"}
    refused = subprocess.run([str(TFCTR), "tune", "--model", "lr", "--train", small_data["train"], "--valid",
                              small_data["valid"], "--hp", "l2_embedding=0.1", "--out", str(tmp_path / "u")],
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "--space" in refused.stderr
