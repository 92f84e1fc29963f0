"""Serving in bfloat16 against float32: accuracy and batch latency of the same trained model exported both ways.

Each model is trained by ``tfctr.training.train`` (float32, ``--epochs``) on synthetic Criteo-like data with
learnable crosses, then exported twice by ``export_saved_model``: ``precision="float32"`` and
``precision="bfloat16"`` (the export's own check on the validation split must pass). Both exported graphs
(encoding included) are then called on the whole test split: max and mean |Δprobability| and test AUC/logloss
of each. Latency: median ms of ``serving_default`` at each ``--batch`` in one fresh process, the two exports
taking turns (``serving_latency.py``); the ratio float32 / bfloat16 is the speed-up (below 1: slower).

On CPUs without bfloat16 hardware (AVX2 only; the JSON's ``machine.bfloat16_hardware``) TensorFlow emulates
bfloat16 and the ratio is below 1: the figure to act on comes from a CPU with AMX / AVX512-BF16.

    python bench/serving_precision.py [--rows 200000] [--epochs 2] [--models dcnv2 xdeepfm ...] [--result NAME]
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import BENCH_DIR, CRITEO_LIKE, synthetic, write_result

from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model
from tfctr.metrics import evaluate
from tfctr.serving.repository import load_version
from tfctr.serving.requests import call_signature
from tfctr.training import train

# the matmul-bound models of the bfloat16 training benchmark (xDeepFM with the CIN 128-128 of KD-DAGFM's teacher)
HYPER_PARAMETERS = {"dcnv2": {}, "xdeepfm": {"cin_layer_sizes": [128, 128]}, "apg_dcnv2": {}, "xdeepint": {}}
LEARNABLE = dataclasses.replace(CRITEO_LIKE, cross_vocabulary_size=200, seed=7)


def exported_probabilities(export_dir, table, spec, batch=4096) -> np.ndarray:
    loaded = load_version(Path(export_dir).parent, int(Path(export_dir).name))
    out = []
    for start in range(0, table.num_rows, batch):
        feed = arrow_to_serving(table.slice(start, batch), spec)
        out.append(call_signature(loaded, "serving_default", feed)["probability"])
    return np.concatenate(out).astype(np.float64)


def latencies(exports: dict, test, batches) -> dict:
    command = [sys.executable, str(BENCH_DIR / "serving_latency.py"), "--test", test,
               *(f"--batch={b}:{calls}" for b, calls in batches.items()),
               *(f"{name}={path}" for name, path in exports.items())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"serving_latency.py failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(HYPER_PARAMETERS), choices=list(HYPER_PARAMETERS))
    parser.add_argument("--calls", type=int, default=40, help="timed calls per export at batch 1024")
    parser.add_argument("--result", default="serving_precision", help="bench/results/RESULT.json")
    args = parser.parse_args()
    paths = synthetic(f"criteo_like_learnable_{args.rows}", args.rows, config=LEARNABLE)
    test = pq.read_table(paths["test"])
    labels = test.column("label").to_numpy()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            run = train(paths["train"], paths["valid"], f"{tmp}/{name}", model=name, test=paths["test"],
                        epochs=args.epochs, hyper_params=HYPER_PARAMETERS[name], verbose=0)
            exports = {precision: export_saved_model(run, None, f"{tmp}/models", f"{name}_{precision}",
                                                     precision=precision)
                       for precision in ("float32", "bfloat16")}
            card = json.loads((exports["bfloat16"] / "assets.extra" / "model_card.json").read_text())
            probabilities = {p: exported_probabilities(path, test, run.spec) for p, path in exports.items()}
            difference = np.abs(probabilities["bfloat16"] - probabilities["float32"])
            ms = latencies({p: str(path) for p, path in exports.items()}, paths["test"],
                           {1: 4 * args.calls, 1024: args.calls})
            rows[name] = {
                "export_check": card["precision"],
                "test_max_abs_probability_difference": float(difference.max()),
                "test_mean_abs_probability_difference": float(difference.mean()),
                "test": {p: evaluate(labels, probabilities[p]) for p in exports},
                "latency_ms": ms,
                "batch1024_speedup": ms["float32"]["1024"] / ms["bfloat16"]["1024"],
                "batch1_speedup": ms["float32"]["1"] / ms["bfloat16"]["1"],
            }
            print(name, json.dumps(rows[name]), flush=True)
    write_result(args.result, {"rows": args.rows, "epochs": args.epochs, "models": rows})


if __name__ == "__main__":
    main()
