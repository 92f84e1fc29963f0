"""Batch-1 serving latency on the 39-field Criteo-like spec: the raw-feature encoding floor, a CIN teacher and its
DAGFM student, in-process and through ``tfctr serve``.

Online CTR serving is dominated by small requests, where a served graph's cost is its number of ops and the
calls around it rather than its arithmetic. Every model here is untrained (latency does not depend on the
weights' values) and exported with ``tfctr export``'s graph (encoding inside):

* ``floor``: a logistic regression, i.e. little more than the encoding of the 26 categorical and 13 numeric raw
  features (``RawFeatureEncoder``) that every served tfctr graph starts with;
* ``teacher``: xDeepFM's CIN 128-128 without MLP (the KD-DAGFM benchmark's teacher); ``student``: DAGFM-inner,
  3 layers, D = 16; ``dcnv2`` with its defaults, for scale.

In-process: the median of each exported ``serving_default`` called as ``tfctr serve`` calls it
(``common.serving_latencies_ms``, the models taking turns in one fresh process). Through the server: p50 and p99
of one gRPC client sending batch-1 Predicts one after another to a ``tfctr serve`` process serving all four; the
difference is the server's own cost (request decoding and checks, gRPC) per request.

    python bench/batch1_latency.py [--calls 400]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import serving_latencies_ms, synthetic, write_result

from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.export import export_saved_model
from tfctr.models import build
from tfctr.serving import Client
from tfctr.utils import free_ports

MODELS = {
    "floor": ("lr", {}),
    "teacher": ("xdeepfm", {"cin_layer_sizes": [128, 128], "cin_split_half": False, "hidden_units": [],
                            "embedding_dim": 16}),
    "student": ("dagfm", {"interaction_type": "inner", "num_layers": 3, "embedding_dim": 16}),
    "dcnv2": ("dcnv2", {}),
}


def grpc_latencies_ms(models, spec, table, calls):
    """p50/p99 of sequential batch-1 Predicts through a ``tfctr serve`` process, per model."""
    out = {}
    with tempfile.TemporaryDirectory() as base:
        for name, model in models.items():
            export_saved_model(model, spec, base, name)
        port = free_ports(1)[0]
        command = [str(Path(sys.executable).parent / "tfctr"), "serve", "--model-base-path", base,
                   "--model-name", *models, "--port", str(port)]
        server = subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        try:
            rows = table.slice(0, 1)
            clients = {name: Client("127.0.0.1", port, name, timeout=30) for name in models}
            for client in clients.values():
                client.wait_until_available(process=server)
                for _ in range(20):
                    client.predict(rows)
            times = {name: [] for name in models}
            for _ in range(calls):  # the models take turns, as in-process
                for name, client in clients.items():
                    start = time.perf_counter()
                    client.predict(rows)
                    times[name].append((time.perf_counter() - start) * 1000)
            for client in clients.values():
                client.close()
            out = {name: {"p50_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99))}
                   for name, t in times.items()}
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=400, help="timed batch-1 calls per model")
    args = parser.parse_args()
    paths = synthetic("criteo_like_200000", 200_000)
    spec = fit_spec(infer_spec(paths["train"]), paths["train"])
    models = {name: build(kind, spec, **hp) for name, (kind, hp) in MODELS.items()}
    in_process = serving_latencies_ms(models, spec, paths["test"], {1: args.calls, 1024: 30})
    through_server = grpc_latencies_ms(models, spec, pq.read_table(paths["test"]).slice(0, 10), args.calls)
    results = {"fields": len(spec.features), "models": {name: {"kind": kind, "hyper_parameters": hp}
                                                        for name, (kind, hp) in MODELS.items()},
               "in_process_ms": in_process, "grpc_ms": through_server,
               "student_speedup_batch_1": in_process["teacher"][1] / in_process["student"][1],
               "student_speedup_batch_1024": in_process["teacher"][1024] / in_process["student"][1024]}
    for name in models:
        print(f"{name:8} in-process batch 1 {in_process[name][1]:6.3f} ms  batch 1024 {in_process[name][1024]:7.2f} "
              f"ms  gRPC p50 {through_server[name]['p50_ms']:6.3f} ms", flush=True)
    write_result("batch1_latency", results)


if __name__ == "__main__":
    main()
