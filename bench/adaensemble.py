"""AdaEnsemble (the paper's Tables 2-4) on synthetic data with first- to third-order interactions, over seeds, in the
paper's form (depth controller on, load regulariser λ = 1; the model's defaults are neither, see
``adaensemble_defaults.py``): SparseMoE k = 1..4 with the depth controller, the same k = 3 without controller (full
depth), DenseMoE (every expert everywhere), each expert alone (k = 1 over one expert, full depth) and the ensemble
of those single-expert models (their predicted probabilities averaged); ablations: the controller trained with
``depth_training="routed"``, k = 3 without controller with no gate jitter or with a tenth of the load-regulariser
weight, and k annealed from 5 experts down to 3 over the first half of training (``TopKAnnealing``, the paper's
dense → sparse schedule) with and without the controller.

Per model: test AUC/logloss (mean ± std), inference cost per example and exit depths. Cost is measured two ways on
seed 0's trained models: latency of the exported SavedModel's ``serving_default`` at batch 1024 (per example),
and the expected inference FLOPs per example, ``Σ_l reach_l · Σ_j load_lj · FLOPs(expert_lj)`` + estimators +
gates, where each expert's FLOPs are counted by TensorFlow's profiler on a one-example graph and reach/load are
the measured routing fractions on the test split (dense models: every expert on every row).

    python bench/adaensemble.py [--rows 50000] [--seeds 0 1 2] [--embedding-dim 8] [--epochs 2]
"""

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from common import RESULTS, benchmark_datasets, machine, serving_latency_ms, write_result

from tfctr.data import parquet_dataset, read_columns
from tfctr.layers import AdaEnsembleNetwork
from tfctr.layers.moe import DEFAULT_EXPERT_KINDS as DEFAULT_EXPERTS
from tfctr.metrics import evaluate
from tfctr.training import TopKAnnealing, annealing_schedule, routing_statistics, train
from tfctr.training.train import predict_split

# the paper's form (depth controller on, load regulariser at λ = 1), spelled out: the model's defaults are not it
# (README, "AdaEnsemble"); "nc": the same without the controller (every example runs every layer)
PAPER = {"controller": True, "load_weight": 1.0}
PAPER_NC = {"controller": False, "load_weight": 1.0}
VARIANTS = {f"sparse_k{k}": {**PAPER, "k": k} for k in (1, 2, 3, 4)}
VARIANTS["sparse_k3_no_controller"] = {**PAPER_NC, "k": 3}
VARIANTS["densemoe"] = {"model": "densemoe"}
VARIANTS["sparse_k3_routed"] = {**PAPER, "k": 3, "depth_training": "routed"}
VARIANTS["sparse_k3_nc_jitter0"] = {**PAPER_NC, "k": 3, "jitter": 0.0}
VARIANTS["sparse_k3_nc_load01"] = {**PAPER_NC, "k": 3, "load_weight": 0.1}
# "anneal": the fraction of the training steps over which k goes from every expert down to the model's k
VARIANTS["sparse_k3_annealed"] = {**PAPER, "k": 3, "anneal": 0.5}
VARIANTS["sparse_k3_nc_annealed"] = {**PAPER_NC, "k": 3, "anneal": 0.5}
# the load regulariser off (λ = 0: the gate is free to prefer the experts that work; the model's default, and with
# "nc" the model's defaults) and sharper gates (τ₀ = 0.25)
VARIANTS["sparse_k3_nc_load0"] = {**PAPER_NC, "k": 3, "load_weight": 0.0}
VARIANTS["sparse_k3_nc_load0_t025"] = {**PAPER_NC, "k": 3, "load_weight": 0.0, "gate_temperature": 0.25}
VARIANTS["sparse_k3_load0_t025_routed"] = {**PAPER, "k": 3, "load_weight": 0.0, "gate_temperature": 0.25,
                                           "depth_training": "routed"}
VARIANTS["densemoe_t025"] = {"model": "densemoe", "gate_temperature": 0.25}
VARIANTS.update({f"only_{e}": {"expert_kinds": [e], "k": 1, "controller": False} for e in DEFAULT_EXPERTS})


