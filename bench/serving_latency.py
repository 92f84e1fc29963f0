"""Serving latency of exported SavedModels, measured in this fresh process (run by
``common.serving_latencies_ms``; not a benchmark of its own).

Every model's ``serving_default`` is called on the first ``batch`` raw rows of the test file, encoding included,
the way ``tfctr serve`` calls it once a request's inputs are decoded and checked (``requests.call_signature``:
from the NumPy arrays, through the version's ``PackedSignature``, to the outputs as NumPy).
The models take turns, round by round, so machine drift falls on all of them alike; the result per model and
batch is the median over all timed calls. Prints ``{name: {batch: ms}}`` as JSON.

    python bench/serving_latency.py --test TEST.parquet --batch 1:200 --batch 1024:30 NAME=EXPORT_DIR ...
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from tfctr.data.encoding import arrow_to_serving  # noqa: E402
from tfctr.features import FeatureSpec  # noqa: E402
from tfctr.serving.repository import load_version  # noqa: E402
from tfctr.serving.requests import call_signature  # noqa: E402

ROUNDS = 5


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--test", required=True)
    parser.add_argument("--batch", action="append", required=True, help="BATCH:CALLS, the calls split over rounds")
    parser.add_argument("models", nargs="+", help="NAME=EXPORT_DIR")
    args = parser.parse_args()
    batches = {int(b): int(n) for b, n in (item.split(":") for item in args.batch)}
    table = pq.read_table(args.test)
    models, feeds = {}, {}
    for item in args.models:
        name, path = item.split("=", 1)
        spec = FeatureSpec.load(os.path.join(path, "assets.extra", "spec.json"))
        models[name] = load_version(Path(path).parent, int(Path(path).name))
        feeds[name] = {b: arrow_to_serving(table.slice(0, b), spec) for b in batches}
        for b in batches:  # warm-up
            call_signature(models[name], "serving_default", feeds[name][b])
    times = {name: {b: [] for b in batches} for name in models}
    for _ in range(ROUNDS):
        for name, loaded in models.items():
            for b, calls in batches.items():
                for _ in range(max(1, calls // ROUNDS)):
                    start = time.perf_counter()
                    call_signature(loaded, "serving_default", feeds[name][b])
                    times[name][b].append((time.perf_counter() - start) * 1000)
    print(json.dumps({name: {b: float(np.median(t)) for b, t in per.items()} for name, per in times.items()}))


if __name__ == "__main__":
    main()
