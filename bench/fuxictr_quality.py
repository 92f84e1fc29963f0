"""Test AUC/logloss after one epoch, tfctr next to FuxiCTR, on the leaderboard's 1M synthetic rows with
learnable crosses.

Both libraries train the same model on the same ids (tfctr's encoding of the rows, so the comparison is the
model and the training, not the feature processing), one epoch over the shuffled training split, then predict
the 50k-row test split. Two settings, each run on both sides:

* ``tfctr_defaults``: ``tfctr train --model M --epochs 1`` as it comes; FuxiCTR with the same batch size, embedding
  dimension, hidden units and learning rate;
* ``fuxictr_template``: FuxiCTR's DeepFM template (``model_zoo/DeepFM/DeepFM_torch/config/model_config.yaml``,
  ``DeepFM_default``: batch 10,000, D = 40, MLP 300-300-300, Adam 1e-3), and tfctr given the same.

Both clip the gradient at global norm 10 (FuxiCTR's ``fit`` default, tfctr's ``train`` default). FuxiCTR runs in
``bench/.venv-fuxictr`` (``make bench-fuxictr-venv``; ``bench/fuxictr_twin.py --epoch``).

    python bench/fuxictr_quality.py [--rows 1000000] [--models deepfm] [--seeds 0]
"""

import argparse
import inspect
import json
import subprocess
import tempfile
import time

import numpy as np
from common import BENCH_DIR, DATA, encoded_split, synthetic, write_result
from leaderboard import LEARNABLE

from tfctr.models.registry import hyper_parameters, training_defaults
from tfctr.training import train
from tfctr.training.train import resolve_spec

FUXICTR_PYTHON = BENCH_DIR / ".venv-fuxictr" / "bin" / "python"
SETTINGS = {
    "tfctr_defaults": None,  # tfctr: nothing given; FuxiCTR: tfctr_defaults(model)
    "fuxictr_template": {"batch_size": 10_000, "embedding_dim": 40, "hidden_units": [300, 300, 300],
                         "learning_rate": 1e-3},
}


def tfctr_defaults(model: str) -> dict:
    """What ``tfctr train --model M`` uses when given nothing, in the terms of ``fuxictr_twin.py``."""
    hp = hyper_parameters(model)
    return {"batch_size": inspect.signature(train).parameters["batch_size"].default,
            "embedding_dim": hp["embedding_dim"], "hidden_units": list(hp["hidden_units"]),
            "learning_rate": training_defaults(model).get("learning_rate", 1e-3)}


def encoded(paths: dict, spec, rows: int):
    """The train and test splits as tfctr's model inputs (ids), cached as one npz."""
    path = DATA / f"encoded_learnable_crosses_{rows}.npz"
    if not path.exists():
        arrays = {}
        for split in ("train", "test"):
            columns, labels = encoded_split(paths[split], spec)
            arrays.update({f"{split}_{k}": v.reshape(len(v), -1)[:, 0] for k, v in columns.items()})  # ids [N]
            arrays[f"{split}_label"] = labels
        names = [f.name for f in spec.embedded]
        np.savez(path, names=np.array(names), sizes=np.array([spec[n].vocabulary_size for n in names]), **arrays)
    return path


def tfctr_one_epoch(paths, spec, model, seed, setting):
    hp = training = {}
    if setting:
        hp = {"embedding_dim": setting["embedding_dim"], "hidden_units": setting["hidden_units"]}
        training = {"batch_size": setting["batch_size"], "learning_rate": setting["learning_rate"]}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(paths["train"], paths["valid"], out, model=model, test=paths["test"], seed=seed, verbose=0,
                       spec=spec, hyper_params=hp, epochs=1, **training)
    test = result.metrics["test"]["model"]
    return {"auc": test["auc"], "logloss": test["logloss"], "seconds": time.perf_counter() - start}


def fuxictr_one_epoch(data_path, model, seed, setting):
    command = [str(FUXICTR_PYTHON), str(BENCH_DIR / "fuxictr_twin.py"), "--epoch", model, "--data", str(data_path),
               "--batch-size", str(setting["batch_size"]), "--embedding-dim", str(setting["embedding_dim"]),
               "--learning-rate", str(setting["learning_rate"]), "--seed", str(seed),
               "--hidden-units", *map(str, setting["hidden_units"])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=BENCH_DIR)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"FuxiCTR {model} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", nargs="+", default=["deepfm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    if not FUXICTR_PYTHON.exists():
        raise SystemExit(f"{FUXICTR_PYTHON} not found: make bench-fuxictr-venv")
    paths = synthetic(f"learnable_crosses_{args.rows}", args.rows, 50_000, 50_000, config=LEARNABLE)
    spec = resolve_spec(paths["train"])
    data_path = encoded(paths, spec, args.rows)
    results = {}
    for model in args.models:
        for name, setting in SETTINGS.items():
            runs = []
            for seed in args.seeds:
                ours = tfctr_one_epoch(paths, spec, model, seed, setting)
                theirs = fuxictr_one_epoch(data_path, model, seed, setting or tfctr_defaults(model))
                runs.append({"seed": seed, "tfctr": ours, "fuxictr": theirs})
                print(f"{model} {name} seed {seed}: tfctr AUC {ours['auc']:.4f} logloss {ours['logloss']:.4f} "
                      f"({ours['seconds']:.0f} s)  FuxiCTR AUC {theirs['auc']:.4f} logloss {theirs['logloss']:.4f} "
                      f"({theirs['train_seconds']:.0f} s)", flush=True)
            results.setdefault(model, {})[name] = {"setting": setting or tfctr_defaults(model), "runs": runs}
            write_result("fuxictr_quality", {"rows": args.rows, "seeds": args.seeds, "models": results})


if __name__ == "__main__":
    main()
