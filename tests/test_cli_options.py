"""Every command that trains takes the same options: ``distill`` and ``search-fusion`` with a label column that is
not called ``label``, ``search-fusion --strategy mirrored`` on 2 logical CPUs, stage labels in the output; and
the CLI's failures are one line with exit code 2, its TensorFlow start-up lines hidden."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tfctr._quiet import native_stderr_hidden
from tfctr.cli import main
from tfctr.training import train

SCRIPT = Path(__file__).parent / "scripts" / "cli_on_two_cpus.py"
ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def clicked_data(small_data, tmp_path_factory):
    """Half of ``small_data`` with its label column renamed ``clicked``."""
    root = tmp_path_factory.mktemp("clicked")
    paths = {}
    for split in ("train", "valid", "test"):
        table = pq.read_table(small_data[split])
        table = table.slice(0, table.num_rows // 2)
        paths[split] = str(root / f"{split}.parquet")
        pq.write_table(table.rename_columns(["clicked" if n == "label" else n for n in table.column_names]),
                       paths[split])
    return paths


def _data_args(paths):
    return ["--train", paths["train"], "--valid", paths["valid"], "--test", paths["test"], "--label", "clicked"]


def test_search_fusion_runs_mirrored_on_two_cpus_with_its_label(clicked_data, tmp_path):
    out = tmp_path / "fusion"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "search-fusion", *_data_args(clicked_data), "--out", str(out),
         "--strategy", "mirrored", "--levels", "1", "--epochs", "1", "--retrain-epochs", "1", "--batch-size", "512",
         "--embedding-dim", "4", "--verbose", "2"], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stage 1/2: search connections and operations" in done.stdout
    assert "stage 2/2: retrain the derived architecture" in done.stdout
    config = json.loads((out / "config.json").read_text())["training"]
    assert config["label"] == "clicked" and config["strategy"] == "mirrored" and config["replicas"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["model"]["auc"] > 0.55  # learnt from the `clicked` column


def test_distill_takes_the_teacher_label_and_the_shared_options(clicked_data, tmp_path, capsys):
    train(clicked_data["train"], clicked_data["valid"], tmp_path / "teacher", model="deepfm", label="clicked", epochs=2,
          batch_size=512, verbose=0, hyper_params={"embedding_dim": 4, "hidden_units": [16]})
    common = [*_data_args(clicked_data), "--teacher", str(tmp_path / "teacher"), "--epochs", "1",
              "--finetune-epochs", "1", "--batch-size", "512", "--hp", "num_layers=1"]
    assert main(["distill", *common, "--out", str(tmp_path / "kd"), "--exclude", "not_a_column"]) == 0
    assert "stage 1/2: distil the teacher into dagfm" in capsys.readouterr().out
    config = json.loads((tmp_path / "kd" / "finetuned" / "config.json").read_text())
    assert config["training"]["label"] == "clicked" and config["training"]["shared_embedding"]
    # another embedding size: the student learns its own table
    assert main(["distill", *common, "--out", str(tmp_path / "kd8"), "--embedding-dim", "8", "--verbose", "0"]) == 0
    config = json.loads((tmp_path / "kd8" / "distilled" / "config.json").read_text())
    assert config["hyper_parameters"]["embedding_dim"] == 8 and not config["training"]["shared_embedding"]
    # a finished distillation is kept unless --overwrite; options that contradict the teacher are named
    capsys.readouterr()
    assert main(["distill", *common, "--out", str(tmp_path / "kd")]) == 2
    assert "holds a finished run" in capsys.readouterr().err
    wrong = [a if a != "clicked" else "label" for a in common]
    assert main(["distill", *wrong, "--out", str(tmp_path / "kd2")]) == 2
    assert "trained on the label column 'clicked'" in capsys.readouterr().err
    assert main(["distill", *common, "--out", str(tmp_path / "kd3"), "--exclude", "C1"]) == 2
    assert "cannot exclude ['C1']" in capsys.readouterr().err


def test_cli_failures_are_one_line_with_exit_code_2(clicked_data, tmp_path, capsys):
    assert main(["predict", "--server", "127.0.0.1:1", "--model-name", "m", "--input", clicked_data["test"],
                 "--timeout", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfctr predict: error: 127.0.0.1:1 answered UNAVAILABLE") and "\n" not in err
    missing = str(tmp_path / "no.parquet")
    assert main(["predict", "--server", "127.0.0.1:1", "--model-name", "m", "--input", missing]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_native_stderr_is_hidden_while_python_stderr_stays(capfd):
    with native_stderr_hidden():
        os.write(2, b"native start-up line\n")
        print("python line", file=sys.stderr)
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "native start-up line" not in err and "python line" in err and "after" in err


def test_every_option_of_every_command_has_help():
    from tfctr.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"tfctr {name} {action.option_strings or action.dest} has no help"


def test_label_values_that_are_not_0_or_1_are_one_line_errors(tmp_path, capsys):
    import numpy as np
    import pyarrow as pa

    rows = np.random.default_rng(0).integers(0, 3, 600)
    pq.write_table(pa.table({"a": rows.astype(str), "label": rows}), tmp_path / "bad.parquet")
    bad = str(tmp_path / "bad.parquet")
    assert main(["train", "--train", bad, "--valid", bad, "--model", "lr", "--epochs", "1", "--verbose", "0",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "label column 'label' must be 0 or 1, found [2" in err


def test_a_teacher_without_embeddings_gives_the_student_its_own_table(clicked_data, tmp_path):
    train(clicked_data["train"], clicked_data["valid"], tmp_path / "lr", model="lr", label="clicked", epochs=1,
          verbose=0)
    assert main(["distill", *_data_args(clicked_data), "--teacher", str(tmp_path / "lr"), "--epochs", "1",
                 "--finetune-epochs", "0", "--hp", "num_layers=1", "--verbose", "0",
                 "--out", str(tmp_path / "kd")]) == 0
    config = json.loads((tmp_path / "kd" / "distilled" / "config.json").read_text())
    assert not config["training"]["shared_embedding"] and config["hyper_parameters"]["embedding_dim"] == 16


def test_the_cli_offers_exactly_the_registered_models():
    from tfctr.defaults import MODEL_NAMES
    from tfctr.models import available

    assert list(MODEL_NAMES) == available(), "list a new model's name in tfctr/defaults.py MODEL_NAMES"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["distill", "-h"], []])
def test_help_loads_no_tensorflow(argv):
    """``tfctr --help`` (the console command, ``tfctr_command``) answers without importing TensorFlow."""
    probe = ("import sys, tfctr_command\n"
             f"sys.argv = ['tfctr', *{argv!r}]\n"
             "try:\n    tfctr_command.main()\nexcept SystemExit as exit:\n    code = exit.code\n"
             "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow', code)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == f"no tensorflow {0 if argv else 2}", done.stderr[-2000:]
    assert "usage: tfctr" in done.stdout + done.stderr
