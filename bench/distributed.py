"""Training examples/second of ``tfctr train`` under each ``tf.distribute`` strategy, every cluster task a real
process on 127.0.0.1 (``tfctr train`` with its own ``TF_CONFIG``):

* ``single``: one process, no strategy;
* ``multi_worker_1`` / ``multi_worker_2``: MultiWorkerMirroredStrategy with 1 and 2 workers (the global batch is
  the same, so 2 workers each compute half of it and all-reduce the gradients every step);
* ``parameter_server``: a coordinator, 2 workers and 2 parameter servers (asynchronous steps of ``--batch-size``);
* ``mirrored`` (and ``mirrored_mixed``): MirroredStrategy over the local GPUs, with mixed precision; only
  meaningful on a GPU host.

On one 2-core host every task shares the same cores, so no speedup is expected: the point is the overhead of
each strategy. Examples/second are ``tfctr train``'s own (training phase of every epoch, validation excluded,
the first epoch's tracing included).

    python bench/distributed.py [--rows 200000] [--models dcnv2] [--epochs 2] [--batch-size 4096]
        [--setups single multi_worker_1 multi_worker_2 parameter_server]
    python bench/distributed.py --models dcnv2 adaensemble --setups single mirrored mirrored_mixed \\
        --result distributed_gpu                                   # on a GPU host
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CRITEO_LIKE, synthetic, write_result

from tfctr.utils import free_ports

TFCTR = [sys.executable, "-m", "tfctr.cli"]
SETUPS = {
    "single": {"strategy": "default", "cluster": None},
    "multi_worker_1": {"strategy": "multi_worker", "cluster": {"worker": 1}},
    "multi_worker_2": {"strategy": "multi_worker", "cluster": {"worker": 2}},
    "parameter_server": {"strategy": "parameter_server", "cluster": {"chief": 1, "worker": 2, "ps": 2}},
    "mirrored": {"strategy": "mirrored", "cluster": None},
    "mirrored_mixed": {"strategy": "mirrored", "cluster": None, "mixed_precision": True},
}


def run_setup(setup: dict, command: list[str], run_dir: Path) -> dict:
    """Runs ``command`` as every task of the setup's cluster; returns the chief's ``metrics.json``."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = command + ["--strategy", setup["strategy"]] + (["--mixed-precision"] if setup.get("mixed_precision")
                                                             else [])
    if setup["cluster"] is None:
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    else:
        ports = iter(free_ports(sum(setup["cluster"].values())))
        cluster = {job: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for job, n in setup["cluster"].items()}
        tasks = [(job, i) for job, n in setup["cluster"].items() for i in range(n)]
        processes = {}
        for job, i in tasks:
            task_env = {**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": job, "index": i}})}
            processes[(job, i)] = subprocess.Popen(command, env=task_env, stdout=subprocess.DEVNULL)
        trainers = [t for t in tasks if setup["strategy"] == "multi_worker" or t[0] == "chief"]
        try:
            for task in trainers:
                if processes[task].wait() != 0:
                    raise RuntimeError(f"task {task} failed")
        finally:
            for process in processes.values():
                process.kill()
    return json.loads((run_dir / "metrics.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--models", nargs="+", default=["dcnv2"])
    parser.add_argument("--setups", nargs="+", default=["single", "multi_worker_1", "multi_worker_2",
                                                         "parameter_server"], choices=list(SETUPS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--result", default="distributed", help="bench/results/RESULT.json (distributed_gpu on a GPU)")
    args = parser.parse_args()

    # 4 files per split: each of 2 workers reads its own whole files (with one file, every other row)
    config = dataclasses.replace(CRITEO_LIKE, vocabulary_size=100)
    data = synthetic(f"criteo_like_v100_{args.rows}_4files", args.rows, config=config, files_per_split=4)
    results = []
    for model in args.models:
        for name in args.setups:
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = Path(tmp) / "run"
                command = TFCTR + ["train", "--train", data["train"], "--valid", data["valid"], "--model", model,
                                   "--epochs", str(args.epochs), "--patience", str(args.epochs),
                                   "--batch-size", str(args.batch_size), "--embedding-dim", str(args.embedding_dim),
                                   "--verbose", "0", "--out", str(run_dir)]
                start = time.perf_counter()
                metrics = run_setup(SETUPS[name], command, run_dir)
                wall = time.perf_counter() - start
            row = {"model": model, "setup": name, "tasks": SETUPS[name]["cluster"],
                   "examples_per_second": metrics["training"]["examples_per_second"],
                   "wall_seconds": wall, "valid_auc": metrics["valid"]["model"]["auc"],
                   "valid_logloss": metrics["valid"]["model"]["logloss"]}
            results.append(row)
            print(json.dumps(row), flush=True)
    write_result(args.result, {"rows": args.rows, "epochs": args.epochs, "batch_size": args.batch_size,
                                 "embedding_dim": args.embedding_dim, "results": results})


if __name__ == "__main__":
    main()
