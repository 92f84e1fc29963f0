"""KD-DAGFM: teacher vs DAGFM student trained alone vs distilled vs fine-tuned (KD-DAGFM+ stage), for a CIN
teacher (xDeepFM's CIN, no DNN) → DAGFM-inner and a CrossNet teacher (DCN-V2 cross network, no DNN) →
DAGFM-outer, over seeds, on synthetic data (with its Bayes-optimal reference) and on UCI Adult when present.

Reported per model: test AUC/logloss (mean ± std over seeds), parameters, forward FLOPs per example (TensorFlow's
profiler, batch-1 graph) and serving latency of the exported SavedModel's ``serving_default`` signature on raw
features, batch 1 and 1024 (median of repeated calls in a fresh process where the models take turns, seed 0's
models). The student is distilled and fine-tuned with ``tfctr distill``'s defaults (``--distill-*`` and
``--finetune-*`` override them); the student trained alone gets as many epochs as both stages at most, each run
stopping early on its validation split as ``train`` does. The batch-1 encoding
floor is the same latency for a logistic regression on the same spec: the raw-feature encoding every served graph
starts with, which bounds any student's batch-1 speed-up by teacher / floor.

    python bench/kd_dagfm.py [--rows 100000] [--seeds 0 1 2] [--teachers cin crossnet] [--datasets adult ...]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import benchmark_datasets, serving_latencies_ms, write_result
from measure import forward_flops_per_example

from tfctr.data import parquet_dataset
from tfctr.defaults import DISTILL_EPOCHS, DISTILL_LEARNING_RATE, FINETUNE_EPOCHS, FINETUNE_LEARNING_RATE
from tfctr.models import build
from tfctr.training import distill, train

TEACHERS = {
    "cin": ("xdeepfm", {"cin_layer_sizes": [128, 128], "cin_split_half": False, "hidden_units": []}, "inner"),
    "crossnet": ("dcnv2", {"num_layers": 3, "hidden_units": []}, "outer"),
}
STAGES = ("teacher", "alone", "distilled", "finetuned")


def costs(runs, test_path):
    """Parameters, FLOPs and serving latency of the teacher and the fine-tuned student, and the batch-1 encoding
    floor (an untrained logistic regression on the same spec: its latency does not depend on its weights)."""
    spec = runs["teacher"].spec
    models = {stage: runs[stage].model for stage in ("teacher", "finetuned")}
    latency = serving_latencies_ms({**models, "floor": build("lr", spec)}, spec, test_path, {1: 200, 1024: 30})
    x = next(iter(parquet_dataset(test_path, spec, 1, with_label=False)))
    x = {k: v.numpy() for k, v in x.items()}
    out = {stage: {"parameters": int(model.count_params()),
                   "forward_flops_per_example": forward_flops_per_example(model, x),
                   "latency_ms_batch_1": latency[stage][1], "latency_ms_batch_1024": latency[stage][1024]}
           for stage, model in models.items()}
    return out, latency["floor"][1]


def one_seed(paths, teacher_name, seed, args, work: Path):
    model, hp, interaction = TEACHERS[teacher_name]
    common = dict(test=paths["test"], batch_size=args.batch_size, seed=seed, verbose=0)
    times = {}
    start = time.perf_counter()
    teacher = train(paths["train"], paths["valid"], work / "teacher", model=model, epochs=args.teacher_epochs,
                    learning_rate=args.learning_rate, hyper_params=dict(hp, embedding_dim=16), **common)
    times["teacher"] = time.perf_counter() - start
    start = time.perf_counter()
    schedule = {k: v for k, v in (("epochs", args.distill_epochs), ("finetune_epochs", args.finetune_epochs),
                                  ("learning_rate", args.distill_learning_rate),
                                  ("finetune_learning_rate", args.finetune_learning_rate)) if v is not None}
    kd = distill(teacher, paths["train"], paths["valid"], work / "kd", student_params={
        "interaction_type": interaction, "num_layers": 3}, **schedule, **common)
    times["distill_and_finetune"] = time.perf_counter() - start
    start = time.perf_counter()
    alone_epochs = (args.distill_epochs or DISTILL_EPOCHS) + (args.finetune_epochs or FINETUNE_EPOCHS)
    alone = train(paths["train"], paths["valid"], work / "alone", model="dagfm", epochs=alone_epochs,
                  hyper_params=dict(interaction_type=interaction, num_layers=3, embedding_dim=16), **common,
                  **({"learning_rate": args.distill_learning_rate} if args.distill_learning_rate else {}))
    times["alone"] = time.perf_counter() - start
    runs = {"teacher": teacher, "alone": alone, "distilled": kd.distilled, "finetuned": kd.finetuned}
    return {stage: run.metrics["test"] for stage, run in runs.items()}, runs, times


def summarise(per_seed):
    out = {}
    for stage in STAGES:
        aucs = [m[stage]["model"]["auc"] for m in per_seed]
        losses = [m[stage]["model"]["logloss"] for m in per_seed]
        out[stage] = {"auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
                      "logloss_mean": float(np.mean(losses)), "logloss_std": float(np.std(losses))}
    if "bayes_optimal" in per_seed[0]["teacher"]:
        out["bayes_optimal"] = per_seed[0]["teacher"]["bayes_optimal"]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--teachers", nargs="*", default=sorted(TEACHERS), choices=sorted(TEACHERS))
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    # the student's schedule: distill()'s defaults (what `tfctr distill` runs) unless given
    parser.add_argument("--distill-learning-rate", type=float)
    parser.add_argument("--finetune-learning-rate", type=float)
    parser.add_argument("--distill-epochs", type=int)
    parser.add_argument("--finetune-epochs", type=int)
    parser.add_argument("--no-adult", action="store_true")
    parser.add_argument("--datasets", nargs="*", help="which datasets and in which order (default: synthetic_v100, "
                        "then adult when present)")
    parser.add_argument("--result", default="kd_dagfm", help="bench/results/RESULT.json")
    args = parser.parse_args()
    datasets = benchmark_datasets(args.rows, adult=not args.no_adult)
    if args.datasets:
        unknown = sorted(set(args.datasets) - set(datasets))
        if unknown:
            raise SystemExit(f"--datasets: {unknown} not among {sorted(datasets)}")
        datasets = {name: datasets[name] for name in args.datasets}
    # the schedule that ran: the options given, distill()'s defaults for the rest
    schedule = {"distill_epochs": args.distill_epochs or DISTILL_EPOCHS,
                "distill_learning_rate": args.distill_learning_rate or DISTILL_LEARNING_RATE,
                "finetune_epochs": args.finetune_epochs or FINETUNE_EPOCHS,
                "finetune_learning_rate": args.finetune_learning_rate or FINETUNE_LEARNING_RATE}
    results = {}
    for data_name, paths in datasets.items():
        for teacher_name in args.teachers:
            per_seed, all_times = [], []
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    metrics, runs, times = one_seed(paths, teacher_name, seed, args, Path(tmp))
                    per_seed.append(metrics)
                    all_times.append(times)
                    if seed == args.seeds[0]:
                        cost, floor = costs(runs, paths["test"])
                print(data_name, teacher_name, seed, "logloss",
                      {s: round(m["model"]["logloss"], 4) for s, m in metrics.items()}, flush=True)
            summary = summarise(per_seed)
            speedup = {f"batch_{b}": cost["teacher"][f"latency_ms_batch_{b}"] / cost["finetuned"][
                f"latency_ms_batch_{b}"] for b in (1, 1024)}
            results.setdefault(data_name, {})[teacher_name] = {
                "student": f"dagfm-{TEACHERS[teacher_name][2]}", "summary": summary, "cost": cost,
                "student_speedup": speedup, "encoding_floor_ms_batch_1": floor, "seconds": all_times,
                "per_seed": per_seed}
            print(data_name, teacher_name, {s: round(v["auc_mean"], 4) for s, v in summary.items()
                                            if "auc_mean" in v}, "speedup", speedup, flush=True)
            # written after every teacher, so a run stopped early keeps what it measured
            done = sum(len(teachers) for teachers in results.values())
            write_result(args.result, {"rows": args.rows, "seeds": args.seeds, "args": {**vars(args), **schedule},
                                       "datasets": results,
                                       "complete": done == len(datasets) * len(args.teachers)})


if __name__ == "__main__":
    main()
