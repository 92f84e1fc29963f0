"""``make bench`` / ``tfctr bench all``: runs every benchmark of the suite one after another (they share the
cores), then renders BENCHMARKS.md and its plots from bench/results (``report.py``).

The suite is sized to finish in about two and a half hours on 2 cores, an hour and a half of it the leaderboard
(seeds and rows are smaller than each script's defaults where the default would not fit; every result records
the exact command that produced it). Each job's
previous result file is removed before it runs, so a failed job leaves a gap, never a stale number. Wall time
per job goes to bench/results/suite.json.

    python bench/all.py [--only kd_dagfm adaensemble] [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from common import BENCH_DIR, RESULTS, machine


@dataclass(frozen=True)
class Job:
    result: str  # bench/results/<result>.json written by the job
    args: tuple[str, ...]  # bench/<script> and its arguments

    @property
    def command(self) -> list[str]:
        return [sys.executable, str(BENCH_DIR / self.args[0]), *self.args[1:]]


ADAENSEMBLE_VARIANTS = ("sparse_k1", "sparse_k2", "sparse_k3", "sparse_k4", "sparse_k3_no_controller",
                        "sparse_k3_routed", "densemoe", "only_dense", "only_cross", "only_pin", "only_conv",
                        "only_attention")
SUITE = (
    Job("leaderboard_adult", ("leaderboard.py", "--datasets", "adult", "--seeds", "0", "1", "2", "--trials", "10",
                              "--name", "leaderboard_adult")),
    Job("leaderboard_synthetic", ("leaderboard.py", "--datasets", "synthetic", "--rows", "200000", "--seeds", "0",
                                  "--synthetic-epochs", "2", "--trials", "6", "--name", "leaderboard_synthetic")),
    Job("leaderboard_synthetic_1m", ("leaderboard.py", "--datasets", "synthetic", "--rows", "1000000", "--seeds", "0",
                                     "--synthetic-epochs", "5", "--tuned", "--name", "leaderboard_synthetic_1m")),
    Job("train_throughput", ("train_throughput.py", "--min-seconds", "6", "--repeats", "3")),
    Job("pipeline", ("pipeline.py",)),  # after train_throughput: it compares itself with the fastest models
    Job("serving", ("serving.py", "--seconds", "2")),
    Job("serving_adaensemble", ("serving.py", "--model", "adaensemble", "--seconds", "2")),
    Job("serving_faults", ("serving_faults.py",)),
    Job("batch1_latency", ("batch1_latency.py",)),
    Job("serving_precision", ("serving_precision.py",)),
    Job("apg", ("apg.py",)),
    Job("quality_v100", ("quality.py", "--seeds", "0", "1")),
    Job("quality_v100_users4_wdl_apg_wdl_dcnv2_apg_dcnv2",
        ("quality.py", "--models", "wdl", "apg_wdl", "dcnv2", "apg_dcnv2", "--user-groups", "4",
         "--seeds", "0", "1", "2")),
    Job("kd_dagfm", ("kd_dagfm.py", "--rows", "60000")),
    Job("adaensemble", ("adaensemble.py", "--rows", "50000", "--seeds", "0", "1",  # 20k rows: nothing learnt
                        "--variants", *ADAENSEMBLE_VARIANTS)),
    Job("optfusion", ("optfusion.py", "--rows", "15000", "--epochs", "2", "--seeds", "0", "1", "2")),
    Job("distributed", ("distributed.py", "--rows", "100000")),
    Job("notebooks", ("notebooks.py",)),  # also renders the executed notebooks to docs/notebooks/
)


def run_suite(jobs) -> dict:
    record = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "jobs": []}
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    suite_start = time.perf_counter()
    for job in jobs:
        (RESULTS / f"{job.result}.json").unlink(missing_ok=True)
        print(f"== {' '.join(job.args)}", flush=True)
        start = time.perf_counter()
        returncode = subprocess.run(job.command, cwd=BENCH_DIR, env=env).returncode
        seconds = time.perf_counter() - start
        produced = (RESULTS / f"{job.result}.json").exists()
        record["jobs"].append({"result": job.result, "command": "python bench/" + " ".join(job.args),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - seconds)),
                               "seconds": seconds, "returncode": returncode, "ok": returncode == 0 and produced})
        print(f"   {seconds / 60:.1f} min, {'ok' if returncode == 0 and produced else 'FAILED'}", flush=True)
    record["seconds"] = time.perf_counter() - suite_start
    return record


def merge(previous: dict, rerun: dict) -> dict:
    """The suite record with the re-run jobs' entries replaced (in suite order); its total is then the sum of
    per-job wall times measured in separate runs, which ``separate_runs`` says."""
    fresh = {j["result"]: j for j in rerun["jobs"]}
    jobs = [fresh.pop(j["result"], j) for j in previous["jobs"]] + list(fresh.values())
    return {**previous, "jobs": jobs, "seconds": sum(j["seconds"] for j in jobs), "separate_runs": True}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=[j.result for j in SUITE], help="run these jobs only")
    parser.add_argument("--list", action="store_true", help="print the suite's commands and exit")
    args = parser.parse_args()
    jobs = [j for j in SUITE if not args.only or j.result in args.only]
    if args.list:
        print("\n".join("python bench/" + " ".join(j.args) for j in jobs))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = run_suite(jobs)
    suite_path = RESULTS / "suite.json"
    if args.only and suite_path.exists():
        record = merge(json.loads(suite_path.read_text()), record)
    suite_path.write_text(json.dumps(record, indent=1))
    from report import write_report

    print(f"wrote {write_report()}")
    failed = [j["result"] for j in record["jobs"] if not j["ok"]]
    print(f"suite: {record['seconds'] / 60:.1f} min" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
