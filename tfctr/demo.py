"""``make demo`` / ``tfctr demo``: the main job of tfctr end to end on synthetic data.

synthetic Criteo-like Parquet (known true CTR) -> FeatureSpec fitted on train -> DCNv2 trained with
``model.fit`` -> exact test AUC/logloss next to the Bayes-optimal ones of the same rows -> SavedModel
export in TF Serving's layout -> reload -> predictions on raw test rows equal the in-process ones ->
``tfctr serve`` on the export, gRPC Predict requests from ``tfctr.serving.Client``, the same answers again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from tfctr.data.encoding import arrow_to_serving
from tfctr.data.synthetic import SyntheticConfig, write_synthetic
from tfctr.export import export_saved_model
from tfctr.serving import Client
from tfctr.training import train
from tfctr.training.train import predict_split
from tfctr.utils import free_ports

DEMO_CONFIG = SyntheticConfig(vocabulary_size=50, n_list=1, seed=7)


def run_demo(out_dir="demo_out", train_rows: int = 200_000, epochs: int = 3, check_rows: int = 2048) -> dict:
    """Runs the demo in ``out_dir`` and returns its numbers."""
    out = Path(out_dir)
    print(f"== 1. synthetic data ({train_rows} training rows) -> {out / 'data'}")
    paths = write_synthetic(out / "data", train_rows, 20_000, 20_000, DEMO_CONFIG)

    print("== 2. train DCNv2 with model.fit")
    result = train(paths["train"], paths["valid"], out / "run", model="dcnv2", test=paths["test"], epochs=epochs,
                   batch_size=1024, learning_rate=1e-3, seed=0, verbose=2, overwrite=True)
    test = result.metrics["test"]
    print(f"   test rows {test['model']['rows']}:  AUC {test['model']['auc']:.4f}  logloss "
          f"{test['model']['logloss']:.4f}   |  Bayes-optimal AUC {test['bayes_optimal']['auc']:.4f}  logloss "
          f"{test['bayes_optimal']['logloss']:.4f}   ({result.metrics['training']['examples_per_second']:.0f} "
          "training examples/s)")

    print("== 3. export a TF Serving SavedModel")
    version_dir = export_saved_model(result.model, result.spec, out / "models", "dcnv2")
    print(f"   {version_dir}")

    print("== 4. reload it and compare predictions on raw rows")
    serving = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    rows = pq.read_table(paths["test"]).slice(0, check_rows)
    raw = arrow_to_serving(rows, result.spec)
    served = serving(**{name: tf.constant(values) for name, values in raw.items()})["probability"].numpy()
    in_process = predict_split(result.model, paths["test"], result.spec)[:check_rows]
    max_diff = float(np.max(np.abs(served - in_process)))
    print(f"   {check_rows} raw rows: max |served - in-process| = {max_diff:.2e}")
    if max_diff > 1e-6:
        raise RuntimeError(f"exported predictions differ from in-process ones by {max_diff}")

    print("== 5. tfctr serve + gRPC Predict from the client")
    grpc_diff = _serve_and_compare(out / "models", rows, in_process)
    print(f"   {check_rows} rows over gRPC: max |served - in-process| = {grpc_diff:.2e}")
    if grpc_diff > 1e-6:
        raise RuntimeError(f"gRPC predictions differ from in-process ones by {grpc_diff}")
    print("== demo finished: the exported and served model predicts exactly what the trained model predicts")
    return {"metrics": result.metrics, "export": str(version_dir), "max_abs_diff": max_diff,
            "grpc_max_abs_diff": grpc_diff}


def _serve_and_compare(model_base_path: Path, rows, expected) -> float:
    """Starts ``tfctr serve`` on a free loopback port, predicts ``rows`` over gRPC, stops the server."""
    (port,) = free_ports(1)
    tfctr_cli = [sys.executable, "-m", "tfctr.cli"]
    server = subprocess.Popen(tfctr_cli + ["serve", "--model-base-path", str(model_base_path), "--model-name",
                                           "dcnv2", "--port", str(port)],
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        with Client("127.0.0.1", port, "dcnv2", timeout=30, retries=0) as client:
            print(f"   server on 127.0.0.1:{port}, status {client.wait_until_available(process=server)}")
            served = client.predict(rows)["probability"]
        return float(np.max(np.abs(served - expected)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
