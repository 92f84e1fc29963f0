"""OptFusion ablation (the shape of the paper's table): fixed fusion everywhere (add / product / concat /
attention, every connection), the stacked and parallel DCN baselines of the same space, and the searched
architectures (one-shot soft, one-shot hard, one-shot one-hot, sequential soft), over seeds, on synthetic
data and UCI Adult when present: test AUC/logloss, search and retrain seconds. Draws seed 0's one-shot
soft architecture to bench/results/optfusion_graph.png.

    python bench/optfusion.py [--rows 50000] [--seeds 0 1 2] [--embedding-dim 8] [--levels 3]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, benchmark_datasets, write_result
from plot_fusion import draw_architecture

from tfctr.models.fusion import fixed_architecture
from tfctr.training import search_fusion, train

FIXED = ["add", "product", "concat", "attention", "stacked", "parallel"]
# name → (search_fusion's selection, algorithm); "hard" is the authors' soft search + argmax derive,
# "one_hot" tfctr's straight-through one-hot search
SEARCHED = {"one_shot_soft": ("soft", "one_shot"), "one_shot_hard": ("hard", "one_shot"),
            "one_shot_one_hot": ("one_hot", "one_shot"), "sequential_soft": ("soft", "sequential")}


def run_variant(name, paths, seed, args, out):
    common = dict(test=paths["test"], batch_size=args.batch_size, seed=seed, verbose=0)
    start = time.perf_counter()
    if name in SEARCHED:
        selection, algorithm = SEARCHED[name]
        result = search_fusion(paths["train"], paths["valid"], out, num_levels=args.levels, selection=selection,
                               algorithm=algorithm, embedding_dim=args.embedding_dim, epochs=args.epochs,
                               retrain_epochs=args.epochs, learning_rate=args.learning_rate,
                               arch_learning_rate=args.arch_learning_rate, **common)
        search = result.metrics["search"]
        timing = {"search_seconds": search["seconds"], "retrain_seconds": search["retrain_seconds"]}
        architecture = json.loads((out / "architecture.json").read_text())
    else:
        architecture = fixed_architecture(name, args.levels)
        result = train(paths["train"], paths["valid"], out, model="optfusion", epochs=args.epochs,
                       learning_rate=args.learning_rate, patience=1,
                       hyper_params={"architecture": architecture, "embedding_dim": args.embedding_dim}, **common)
        timing = {"train_seconds": time.perf_counter() - start}
    return {"test": result.metrics["test"], "parameters": int(result.model.count_params()), **timing,
            "architecture": architecture}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=FIXED + list(SEARCHED))
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="search, retrain and fixed-model epochs")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--arch-learning-rate", type=float, default=0.1)
    parser.add_argument("--no-adult", action="store_true")
    args = parser.parse_args()
    datasets = benchmark_datasets(args.rows, adult=not args.no_adult)
    results = {}
    for data_name, paths in datasets.items():
        for name in args.variants:
            per_seed = []
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    per_seed.append(run_variant(name, paths, seed, args, Path(tmp) / "run"))
                if name == "one_shot_soft" and seed == args.seeds[0] and data_name == "synthetic_v100":
                    draw_architecture(per_seed[-1]["architecture"], RESULTS / "optfusion_graph.png",
                                      title=f"OptFusion one-shot soft, {data_name}, seed {seed}")
            aucs = [r["test"]["model"]["auc"] for r in per_seed]
            losses = [r["test"]["model"]["logloss"] for r in per_seed]
            seconds = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0] if k.endswith("seconds")}
            results.setdefault(data_name, {})[name] = {
                "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
                "logloss_mean": float(np.mean(losses)), "logloss_std": float(np.std(losses)),
                "parameters": per_seed[0]["parameters"], **seconds, "per_seed": per_seed}
            print(f"{data_name} {name:16s} AUC {np.mean(aucs):.4f} ± {np.std(aucs):.4f} "
                  f"logloss {np.mean(losses):.4f} ± {np.std(losses):.4f} {seconds}", flush=True)
    write_result("optfusion", {"rows": args.rows, "args": vars(args), "datasets": results})


if __name__ == "__main__":
    main()
