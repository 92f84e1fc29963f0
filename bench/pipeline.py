"""Input pipeline throughput: rows/second of ``parquet_dataset`` on 1M Criteo-like rows (39 fields).

Target (issue 2): >= 300,000 rows/s on a 2-core machine, and >= 5x the training throughput of the fastest
model (read from bench/results/train_throughput.json when present).

    python bench/pipeline.py [--rows 1000000] [--batch-size 4096]
"""

import argparse
import json
import time

from common import RESULTS, synthetic, write_result

from tfctr.data import parquet_dataset
from tfctr.data.fitting import fit_spec, infer_spec


def rows_per_second(paths, spec, batch_size, shuffle, epochs=2):
    dataset = parquet_dataset(paths, spec, batch_size=batch_size, shuffle=shuffle)
    best = 0.0
    for _ in range(epochs):
        start, rows = time.perf_counter(), 0
        for _, labels in dataset:
            rows += int(labels.shape[0])
        best = max(best, rows / (time.perf_counter() - start))
    return best, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    args = parser.parse_args()
    paths = synthetic(f"criteo_like_{args.rows}", args.rows, 1000, 1000)
    spec = infer_spec(paths["train"], exclude=["true_ctr"])
    start = time.perf_counter()
    fit_spec(spec, paths["train"])
    fit_seconds = time.perf_counter() - start
    results = {"rows": args.rows, "fields": len(spec.features), "batch_size": args.batch_size,
               "spec_fit_rows_per_second": args.rows / fit_seconds}
    for shuffle in (False, True):
        speed, rows = rows_per_second(paths["train"], spec, args.batch_size, shuffle)
        assert rows == args.rows
        results["shuffled" if shuffle else "sequential"] = {"rows_per_second": speed}
        print(f"shuffle={shuffle}: {speed:,.0f} rows/s")
    slowest = min(results["sequential"]["rows_per_second"], results["shuffled"]["rows_per_second"])
    results["target_rows_per_second"] = 300_000
    results["meets_target"] = slowest >= 300_000
    throughput = RESULTS / "train_throughput.json"
    if throughput.exists():
        measured = {name: m["tfctr"]["examples_per_second"]
                    for name, m in json.loads(throughput.read_text())["models"].items()
                    if "examples_per_second" in m.get("tfctr", {})}
        embedding_models = {k: v for k, v in measured.items() if k != "lr"}
        for label, group in (("fastest_model", measured), ("fastest_embedding_model", embedding_models)):
            name = max(group, key=group.get)
            results[label] = {"model": name, "examples_per_second": group[name],
                              "pipeline_ratio": slowest / group[name], "meets_5x": slowest >= 5 * group[name]}
    write_result("pipeline", results)


if __name__ == "__main__":
    main()
