"""``tfctr train`` and ``tfctr export`` through the real console script, and resuming a killed run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model
from tfctr.metrics import evaluate
from tfctr.training import load_run, train
from tfctr.training.train import predict_split, resumed_epoch

ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


TFCTR = Path(sys.executable).parent / "tfctr"  # the console script installed by setup.py


def _tfctr(*args):
    return subprocess.run([str(TFCTR), *args], env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cli_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    done = _tfctr("train", "--train", small_data["train"], "--valid", small_data["valid"], "--test",
                  small_data["test"], "--model", "deepfm", "--epochs", "2", "--batch-size", "512",
                  "--embedding-dim", "8", "--hp", "hidden_units=[32,16]", "--verbose", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_train_writes_a_complete_run(cli_run, small_data):
    assert {"spec.json", "model.keras", "config.json", "metrics.json", "logs"} <= set(os.listdir(cli_run))
    assert not (cli_run / "backup").exists()  # BackupAndRestore cleans up after a finished run
    metrics = json.loads((cli_run / "metrics.json").read_text())
    config = json.loads((cli_run / "config.json").read_text())
    assert config["model"] == "deepfm" and config["hyper_parameters"]["hidden_units"] == [32, 16]
    assert config["hyper_parameters"]["embedding_dim"] == 8
    run = load_run(cli_run)
    # metrics.json holds the exact metrics of the saved model over the whole test split
    labels = pq.read_table(small_data["test"], columns=["label", "true_ctr"])
    exact = evaluate(labels["label"].to_numpy(), predict_split(run.model, small_data["test"], run.spec))
    assert metrics["test"]["model"]["auc"] == pytest.approx(exact["auc"], abs=1e-6)
    assert metrics["test"]["model"]["logloss"] == pytest.approx(exact["logloss"], abs=1e-6)
    bayes = evaluate(labels["label"].to_numpy(), labels["true_ctr"].to_numpy())
    assert metrics["test"]["bayes_optimal"]["auc"] == pytest.approx(bayes["auc"])
    assert metrics["training"]["examples_per_second"] > 0 and metrics["training"]["train_rows"] == 12_000
    assert "true_ctr" not in run.spec.names  # the oracle column never becomes a feature


def test_export_cli_versions_and_serving_predictions(cli_run, small_data, tmp_path):
    base = tmp_path / "models"
    for expected, precision in (("1", "float32"), ("2", "bfloat16")):
        done = _tfctr("export", "--run", str(cli_run), "--model-base-path", str(base), "--name", "ctr",
                      "--precision", precision)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().endswith(os.path.join("ctr", expected))
    # version 2 serves in bfloat16, checked on the run's validation split
    assert "serving in bfloat16: max |Δprobability|" in done.stdout and small_data["valid"] in done.stdout
    assert sorted(os.listdir(base / "ctr")) == ["1", "2"]  # no temporary directory left behind
    done = _tfctr("export", "--run", str(cli_run), "--model-base-path", str(base), "--name", "ctr", "--version", "2")
    assert done.returncode == 2 and "already exists" in done.stderr

    run = load_run(cli_run)
    serving = tf.saved_model.load(str(base / "ctr" / "1")).signatures["serving_default"]
    assert set(serving.structured_outputs) == {"probability", "logit"}
    assert set(serving.structured_input_signature[1]) == set(run.spec.names)
    rows = pq.read_table(small_data["test"])
    raw = arrow_to_serving(rows, run.spec)
    served = serving(**{k: tf.constant(v) for k, v in raw.items()})
    np.testing.assert_allclose(served["probability"].numpy(), predict_split(run.model, small_data["test"], run.spec),
                               atol=1e-6)
    assert (base / "ctr" / "1" / "assets.extra" / "spec.json").exists()


def test_train_cli_reports_bad_input(small_data, tmp_path):
    done = _tfctr("train", "--train", small_data["train"], "--valid", small_data["valid"], "--label", "clicked",
                  "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "label column 'clicked' is not in the schema" in done.stderr


def test_a_finished_run_is_not_overwritten_unless_asked(small_data, tmp_path):
    args = dict(train=small_data["train"], valid=small_data["valid"], out=str(tmp_path / "run"), model="lr",
                epochs=1, batch_size=2048, verbose=0)
    first = train(**args)
    with pytest.raises(FileExistsError, match="holds a finished run.*--overwrite"):
        train(**args)
    assert (tmp_path / "run" / "model.keras").stat().st_mtime == (first.run_dir / "model.keras").stat().st_mtime
    again = train(**args, overwrite=True)
    assert len(list((again.run_dir / "logs" / "train").iterdir())) == 1  # one run's curves, not two
    with pytest.raises(Exception, match="label"):  # failed checks leave no empty run directory behind
        train(**dict(args, out=str(tmp_path / "bad"), label="clicked"))
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("hp, message", [
    ("hidden_units=256,128", "--hp hidden_units=256,128: the value is not JSON"),
    ("hiden_units=[8]", "model 'wdl' has no hyper-parameters ['hiden_units']"),
])
def test_bad_hyper_parameters_are_one_line_errors(small_data, tmp_path, hp, message, capsys):
    from tfctr.cli import main

    code = main(["train", "--model", "wdl", "--train", small_data["train"], "--valid", small_data["valid"],
                 "--out", str(tmp_path / "run"), "--epochs", "1", "--verbose", "0", "--hp", hp])
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1, error


class _Crash(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("simulated kill after the first epoch")


def test_killed_run_resumes_from_backup(small_data, tmp_path):
    # wdl with dropout: the masks of the resumed epochs come from the generator state in the backup
    args = dict(train=small_data["train"], valid=small_data["valid"], out=str(tmp_path / "run"), model="wdl",
                epochs=3, batch_size=2048, patience=5, verbose=0,
                hyper_params={"hidden_units": [16], "dropout": 0.3, "embedding_dim": 4})
    with pytest.raises(KeyboardInterrupt):
        train(**args, callbacks=[_Crash()])
    assert (tmp_path / "run" / "backup").exists()
    assert (tmp_path / "run" / "backup" / "selection" / "selection-0.json").exists()
    result = train(**args)
    training = result.metrics["training"]
    assert training["epochs_run_since_resume"] == 2  # epochs 2 and 3 only: epoch 1 came from the backup
    # the selection resumed too: it knows all three epochs, and keeps the best of them (the uninterrupted run's)
    assert training["epochs_run"] == 3 and len(training["selection"]["scores"]) == 3
    whole_run = train(**dict(args, out=str(tmp_path / "whole")))
    whole = whole_run.metrics["training"]
    assert training["selection"]["selected_epoch"] == whole["selection"]["selected_epoch"]
    assert not (tmp_path / "run" / "backup").exists()
    # the resumed epochs read the rows in the uninterrupted run's order and draw its dropout masks: the same model
    assert resumed_epoch(tmp_path / "run" / "backup") == 0
    assert training["selection"]["scores"] == whole["selection"]["scores"]
    for resumed_weight, whole_weight in zip(result.model.get_weights(), whole_run.model.get_weights()):
        np.testing.assert_array_equal(resumed_weight, whole_weight)
    assert result.metrics["valid"] == whole_run.metrics["valid"]


def test_export_needs_a_spec_and_a_valid_name(small_data, tmp_path, cli_run):
    run = load_run(cli_run)
    with pytest.raises(ValueError, match="FeatureSpec"):
        export_saved_model(run.model, None, tmp_path, "m")
    with pytest.raises(ValueError, match="model name"):
        export_saved_model(run.model, run.spec, tmp_path, "a/b")
