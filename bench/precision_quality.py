"""What mixed precision costs in quality: the same model trained in float32 and in mixed precision (bfloat16 on a
CPU, float16 on a GPU), same data, same seed, same epochs, test AUC / logloss of both.

Every run is ``tfctr.training.train`` with the model's defaults and ``epochs`` fixed (``patience`` larger than the
epochs, so model selection never stops a run early and both precisions train the same number of steps; the
epoch kept is still the best on validation). Seeds differ between the pairs, not inside one. The throughput side
is ``train_throughput.py --precision both``.

    python bench/precision_quality.py [--rows 200000] [--epochs 2] [--seeds 0 1 2] [--models dcnv2 ...] [--result NAME]
"""

import argparse
import dataclasses
import statistics
import tempfile

from common import CRITEO_LIKE, synthetic, write_result

from tfctr.training import train

MODELS = {"dcnv2": {}, "xdeepfm": {"cin_layer_sizes": [128, 128]}, "apg_dcnv2": {}, "adaensemble": {}}
LEARNABLE = dataclasses.replace(CRITEO_LIKE, cross_vocabulary_size=200, seed=7)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--result", default="precision_quality", help="bench/results/RESULT.json")
    args = parser.parse_args()
    paths = synthetic(f"criteo_like_learnable_{args.rows}", args.rows, config=LEARNABLE)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            runs = {"float32": [], "mixed": []}
            for seed in args.seeds:
                for precision, mixed in (("float32", False), ("mixed", True)):
                    result = train(paths["train"], paths["valid"], f"{tmp}/{name}_{seed}_{precision}", model=name,
                                   test=paths["test"], epochs=args.epochs, patience=args.epochs + 1, seed=seed,
                                   hyper_params=MODELS[name], mixed_precision=mixed, verbose=0)
                    test = result.metrics["test"]["model"]
                    runs[precision].append({"seed": seed, "auc": test["auc"], "logloss": test["logloss"],
                                            "examples_per_second":
                                                result.metrics["training"]["examples_per_second"]})
            gaps = [m["auc"] - f["auc"] for f, m in zip(runs["float32"], runs["mixed"])]
            rows[name] = {**runs, "auc_gap_mean": statistics.fmean(gaps),
                          "auc_gap_std": statistics.pstdev(gaps) if len(gaps) > 1 else 0.0,
                          "logloss_gap_mean": statistics.fmean(m["logloss"] - f["logloss"]
                                                               for f, m in zip(runs["float32"], runs["mixed"]))}
            print(name, f"mixed - float32 AUC {rows[name]['auc_gap_mean']:+.4f} ± {rows[name]['auc_gap_std']:.4f}",
                  flush=True)
            # written after every model, so a run stopped early keeps what it measured
            write_result(args.result, {"rows": args.rows, "epochs": args.epochs, "seeds": args.seeds,
                                               "models": rows, "complete": len(rows) == len(args.models)})


if __name__ == "__main__":
    main()
