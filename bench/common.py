"""Shared helpers of the benchmarks: cached synthetic data, machine description, result files."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfctr  # noqa: E402,F401
from tfctr.data.parquet import oracle_column_of  # noqa: E402
from tfctr.data.synthetic import SyntheticConfig, write_synthetic  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
DATA = BENCH_DIR / ".data"
# UCI Adult beside the checkout (../shared/data/adult), or where TFCTR_ADULT_DIR points
ADULT = Path(os.environ.get("TFCTR_ADULT_DIR", BENCH_DIR.parent.parent / "shared" / "data" / "adult"))
CRITEO_LIKE = SyntheticConfig(n_categorical=26, n_numeric=13, vocabulary_size=1000, seed=0)


def synthetic(name: str, n_train: int, n_valid: int = 20_000, n_test: int = 20_000,
              config: SyntheticConfig = CRITEO_LIKE, files_per_split: int = 1) -> dict:
    """Synthetic splits cached under bench/.data/<name> (regenerated when missing)."""
    out = DATA / name
    if files_per_split > 1:
        paths = {s: str(out / s) for s in ("train", "valid", "test")}
    else:
        paths = {s: str(out / f"{s}.parquet") for s in ("train", "valid", "test")}
    # a cache written before the writer marked its true-CTR column in the schema metadata is written again, so
    # that column can never become a feature
    if not all(Path(p).exists() for p in paths.values()) or oracle_column_of(paths["train"]) is None:
        paths = write_synthetic(out, n_train, n_valid, n_test, config, files_per_split=files_per_split)
    return paths


def encoded_split(path, spec) -> tuple[dict, np.ndarray]:
    """One split as the model inputs tfctr's pipeline yields (``{feature: array}``, ids and dense values as the
    model takes them) and its labels, read once so several benchmarks and libraries can share the same rows."""
    from tfctr.data import parquet_dataset

    columns, labels = {}, []
    for x, y in parquet_dataset(path, spec, 65536):
        for k, v in x.items():
            columns.setdefault(k, []).append(v.numpy())
        labels.append(y.numpy())
    return {k: np.concatenate(v) for k, v in columns.items()}, np.concatenate(labels)


def benchmark_datasets(rows: int, adult: bool = True) -> dict:
    """``{"synthetic_v100": splits, "adult": splits}``: Criteo-like synthetic data with 100 values per field and
    ``rows`` training rows, and UCI Adult when it is present and wanted."""
    config = dataclasses.replace(CRITEO_LIKE, vocabulary_size=100)
    datasets = {"synthetic_v100": synthetic(f"criteo_like_v100_{rows}", rows, config=config)}
    if adult and ADULT.exists():
        datasets["adult"] = {s: str(ADULT / f"{s}.parquet") for s in ("train", "valid", "test")}
    return datasets


def serving_latencies_ms(models: dict, spec, test_path, calls: dict) -> dict:
    """Median wall time (ms) of each model's exported ``serving_default`` on the first ``batch`` raw rows of
    ``test_path`` (feature encoding in the graph included), ``{name: {batch: ms}}`` for ``calls = {batch: number
    of timed calls}``. The models are exported and timed in one fresh process (``serving_latency.py``) where they
    take turns round by round: the state a benchmark's training leaves in its own process and drift of the
    machine then fall on every model alike."""
    from tfctr.export import export_saved_model

    with tempfile.TemporaryDirectory() as base:
        exported = [f"{name}={export_saved_model(model, spec, base, name)}" for name, model in models.items()]
        command = [sys.executable, str(BENCH_DIR / "serving_latency.py"), "--test", str(test_path),
                   *(f"--batch={b}:{n}" for b, n in calls.items()), *exported]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"serving_latency.py failed ({done.returncode}): {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: {int(b): ms for b, ms in per.items()} for name, per in measured.items()}


def serving_latency_ms(model, spec, test_path, batch: int, repeats: int) -> float:
    """``serving_latencies_ms`` of one model and one batch size."""
    return serving_latencies_ms({"model": model}, spec, test_path, {batch: repeats})["model"][batch]


def machine() -> dict:
    import tensorflow as tf

    from tfctr.hardware import cpu_features

    cpu = cpu_features()
    return {"cpu": cpu.model, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU")),
            "bfloat16_hardware": cpu.bfloat16, "cpu_flags": " ".join(cpu.flags)}


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    script = Path(sys.argv[0]).resolve()
    argv = [f"bench/{script.name}" if script.parent == BENCH_DIR else sys.argv[0], *sys.argv[1:]]
    record = {"command": shlex.join(["python", *argv]), "machine": machine(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    path.write_text(json.dumps(record, indent=1))
    print(f"wrote {path}")
    return path


def client_load(port: int, name: str, table, clients: int, batch: int, seconds: float) -> dict:
    """``clients`` threads (one gRPC channel each) sending Predicts of ``batch`` rows of ``table`` to
    ``127.0.0.1:port`` for ``seconds``: QPS, rows/s, latency percentiles and the failed requests (counted, the
    first few named), as the serving benchmarks report them."""
    import grpc

    from tfctr.serving import Client

    latencies, failures, stop, lock = [], [], threading.Event(), threading.Lock()

    def worker(offset):
        with Client("127.0.0.1", port, name, timeout=30, retries=0) as client:
            rows = table.slice(offset, batch)
            client.predict(rows)  # metadata fetched and channel warm before timing
            local, failed = [], []
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    client.predict(rows)
                    local.append(time.perf_counter() - start)
                except grpc.RpcError as err:
                    failed.append(f"{err.code().name}: {err.details()[:200]}")
            with lock:
                latencies.extend(local)
                failures.extend(failed)

    threads = [threading.Thread(target=worker, args=(i * batch % 1000,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    ms = np.array(latencies) * 1000
    return {"clients": clients, "qps": len(ms) / seconds, "rows_per_second": len(ms) * batch / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "requests": int(len(ms)), "failed": len(failures),
            "failures": sorted(set(failures))[:5]}
