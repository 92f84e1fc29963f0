"""AdaEnsemble's model defaults against the paper's form and DenseMoE, as a user runs them: ``tfctr train``'s
defaults (model selection, epochs, learning rate) with only the compared hyper-parameters set, on UCI Adult and on
200k rows of synthetic data with learnable crosses (at most 2 epochs there, as the 200k leaderboard).

Variants: ``default`` (the model's defaults: no controller, no load regulariser), ``paper`` (controller on,
λ = 1), ``nc`` (controller off, λ = 1), ``densemoe``, ``controller`` (the defaults with the depth controller on:
k = 3 with per-example early exit, λ = 0), ``no_jitter`` (the defaults with ε = 0: no noise on the gates' input
in training), ``unweighted`` (selected experts summed without their gates, the authors' code), ``normalize``
(every layer's output instance-normalised over its slots, the paper's text), ``k2_normalize``,
``densemoe_normalize``, ``k1``, ``k2``, ``k4`` (the defaults with k experts per example) and ``only_<kind>``
(one expert alone, k = 1 of 1). Every finished run is appended to ``bench/results/adaensemble_defaults.jsonl``
with the CPU it ran on and the summary (mean ± std per dataset and variant) written to
``bench/results/adaensemble_defaults.json``.

    python bench/adaensemble_defaults.py --data adult --variants default densemoe --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile

import numpy as np
from common import ADULT, CRITEO_LIKE, RESULTS, machine, synthetic, write_result

from tfctr.layers.moe import DEFAULT_EXPERT_KINDS
from tfctr.training import train
from tfctr.training.train import resolve_spec

LEARNABLE = dataclasses.replace(CRITEO_LIKE, cross_vocabulary_size=200, seed=7)
VARIANTS = {"default": ("adaensemble", {}), "paper": ("adaensemble", {"controller": True, "load_weight": 1.0}),
            "nc": ("adaensemble", {"controller": False, "load_weight": 1.0}), "densemoe": ("densemoe", {}),
            "controller": ("adaensemble", {"controller": True}),  # the defaults with the depth controller on
            "no_jitter": ("adaensemble", {"jitter": 0.0}),  # the defaults with a noise-free gate in training
            "unweighted": ("adaensemble", {"weight_outputs_by_gates": False}),
            "normalize": ("adaensemble", {"normalize": True}),
            "k2_normalize": ("adaensemble", {"k": 2, "normalize": True}),
            "densemoe_normalize": ("densemoe", {"normalize": True})}
# the defaults with k experts per example (k = 3 is ``default``; k = 5, all of them, is DenseMoE's routing without
# its dense dispatch)
VARIANTS.update({f"k{k}": ("adaensemble", {"k": k}) for k in (1, 2, 4)})
# each expert alone (k = 1 of 1, the defaults otherwise): what the mixture has to beat
VARIANTS.update({f"only_{kind}": ("adaensemble", {"expert_kinds": [kind], "k": 1}) for kind in DEFAULT_EXPERT_KINDS})
RUNS = RESULTS / "adaensemble_defaults.jsonl"


def splits(data: str) -> tuple[dict, dict]:
    if data == "adult":
        return {s: str(ADULT / f"{s}.parquet") for s in ("train", "valid", "test")}, {}
    return synthetic("learnable_crosses_200000", 200_000, 50_000, 50_000, config=LEARNABLE), {"epochs": 2}


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for run in runs:
        summary.setdefault(run["data"], {}).setdefault(run["variant"], []).append(run)
    return {data: {variant: {"seeds": [r["seed"] for r in rs],
                             "auc_mean": float(np.mean([r["auc"] for r in rs])),
                             "auc_std": float(np.std([r["auc"] for r in rs])),
                             "logloss_mean": float(np.mean([r["logloss"] for r in rs]))}
                   for variant, rs in variants.items()} for data, variants in summary.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=["adult", "synthetic"], required=True)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    paths, limits = splits(args.data)
    spec = resolve_spec(paths["train"])
    cpu = machine()["cpu"]  # runs of several machines share the JSONL (the metrics, not the times, are compared)
    for variant in args.variants:
        model, hp = VARIANTS[variant]
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as out:
                result = train(paths["train"], paths["valid"], out, model=model, test=paths["test"], seed=seed,
                               verbose=0, spec=spec, hyper_params=hp, **limits)
            test = result.metrics["test"]["model"]
            run = {"data": args.data, "variant": variant, "seed": seed, "auc": test["auc"], "logloss": test["logloss"],
                   "epochs_run": result.metrics["training"]["epochs_run"],
                   "selected_epoch": result.metrics["training"]["selection"]["selected_epoch"], "cpu": cpu}
            print(json.dumps(run), flush=True)
            with RUNS.open("a") as f:
                f.write(json.dumps(run) + "\n")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]
    write_result("adaensemble_defaults", {"variants": {k: {"model": m, "hyper_parameters": hp}
                                                       for k, (m, hp) in VARIANTS.items()},
                                          "summary": summarise(runs), "runs": runs})


if __name__ == "__main__":
    main()
