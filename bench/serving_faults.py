"""Serving under faults: latency while new versions are exported and swapped in, and memory after a burst of
oversized requests, on a real ``tfctr serve`` process on 127.0.0.1.

1. For 8 and 32 concurrent gRPC clients (batch 1 Predict), QPS and p50/p99/max latency first with nothing else
   happening, then while this process exports a new version of the model every ``--export-every`` seconds (each
   with its warm-up requests, which the server replays before swapping the version in). Every failed request is
   counted; the target is none.
2. The server's resident memory (``VmRSS``) before and after a burst of requests that declare far more rows than
   they carry (refused before decoding) and of requests at the server's row limit (decoded and run): memory must
   come back near its baseline.

    python bench/serving_faults.py [--seconds 8] [--export-every 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from common import client_load, synthetic, write_result
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfctr import models
from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.export import export_saved_model
from tfctr.serving import Client
from tfctr.serving.repository import integer_versions
from tfctr.utils import free_ports

MAX_ROWS = 4096


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def exporting(model, spec, base, name, every, stop, exported):
    """Exports a new version every ``every`` seconds until ``stop``."""
    while not stop.wait(every):
        exported.append(int(export_saved_model(model, spec, base, name).name))


def oversized_request(name, feature, declared_rows):
    """A Predict whose only tensor declares ``declared_rows`` rows and carries one value."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a"],
                                   tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                       dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=declared_rows)]))
    request.inputs[feature].CopyFrom(proto)
    return request


def memory_burst(port, name, table, pid, spec, repeats, base):
    """RSS before, right after and 5 s after a burst of oversized and row-limit requests."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 1 << 30)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with Client("127.0.0.1", port, name) as client:  # the last export served and the old versions gone
        newest = max(integer_versions(Path(base) / name))
        while [v for v, state in client.status() if state == "AVAILABLE"] != [newest]:
            time.sleep(0.2)
    time.sleep(2)
    before = rss_mb(pid)
    codes = {}
    big = pa.concat_tables([table] * (MAX_ROWS // table.num_rows + 1)).slice(0, MAX_ROWS)
    with Client("127.0.0.1", port, name, timeout=60, retries=0) as client:
        for _ in range(repeats):
            for declared in (500_000, 200_000_000):
                try:
                    stub.Predict(oversized_request(name, spec.features[0].name, declared), timeout=30)
                    codes["OK"] = codes.get("OK", 0) + 1
                except grpc.RpcError as err:
                    codes[err.code().name] = codes.get(err.code().name, 0) + 1
            client.predict(big)  # at the limit: decoded and run
            codes["OK_at_limit"] = codes.get("OK_at_limit", 0) + 1
    after = rss_mb(pid)
    time.sleep(5)
    settled = rss_mb(pid)
    channel.close()
    return {"rss_before_mb": before, "rss_after_burst_mb": after, "rss_after_5s_mb": settled,
            "requests": codes, "rows_at_limit": MAX_ROWS}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0, help="each load phase")
    parser.add_argument("--export-every", type=float, default=2.0, help="seconds between exports during load")
    parser.add_argument("--burst", type=int, default=20, help="rounds of the oversized-request burst")
    args = parser.parse_args()
    name = "dcnv2"
    paths = synthetic("criteo_like_200000", 200_000)
    spec = fit_spec(infer_spec(paths["train"], exclude=["true_ctr"]), paths["train"])
    model = models.build(name, spec)
    table = pq.read_table(paths["test"]).slice(0, 1000)
    results = {"model": name, "max_rows_per_request": MAX_ROWS, "load": [], "memory": None}
    with tempfile.TemporaryDirectory() as base:
        export_saved_model(model, spec, base, name)
        port = free_ports(1)[0]
        command = [str(Path(sys.executable).parent / "tfctr"), "serve", "--model-base-path", base, "--model-name",
                   name, "--port", str(port), "--poll-seconds", "0.2", "--max-rows-per-request", str(MAX_ROWS)]
        server = subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        try:
            with Client("127.0.0.1", port, name) as client:
                client.wait_until_available(process=server)
            for clients in (8, 32):
                for during_exports in (False, True):
                    stop, exported = threading.Event(), []
                    exporter = threading.Thread(target=exporting,
                                                args=(model, spec, base, name, args.export_every, stop, exported))
                    if during_exports:
                        exporter.start()
                    measured = client_load(port, name, table, clients, 1, args.seconds)
                    stop.set()
                    if during_exports:
                        exporter.join()
                    measured.update(during_exports=during_exports, versions_exported=len(exported))
                    results["load"].append(measured)
                    print(f"clients={clients:2} exports={len(exported):2}: {measured['qps']:7.0f} QPS  p50 "
                          f"{measured['p50_ms']:6.2f} ms  p99 {measured['p99_ms']:7.2f} ms  max "
                          f"{measured['max_ms']:7.1f} ms  failed {measured['failed']}", flush=True)
            results["memory"] = memory_burst(port, name, table, server.pid, spec, args.burst, base)
            print(f"RSS {results['memory']}", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    tf.keras.backend.clear_session()
    write_result("serving_faults", results)


if __name__ == "__main__":
    main()
