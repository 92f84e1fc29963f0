"""APG efficiency (the trend of the paper's Table 5): training time per epoch and hidden-layer parameters of a
plain MLP (base) and APG v1-v5 MLPs, input width 393, K = 4, self-wise, for hidden widths [64, 32, 16] up to
[1024, 512, 256]; and serving latency of folded v5 next to v4 (batch 1 and 1024), which must be within 10%.

Random inputs (only cost is measured); ``--rows`` rows per epoch at batch 256.

    python bench/apg.py [--rows 8192]
"""

import argparse
import time

import numpy as np
import tensorflow as tf
from common import write_result

from tfctr.layers import MLP

WIDTHS = [[64, 32, 16], [256, 128, 64], [512, 256, 128], [1024, 512, 256]]
INPUT = 393
# v1 at [1024, 512, 256] has 763M generator parameters: with gradients and Adam slots that is > 12 GB before
# activations, and the process was OOM-killed on the 24 GB machine; such configurations are reported, not run.
MAX_TRAINABLE_PARAMETERS = 400_000_000


def build(units, version):
    inputs = tf.keras.Input((INPUT,))
    apg = None if version == "base" else {"rank": 4, "version": version, "overparam_dim": 64}
    hidden = MLP(units, apg=apg, name="mlp")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid")(hidden))


def epoch_seconds(model, x, y):
    model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
    model.fit(x[:512], y[:512], batch_size=256, epochs=1, verbose=0)  # trace
    start = time.perf_counter()
    model.fit(x, y, batch_size=256, epochs=1, verbose=0)
    return time.perf_counter() - start


def latency_ms(model, batch, repeats=50):
    fn = tf.function(lambda v: model(v, training=False))
    x = tf.random.normal([batch, INPUT])
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8192)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(args.rows, INPUT)).astype(np.float32)
    y = (np.random.default_rng(1).random(args.rows) < 0.3).astype(np.float32)
    results = {"rows": args.rows, "input": INPUT, "rank": 4, "table5": [], "serving": []}
    for units in WIDTHS:
        for version in ("base", "v1", "v2", "v3", "v4", "v5"):
            model = build(units, version)
            hidden_params = model.get_layer("mlp").count_params()
            if hidden_params > MAX_TRAINABLE_PARAMETERS:  # weights + gradients + Adam slots no longer fit in RAM
                results["table5"].append({"widths": units, "version": version, "epoch_seconds": None,
                                          "hidden_parameters": hidden_params,
                                          "skipped": "does not fit in this machine's memory for training"})
                print(f"{str(units):18s} {version:4s}  skipped   {hidden_params / 1e6:8.3f} M hidden params")
                continue
            seconds = epoch_seconds(model, x, y)
            results["table5"].append({"widths": units, "version": version, "epoch_seconds": seconds,
                                      "hidden_parameters": hidden_params})
            print(f"{str(units):18s} {version:4s} {seconds:8.3f} s/epoch  {hidden_params / 1e6:8.3f} M hidden params")
    for units in (WIDTHS[0], WIDTHS[-1]):
        v5 = build(units, "v5")
        v4_form = tf.keras.Model(v5.inputs, v5.layers[-1](v5.get_layer("mlp").serving_form()(v5.inputs[0])))
        plain_v4 = build(units, "v4")
        for batch in (1, 1024):
            # interleaved rounds, median of the rounds' medians: both see the same machine state
            rounds = [(latency_ms(v4_form, batch), latency_ms(plain_v4, batch)) for _ in range(5)]
            folded, v4 = (float(np.median([r[i] for r in rounds])) for i in (0, 1))
            results["serving"].append({"widths": units, "batch": batch, "folded_v5_ms": folded, "v4_ms": v4,
                                       "ratio": folded / v4})
            print(f"serving {str(units):18s} batch {batch:5d}: folded v5 {folded:.3f} ms, v4 {v4:.3f} ms")
    write_result("apg", results)


if __name__ == "__main__":
    main()
