"""Framework-neutral measurements of a compiled tf.keras CTR model (used for tfctr and DeepCTR alike, so both
are measured by the same code): training examples/second, inference latency, FLOPs, peak RSS, matmul peak.

No tfctr import here: the DeepCTR side runs in its own virtual environment.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from rss import peak_rss_mb


def matmul_peak_flops(n: int = 4096, repeats: int = 20) -> float:
    """FLOP/s of a float32 n×n matmul on this machine (the reference for FLOP utilisation)."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        product(a, b).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def forward_flops_per_example(model, inputs: dict) -> float:
    """Forward FLOPs of one example, counted by TensorFlow's profiler on the batch-1 graph."""
    specs = {k: tf.TensorSpec([1, *v.shape[1:]], tf.as_dtype(v.dtype)) for k, v in inputs.items()}
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def batches(inputs: dict, labels: np.ndarray, batch_size: int):
    rows = len(labels)
    for start in range(0, rows - batch_size + 1, batch_size):
        yield ({k: tf.constant(v[start:start + batch_size]) for k, v in inputs.items()},
               tf.constant(labels[start:start + batch_size]))


def training_examples_per_second(model, inputs: dict, labels: np.ndarray, batch_size: int,
                                 warmup: int = 3, min_seconds: float = 15.0, max_steps: int = 40) -> dict:
    """Times ``train_on_batch`` on consecutive batches after ``warmup`` steps, for at least ``min_seconds`` or
    ``max_steps`` steps (whichever comes first, at least 3 timed steps)."""
    stream = batches(inputs, labels, batch_size)
    for _ in range(warmup):
        model.train_on_batch(*next(stream))
    steps, start = 0, time.perf_counter()
    for x, y in stream:
        model.train_on_batch(x, y)
        steps += 1
        elapsed = time.perf_counter() - start
        if steps >= max_steps or (steps >= 3 and elapsed >= min_seconds):
            break
    return {"examples_per_second": steps * batch_size / (time.perf_counter() - start), "timed_steps": steps}


def inference_latency_ms(model, inputs: dict, batch_size: int, repeats: int = 30) -> float:
    """Median wall time (ms) of one ``model(x, training=False)`` call on a batch, as a traced function."""
    x = {k: tf.constant(v[:batch_size]) for k, v in inputs.items()}
    predict = tf.function(lambda batch: model(batch, training=False))
    predict(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.flatten(predict(x))[0].numpy()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def measure_model(model, inputs: dict, labels: np.ndarray, batch_size: int, min_seconds: float = 15.0) -> dict:
    """Every measurement of one compiled model: training speed, parameters, FLOPs, latency, peak RSS."""
    result = training_examples_per_second(model, inputs, labels, batch_size, min_seconds=min_seconds)
    result.update(parameters=model.count_params(),
                  train_flops_per_example=3 * forward_flops_per_example(model, inputs),
                  latency_ms_batch_1=inference_latency_ms(model, inputs, 1),
                  latency_ms_batch_1024=inference_latency_ms(model, inputs, 1024),
                  peak_rss_mb=peak_rss_mb())
    return result
