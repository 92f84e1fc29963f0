"""The honest leaderboard: every model of the zoo with its defaults (and a few tuned) next to what a user would
use instead, one-hot logistic regression and LightGBM, computed here on the same splits.

    python bench/leaderboard.py [--datasets adult synthetic] [--rows 1000000] [--seeds 0 1 2]
                                [--models lr wdl ...] [--tuned dcnv2 deepfm] [--trials 20] [--name leaderboard]

Datasets: UCI Adult (../shared/data/adult, when present) and synthetic data whose second- and third-order terms
are learnable (crosses only among fields of 200 values, ``cross_vocabulary_size=200``), with its Bayes-optimal
AUC/logloss (the true CTR of the same rows). Every tfctr model is trained by ``tfctr.training.train`` with its
defaults and nothing else (``--synthetic-epochs`` caps the epochs on synthetic data; the test metrics after the
first epoch are recorded too). ``--tuned`` models get a ``tune`` study of ``--trials`` trials on the validation
split and are then retrained with the best values for every seed. Results: bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf
from common import ADULT, CRITEO_LIKE, RESULTS, machine, synthetic, write_result

from tfctr.data.synthetic import TRUE_CTR_COLUMN
from tfctr.metrics import evaluate
from tfctr.models import available
from tfctr.training import train
from tfctr.training.train import predict_split, resolve_spec
from tfctr.training.tuning import split_hp, tune

# every registered model but the OptFusion search supernet (it is trained by search_fusion, not train)
ZOO = [name for name in available() if name != "optfusion_search"]
LEARNABLE = dataclasses.replace(CRITEO_LIKE, cross_vocabulary_size=200, seed=7)


class FirstEpochTest(tf.keras.callbacks.Callback):
    """Exact test metrics of the weights after the first epoch (before any selection restores others)."""

    def __init__(self, test, spec):
        super().__init__()
        self.test, self.spec, self.metrics = test, spec, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            labels = pq.read_table(self.test, columns=[self.spec.label]).column(0).to_numpy()
            self.metrics = evaluate(labels, predict_split(self.model, self.test, self.spec))


def _frame(paths, split, label="label"):
    table = pq.read_table(paths[split])
    frame = table.drop([c for c in (TRUE_CTR_COLUMN,) if c in table.column_names]).to_pandas()
    return frame.drop(columns=[label]), frame[label].to_numpy()


def baselines(paths, spec) -> dict:
    """One-hot logistic regression (C chosen on valid) and LightGBM (early stopping on valid): test metrics.
    Columns are typed as tfctr's inferred ``spec`` types them (categorical or numeric)."""
    import lightgbm as lgb
    import pandas as pd
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = (_frame(paths, s) for s in ("train", "valid", "test"))
    categorical = [f.name for f in spec.features if f.kind == "categorical"]
    numeric = [f.name for f in spec.features if f.kind == "numeric"]

    def numeric_block(frame, scaler=None):
        values = frame[numeric].astype(float).to_numpy()
        counts = np.array([spec[name].transform == "log_square" for name in numeric], dtype=bool)
        values = np.where(counts, np.log1p(np.clip(values, 0, None)), values)  # counts on a log scale
        missing = np.isnan(values).astype(float)
        values = np.nan_to_num(values)
        scaler = scaler or StandardScaler().fit(values)
        return np.hstack([scaler.transform(values), missing]), scaler

    def strings(frame):  # categorical columns as strings, a missing value as a category of its own
        return frame[categorical].astype("string").fillna("<missing>").astype(object)

    encoder = OneHotEncoder(handle_unknown="ignore").fit(strings(x_train))
    train_num, scaler = numeric_block(x_train)

    def design(frame, block):
        return sparse.hstack([encoder.transform(strings(frame)), sparse.csr_matrix(block)]).tocsr()

    d_train = design(x_train, train_num)
    d_valid = design(x_valid, numeric_block(x_valid, scaler)[0])
    d_test = design(x_test, numeric_block(x_test, scaler)[0])
    start = time.perf_counter()
    best = None
    for c in (0.01, 0.1, 1.0, 10.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(d_train, y_train)
        valid = evaluate(y_valid, model.predict_proba(d_valid)[:, 1])
        if best is None or valid["auc"] - valid["logloss"] > best[0]:
            best = (valid["auc"] - valid["logloss"], c, model)
    lr = {"C": best[1], "test": evaluate(y_test, best[2].predict_proba(d_test)[:, 1]),
          "seconds": time.perf_counter() - start}

    train_strings = strings(x_train)

    def lgb_frame(frame):
        frame, values = frame.copy(), strings(frame)
        for c in categorical:
            frame[c] = pd.Categorical(values[c], categories=sorted(train_strings[c].unique()))
        return frame

    start = time.perf_counter()
    booster = lgb.train(
        {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50,
         "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "cat_smooth": 10, "verbose": -1,
         "seed": 0, "num_threads": 2},
        lgb.Dataset(lgb_frame(x_train), y_train), num_boost_round=3000,
        valid_sets=[lgb.Dataset(lgb_frame(x_valid), y_valid)],
        callbacks=[lgb.early_stopping(100, verbose=False)])
    gbm = {"rounds": booster.best_iteration, "seconds": time.perf_counter() - start,
           "test": evaluate(y_test, booster.predict(lgb_frame(x_test), num_iteration=booster.best_iteration))}
    print(f"  one-hot LR (C={lr['C']}) AUC {lr['test']['auc']:.4f} logloss {lr['test']['logloss']:.4f}; "
          f"LightGBM ({gbm['rounds']} rounds) AUC {gbm['test']['auc']:.4f} logloss {gbm['test']['logloss']:.4f}",
          flush=True)
    return {"one_hot_lr": lr, "lightgbm": gbm}


def _summary(runs: list[dict]) -> dict:
    out = {"seeds": len(runs), "runs": runs}
    for key in ("auc", "logloss"):
        values = [r["test"][key] for r in runs]
        out[f"{key}_mean"], out[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
        first = [r["first_epoch"][key] for r in runs if r.get("first_epoch")]
        if first:
            out[f"first_epoch_{key}_mean"] = float(np.mean(first))
    return out


def run_model(paths, spec, model, seeds, epochs, hp=None, training=None) -> dict:
    """``train`` with the defaults (and ``hp``/``training`` when tuned) for every seed: test metrics, first-epoch
    test metrics, the selected epoch and why training stopped."""
    runs = []
    for seed in seeds:
        first = FirstEpochTest(paths["test"], spec)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = train(paths["train"], paths["valid"], out, model=model, test=paths["test"], seed=seed,
                           verbose=0, spec=spec, hyper_params=hp, callbacks=[first],
                           **({"epochs": epochs} if epochs else {}), **(training or {}))
        selection = result.metrics["training"]["selection"]
        runs.append({"seed": seed, "test": result.metrics["test"]["model"], "first_epoch": first.metrics,
                     "selected_epoch": selection["selected_epoch"],
                     "epochs_run": result.metrics["training"]["epochs_run"],
                     "stopped_because": selection["stopped_because"], "seconds": time.perf_counter() - start})
    summary = _summary(runs)
    print(f"  {model:12s} AUC {summary['auc_mean']:.4f} ± {summary['auc_std']:.4f}  logloss "
          f"{summary['logloss_mean']:.4f} ± {summary['logloss_std']:.4f}  epochs "
          f"{[r['selected_epoch'] for r in runs]}/{[r['epochs_run'] for r in runs]}", flush=True)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=["adult", "synthetic"], choices=["adult", "synthetic"])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic training rows")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="*", default=ZOO)
    parser.add_argument("--synthetic-epochs", type=int, default=5, help="at most this many epochs on synthetic data")
    parser.add_argument("--tuned", nargs="*", default=["dcnv2"], help="models also tuned (tfctr tune)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--name", default="leaderboard")
    parser.add_argument("--update", action="store_true",
                        help="re-run only --models/--tuned and replace their rows in an existing "
                             "bench/results/NAME.json (its baselines and Bayes-optimal metrics are kept: the data "
                             "is regenerated identically; the re-run is recorded under 'reruns')")
    args = parser.parse_args()
    datasets = {}
    if "adult" in args.datasets:
        if ADULT.exists():
            datasets["adult"] = {s: str(ADULT / f"{s}.parquet") for s in ("train", "valid", "test")}
        else:
            print(f"{ADULT} not found: adult skipped")
    if "synthetic" in args.datasets:
        datasets["synthetic_learnable"] = synthetic(f"learnable_crosses_{args.rows}", args.rows, 50_000, 50_000,
                                                    config=LEARNABLE)
    results = {}
    previous_path = RESULTS / f"{args.name}.json"
    previous = json.loads(previous_path.read_text())["datasets"] if args.update and previous_path.exists() else {}

    def record(done: bool):
        """Writes what is measured so far (``"partial": true`` until the last row), so a long run that is
        stopped keeps its finished rows."""
        payload = {"rows": args.rows, "synthetic_epochs": args.synthetic_epochs, "datasets": results}
        if args.update and previous_path.exists():
            payload = merge_rerun(json.loads(previous_path.read_text()), payload, args)
        write_result(args.name if done else f"{args.name}.partial", dict(payload, partial=not done))

    for data_name, paths in datasets.items():
        print(f"== {data_name}", flush=True)
        epochs = args.synthetic_epochs if data_name.startswith("synthetic") else None
        spec = resolve_spec(paths["train"])
        kept = previous.get(data_name, {})
        entry = {"baselines": kept.get("baselines") or baselines(paths, spec), "models": {}, "tuned": {}}
        if "bayes_optimal" in kept:
            entry["bayes_optimal"] = kept["bayes_optimal"]
        elif data_name.startswith("synthetic"):
            test = pq.read_table(paths["test"], columns=["label", TRUE_CTR_COLUMN])
            entry["bayes_optimal"] = evaluate(test.column(0).to_numpy(), test.column(1).to_numpy())
            print(f"  Bayes-optimal AUC {entry['bayes_optimal']['auc']:.4f}", flush=True)
        results[data_name] = entry
        for model in args.models:
            entry["models"][model] = run_model(paths, spec, model, args.seeds, epochs)
            record(done=False)
        for model in args.tuned:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                study = tune(paths["train"], paths["valid"], out, model=model, trials=args.trials,
                             **({"epochs": epochs} if epochs else {}))
                seconds = time.perf_counter() - start
            training, hp = split_hp(study.best_hp)
            print(f"  tuned {model}: {study.best_hp}", flush=True)
            entry["tuned"][model] = dict(run_model(paths, spec, model, args.seeds, epochs, hp, training),
                                         best_hp=study.best_hp, trials=args.trials, tune_seconds=seconds)
            record(done=False)
    record(done=True)
    (RESULTS / f"{args.name}.partial.json").unlink(missing_ok=True)


def merge_rerun(previous: dict, payload: dict, args) -> dict:
    """``previous`` with the rows of this partial run replaced; the first run's command stays the record's."""
    for data_name, entry in payload["datasets"].items():
        old = previous["datasets"].setdefault(data_name, entry)
        if old is not entry:
            old["baselines"] = entry["baselines"]
            old["models"].update(entry["models"])
            old.setdefault("tuned", {}).update(entry["tuned"])
    rerun = {"command": " ".join(["python", "bench/leaderboard.py", *sys.argv[1:]]),
             "date": time.strftime("%Y-%m-%d %H:%M:%S"), "models": args.models, "tuned": args.tuned,
             "cpu": machine()["cpu"]}
    # the first run's command, date and machine stay the record's; each re-run names its own CPU
    return {"rows": previous["rows"], "synthetic_epochs": previous["synthetic_epochs"],
            "datasets": previous["datasets"], "command": previous["command"], "date": previous["date"],
            "machine": previous["machine"], "reruns": previous.get("reruns", []) + [rerun]}


if __name__ == "__main__":
    main()
