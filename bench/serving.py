"""Serving QPS and latency of ``tfctr serve`` (a real server process on 127.0.0.1) next to the in-process limit.

For 1, 8 and 32 concurrent gRPC clients (threads, one channel each) at request batch 1 and 64, with and without
server-side batching, on an exported DCNv2 (``--model`` serves another registered model, e.g. adaensemble with
its sparse dispatch and early exit): queries/second and p50/p99 latency. The limit is the same
SavedModel signature called in-process on the same batch shape, as the server calls it
(``requests.call_signature``). Target (issue 4): at 32 clients, batch 1,
batching on, at least 50% of the in-process rows/second at that shape.

    python bench/serving.py [--seconds 3] [--model dcnv2]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from common import client_load, synthetic, write_result

from tfctr import models
from tfctr.data.encoding import arrow_to_serving
from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.export import export_saved_model
from tfctr.serving import Client
from tfctr.serving.repository import load_version
from tfctr.serving.requests import call_signature
from tfctr.utils import free_ports


def in_process_rows_per_second(version_dir, raw, batch, seconds):
    loaded = load_version(Path(version_dir).parent, int(Path(version_dir).name))
    feed = {k: v[:batch] for k, v in raw.items()}
    call_signature(loaded, "serving_default", feed)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call_signature(loaded, "serving_default", feed)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--model", default="dcnv2", help="registered model to serve (e.g. adaensemble)")
    args = parser.parse_args()
    name = args.model
    paths = synthetic("criteo_like_200000", 200_000)
    spec = fit_spec(infer_spec(paths["train"], exclude=["true_ctr"]), paths["train"])
    # serving cost does not depend on the weights' values (for adaensemble it does through the routing: its
    # untrained gates spread the examples over experts and depths)
    model = models.build(name, spec)
    table = pq.read_table(paths["test"]).slice(0, 2000)
    raw = arrow_to_serving(table, spec)
    results = {"model": name, "runs": [], "in_process": {}}
    with tempfile.TemporaryDirectory() as base:
        version_dir = export_saved_model(model, spec, base, name)
        for batch in (1, 64):
            results["in_process"][str(batch)] = in_process_rows_per_second(version_dir, raw, batch, args.seconds)
        for batching in (False, True):
            port = free_ports(1)[0]
            command = [str(Path(sys.executable).parent / "tfctr"), "serve", "--model-base-path", base,
                       "--model-name", name, "--port", str(port)] + (["--enable-batching"] if batching else [])
            server = subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            try:
                with Client("127.0.0.1", port, name) as client:
                    client.wait_until_available(process=server)
                for batch in (1, 64):
                    for clients in (1, 8, 32):
                        measured = client_load(port, name, table, clients, batch, args.seconds)
                        limit = results["in_process"][str(batch)]
                        measured.update(batching=batching, batch=batch, clients=clients,
                                        fraction_of_in_process=measured["rows_per_second"] / limit)
                        results["runs"].append(measured)
                        print(f"batching={batching!s:5} batch={batch:3} clients={clients:2}: {measured['qps']:8.0f} "
                              f"QPS  p50 {measured['p50_ms']:6.2f} ms  p99 {measured['p99_ms']:7.2f} ms  "
                              f"{100 * measured['fraction_of_in_process']:5.1f}% of in-process rows/s")
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
    write_result("serving" if name == "dcnv2" else f"serving_{name}", results)


if __name__ == "__main__":
    main()