def graph_flops(fn, *specs) -> float:
    graph = tf.function(fn).get_concrete_function(*specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def expected_flops(model, stats) -> float:
    """Expected inference FLOPs per example of the AdaEnsemble part from the routing fractions."""
    network = next(m for m in model.submodules if isinstance(m, AdaEnsembleNetwork))
    shape = network.input_shape
    slot = tf.TensorSpec([1, *shape[1:]], tf.float32)
    depths = stats["exit_depths"] or [0.0] * (network.num_layers - 1) + [1.0]
    reach = 1.0 - np.concatenate([[0.0], np.cumsum(depths)[:-1]])
    total = graph_flops(lambda x: network.depth_gate(x)[0], slot) if network.controller else 0.0
    for d, moe in enumerate(network.moes):
        layer = graph_flops(lambda x, g=moe.gate: g(x)[0], slot)  # the gate runs for every reaching row
        for j, expert in enumerate(moe.experts):
            load = stats["expert_loads"][d][f"{j}_{moe.expert_kinds[j]}"]
            layer += load * graph_flops(lambda x, e=expert: e((x, x)), slot)
        total += reach[d] * layer
        if d in network.exit_layers:
            estimator = graph_flops(lambda x, e=network.estimator(d): e(tf.reduce_sum(x, axis=2)), slot)
            total += (depths[d] if network.controller else 1.0) * estimator
    return total


def _annealing(fraction: float, hp: dict, args) -> list:
    """``TopKAnnealing`` lowering k by one every ``stage`` steps from every expert to ``hp["k"]``, reaching it
    after ``fraction`` of the training steps."""
    experts = len(hp.get("expert_kinds", DEFAULT_EXPERTS))
    total_steps = -(-args.rows // args.batch_size) * args.epochs
    stage = max(1, int(fraction * total_steps / max(experts - hp["k"], 1)))
    return [TopKAnnealing(annealing_schedule(experts, hp["k"], stage))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--result", default="adaensemble", help="bench/results/RESULT.json")
    parser.add_argument("--update", action="store_true",
                        help="add --variants to (or replace them in) an existing RESULT.json run with the same data "
                             "and training arguments; its first command stays the record's, this one is listed "
                             "under 'reruns'")
    args = parser.parse_args()
    previous_path = RESULTS / f"{args.result}.json"
    previous = json.loads(previous_path.read_text()) if args.update and previous_path.exists() else None
    if previous is not None:
        same = ("rows", "seeds", "embedding_dim", "layers", "epochs", "batch_size", "learning_rate")
        differ = [k for k in same if previous["args"].get(k) != vars(args)[k]]
        if differ:
            raise SystemExit(f"--update: {previous_path} was run with other {differ}: {previous['args']}")
    paths = benchmark_datasets(args.rows, adult=False)["synthetic_v100"]
    labels = read_columns(paths["test"], ["label"])["label"]
    bayes = evaluate(labels, read_columns(paths["test"], ["true_ctr"])["true_ctr"])
    results, singles = {}, {}
    cpu = machine()["cpu"]

    def record(done: bool):  # after every variant, so that a stopped run keeps the variants it measured
        payload = {"rows": args.rows, "args": vars(args), "bayes_optimal": bayes, "models": results,
                   "partial": not done}
        if previous is not None:
            rerun = {"command": " ".join(["python", "bench/adaensemble.py", *sys.argv[1:]]),
                     "date": time.strftime("%Y-%m-%d %H:%M:%S"), "measured": list(results), "partial": not done,
                     "cpu": cpu}
            models = {**previous["models"], **results}
            # the first run's command, date and machine stay the record's; each row and re-run names its CPU
            payload = {**payload, "command": previous["command"], "date": previous["date"], "args": previous["args"],
                       "machine": previous["machine"], "models": models,
                       "reruns": previous.get("reruns", []) + [rerun],
                       "partial": any(v not in models for v in previous["args"]["variants"])}
        write_result(args.result, payload)

    for name in args.variants:
        variant = dict(VARIANTS[name])
        model_name = variant.pop("model", "adaensemble")
        anneal = variant.pop("anneal", None)
        hp = dict(embedding_dim=args.embedding_dim, num_layers=args.layers, **variant)
        if model_name == "adaensemble":
            hp.setdefault("depth_prior", [0.1, 0.2, 0.6, 0.1] if args.layers == 4 else None)
        per_seed, cost = [], {}
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                run = train(paths["train"], paths["valid"], out, model=model_name, test=paths["test"],
                            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                            seed=seed, patience=1, hyper_params=hp, verbose=0,
                            callbacks=_annealing(anneal, hp, args) if anneal else None)
                seconds = time.perf_counter() - start
                if name.startswith("only_"):
                    singles.setdefault(seed, []).append(predict_split(run.model, paths["test"], run.spec))
                per_seed.append({"test": run.metrics["test"]["model"], "train_seconds": seconds})
                if seed == args.seeds[0]:
                    stats = routing_statistics(run.model, parquet_dataset(paths["test"], run.spec, 4096))
                    cost = {"routing": stats, "expected_flops_per_example": expected_flops(run.model, stats),
                            "latency_us_per_example_batch_1024": 1000 * serving_latency_ms(
                                run.model, run.spec, paths["test"], 1024, 20) / 1024,
                            "parameters": int(run.model.count_params())}
        aucs = [r["test"]["auc"] for r in per_seed]
        losses = [r["test"]["logloss"] for r in per_seed]
        results[name] = {"auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
                         "logloss_mean": float(np.mean(losses)), "logloss_std": float(np.std(losses)),
                         "hyper_parameters": {**hp, "model": model_name}, **cost, "per_seed": per_seed, "cpu": cpu}
        print(f"{name:26s} AUC {np.mean(aucs):.4f} ± {np.std(aucs):.4f} logloss {np.mean(losses):.4f} "
              f"FLOPs {cost['expected_flops_per_example']:,.0f} "
              f"{cost['latency_us_per_example_batch_1024']:.1f} us/ex exits {cost['routing']['exit_depths']}",
              flush=True)
        record(done=False)
    if singles and all(len(v) == len(DEFAULT_EXPERTS) for v in singles.values()):
        per_seed = [evaluate(labels, np.mean(predictions, axis=0)) for predictions in singles.values()]
        results["ensemble_of_singles"] = {
            "auc_mean": float(np.mean([m["auc"] for m in per_seed])),
            "auc_std": float(np.std([m["auc"] for m in per_seed])),
            "logloss_mean": float(np.mean([m["logloss"] for m in per_seed])),
            "logloss_std": float(np.std([m["logloss"] for m in per_seed])),
            "expected_flops_per_example": sum(results[f"only_{e}"]["expected_flops_per_example"]
                                              for e in DEFAULT_EXPERTS)}
    record(done=True)


if __name__ == "__main__":
    main()
