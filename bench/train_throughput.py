"""Training throughput per model and the fraction of the machine's matmul peak its FLOPs reach.

Batch 4096, embedding 16, Criteo-like data (39 fields). Inputs are encoded once and held in memory so the
model, not the input pipeline, is measured. Peak = float32 ``tf.matmul`` of 4096x4096 matrices, measured in
the same run. Model FLOPs per example = forward FLOPs (TensorFlow's profiler on the batch-1 graph) x 3
(forward + backward, the usual estimate).

    python bench/train_throughput.py [--rows 200000] [--models lr wdl deepfm dcn dcnv2]
"""

import argparse
import time

import numpy as np
import tensorflow as tf
from common import synthetic, write_result

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.features import FeatureSpec


def matmul_peak_flops(n=4096, repeats=20) -> float:
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        product(a, b).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def forward_flops_per_example(model) -> float:
    specs = {i.name: tf.TensorSpec([1, *i.shape[1:]], i.dtype) for i in model.inputs}
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--models", nargs="*", default=["lr", "wdl", "deepfm", "dcn", "dcnv2"])
    args = parser.parse_args()
    paths = synthetic(f"criteo_like_{args.rows}", args.rows, 1000, 1000)
    spec = FeatureSpec.infer(paths["train"], exclude=["true_ctr"]).fit(paths["train"])
    features, labels = {}, []
    for x, y in parquet_dataset(paths["train"], spec, 65536):
        for k, v in x.items():
            features.setdefault(k, []).append(v.numpy())
        labels.append(y.numpy())
    features = {k: np.concatenate(v) for k, v in features.items()}
    data = tf.data.Dataset.from_tensor_slices((features, np.concatenate(labels))).batch(args.batch_size).cache()
    for _ in data:  # fill the cache before anything is timed
        pass
    peak = matmul_peak_flops()
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s")
    results = {}
    for name in args.models:
        hp = {} if name == "lr" else {"embedding_dim": args.embedding_dim}
        model = models.build(name, spec, **hp)
        model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
        model.fit(data.take(3), epochs=1, verbose=0)  # trace and warm up
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        speed = args.rows / (time.perf_counter() - start)
        flops = 3 * forward_flops_per_example(model)
        results[name] = {"examples_per_second": speed, "parameters": model.count_params(),
                         "train_flops_per_example": flops, "fraction_of_matmul_peak": speed * flops / peak}
        print(f"{name:8s} {speed:10,.0f} ex/s  {flops / 1e6:7.2f} MFLOP/ex  "
              f"{100 * speed * flops / peak:5.1f}% of peak  {model.count_params():,} params")
    write_result("train_throughput", {"rows": args.rows, "batch_size": args.batch_size,
                                      "embedding_dim": args.embedding_dim, "matmul_peak_flops": peak,
                                      "models": results})


if __name__ == "__main__":
    main()
