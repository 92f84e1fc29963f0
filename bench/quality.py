"""Test AUC/logloss per model, mean ± std over seeds, on synthetic data (next to the Bayes-optimal reference of
the same rows) and on UCI Adult (../shared/data/adult) when it is present.

    python bench/quality.py [--models lr wdl deepfm dcn dcnv2] [--seeds 0 1 2] [--rows 200000]
                            [--vocabulary-size 100] [--user-groups 0]

``--user-groups N`` adds the synthetic generator's user-dependent part (C1 is the user; N hidden groups with their
own item-value weights), the data APG's comparison (``--models wdl apg_wdl dcnv2 apg_dcnv2``) is run on.
``--variant NAME=MODEL:JSON`` (repeatable) adds a row NAME: MODEL with the hyper-parameters JSON, e.g.
``--variant 'apg_wdl_user=apg_wdl:{"apg": {"condition": "C1", "rank": 4, "version": "v5", "overparam_dim": 64}}'``.
"""

import argparse
import dataclasses
import json
import tempfile

import numpy as np
from common import ADULT, CRITEO_LIKE, synthetic, write_result

from tfctr.training import train
from tfctr.training.selection import DEFAULT_MONITOR


def run(paths, name, seeds, epochs, batch_size, learning_rate, model=None, hyper_params=None):
    per_seed = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as out:
            result = train(paths["train"], paths["valid"], out, model=model or name, test=paths["test"], epochs=epochs,
                           batch_size=batch_size, learning_rate=learning_rate, seed=seed, verbose=0,
                           hyper_params=hyper_params)
        per_seed.append(result.metrics)
    aucs = [m["test"]["model"]["auc"] for m in per_seed]
    losses = [m["test"]["model"]["logloss"] for m in per_seed]
    summary = {**({"model": model, "hyper_parameters": hyper_params} if model else {}),
               "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
               "logloss_mean": float(np.mean(losses)), "logloss_std": float(np.std(losses)),
               "seeds": list(seeds), "per_seed": per_seed}
    if "bayes_optimal" in per_seed[0]["test"]:
        summary["bayes_optimal"] = per_seed[0]["test"]["bayes_optimal"]
    print(f"{name:8s} AUC {summary['auc_mean']:.4f} ± {summary['auc_std']:.4f}  "
          f"logloss {summary['logloss_mean']:.4f} ± {summary['logloss_std']:.4f}")
    return summary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=["lr", "wdl", "deepfm", "dcn", "dcnv2"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--vocabulary-size", type=int, default=100,
                        help="values per synthetic categorical field (more = sparser, harder)")
    parser.add_argument("--user-groups", type=int, default=0,
                        help="hidden user groups of the user-dependent part of the synthetic logit (0 = none)")
    parser.add_argument("--no-adult", action="store_true", help="skip UCI Adult even when it is present")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=MODEL:JSON",
                        help="a row NAME: MODEL with the hyper-parameters JSON (repeatable)")
    args = parser.parse_args()
    variants = {}
    for item in args.variant:
        name, rest = item.split("=", 1)
        model, hp = rest.split(":", 1)
        variants[name] = (model, json.loads(hp))
    config = dataclasses.replace(CRITEO_LIKE, vocabulary_size=args.vocabulary_size,
                                 n_user_groups=args.user_groups)
    suffix = f"v{args.vocabulary_size}" + (f"_users{args.user_groups}" if args.user_groups else "")
    datasets = {f"synthetic_{suffix}": synthetic(f"criteo_like_{suffix}_{args.rows}", args.rows, config=config)}
    if args.no_adult:
        pass
    elif ADULT.exists():
        datasets["adult"] = {s: str(ADULT / f"{s}.parquet") for s in ("train", "valid", "test")}
    else:
        print(f"{ADULT} not found: adult skipped")
    results = {}
    for data_name, paths in datasets.items():
        print(f"== {data_name}")
        batch_size = 256 if data_name == "adult" else 1024
        results[data_name] = {  # learning rate None: the model's own
            name: run(paths, name, args.seeds, args.epochs, batch_size, None) for name in args.models}
        for name, (model, hp) in variants.items():
            results[data_name][name] = run(paths, name, args.seeds, args.epochs, batch_size, None, model, hp)
        bayes = next(iter(results[data_name].values())).get("bayes_optimal")
        if bayes:
            print(f"Bayes-optimal AUC {bayes['auc']:.4f} logloss {bayes['logloss']:.4f}")
    tag = "_".join(args.models + list(variants)) if args.models != parser.get_default("models") or variants else ""
    write_result(f"quality_{suffix}" + (f"_{tag}" if tag else ""),
                 {"epochs": args.epochs, "rows": args.rows, "vocabulary_size": args.vocabulary_size,
                  "user_groups": args.user_groups, "datasets": results,
                  "selection": f"model selection on validation {DEFAULT_MONITOR}"})


if __name__ == "__main__":
    main()
