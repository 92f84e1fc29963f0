"""The GPU check: the models of the mission trained under ``--strategy mirrored`` in float32 and in mixed
precision on one machine, the distiller too, and an exported model's CPU predictions against the model's own.

(a) dcnv2, xdeepfm (CIN 128-128), apg_dcnv2 and adaensemble, each trained by ``tfctr.training.train`` under
    ``strategy="mirrored"`` in float32 and with ``mixed_precision=True`` (float16 on a GPU, bfloat16 on a CPU), and
    ``distill`` (DAGFM-inner student of the xdeepfm teacher) in both precisions;
(b) for each: training examples/s, wall seconds and test AUC / logloss, float32 next to mixed;
(c) the mixed and float32 dcnv2 exported by ``tfctr export``, loaded in a CPU-only process (``CUDA_VISIBLE_DEVICES``
    empty) and run on the test rows: the largest |Δ probability| against the trained model's own predictions on
    the training device, within ``TOLERANCE`` (float32: TensorFloat-32 matmuls on recent GPUs; mixed: float16
    arithmetic on one side);
(d) everything into ``bench/results/gpu_check.json`` (``--out``), with the devices and the CPU's flags.

``bash bench/gpu_check.sh`` runs it (1M synthetic rows, batch 16384, one epoch: a few minutes on one GPU);
``--cpu-smoke`` runs the same code on a few thousand rows with tiny models on the CPU, as the test suite does, so
the check is known to work before a GPU is there to run it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from common import machine, synthetic, write_result  # noqa: E402

import tfctr  # noqa: E402,F401
from tfctr.data.synthetic import SyntheticConfig, write_synthetic  # noqa: E402
from tfctr.training import distill, train  # noqa: E402
from tfctr.training.train import predict_split  # noqa: E402

TOLERANCE = {"float32": 2e-3, "mixed": 1e-2}  # max |Δ probability|, exported on CPU vs trained model
MODELS = {
    "dcnv2": {},
    "xdeepfm": {"cin_layer_sizes": [128, 128]},
    "apg_dcnv2": {},
    "adaensemble": {},
}
SMOKE_MODELS = {"xdeepfm": {"cin_layer_sizes": [4], "hidden_units": [8], "embedding_dim": 4}}
EXPORTED = {"full": "dcnv2", "smoke": "xdeepfm"}
PRECISIONS = {"float32": False, "mixed": True}

_CPU_PREDICT = """
import json, sys
import numpy as np, pyarrow.parquet as pq, tensorflow as tf
import tfctr
from tfctr.data.encoding import arrow_to_serving
from tfctr.features import FeatureSpec
test, *pairs = sys.argv[1:]
table = pq.read_table(test)
for version, out in zip(pairs[::2], pairs[1::2]):
    spec = FeatureSpec.load(f"{version}/assets.extra/spec.json")
    serving = tf.saved_model.load(version).signatures["serving_default"]
    raw = arrow_to_serving(table, spec)
    np.save(out, serving(**{k: tf.constant(v) for k, v in raw.items()})["probability"].numpy())
print(json.dumps({"devices": [d.device_type for d in tf.config.list_logical_devices()]}))
"""


def cpu_predictions(versions: dict, test: str, work: Path) -> tuple[dict, list]:
    """Each exported model's probabilities on ``test``, computed in one process that sees no GPU, and that
    process's devices."""
    outs = {key: work / f"cpu_{key}.npy" for key in versions}
    pairs = [str(item) for key in versions for item in (versions[key], outs[key])]
    done = subprocess.run([sys.executable, "-c", _CPU_PREDICT, test, *pairs],
                          capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if done.returncode != 0:
        raise RuntimeError(f"CPU prediction failed: {done.stderr[-2000:]}")
    return {key: np.load(out) for key, out in outs.items()}, json.loads(done.stdout.strip().splitlines()[-1])["devices"]


def run(args) -> dict:
    import tensorflow as tf

    from tfctr.export import export_saved_model

    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    if args.cpu_smoke:
        paths = write_synthetic(work / "data", args.rows, args.rows // 4, args.rows // 4,
                                SyntheticConfig(n_categorical=6, n_numeric=2, vocabulary_size=20))
        models, student = SMOKE_MODELS, {"interaction_type": "inner", "num_layers": 1}
    else:
        paths = synthetic(f"criteo_like_{args.rows}", args.rows, 100_000, 100_000)
        models, student = MODELS, {"interaction_type": "inner", "num_layers": 3}
    common = dict(test=paths["test"], epochs=args.epochs, batch_size=args.batch_size, strategy="mirrored",
                  verbose=0, patience=1)
    result = {"rows": args.rows, "batch_size": args.batch_size, "epochs": args.epochs, "cpu_smoke": args.cpu_smoke,
              "devices": [d.name for d in tf.config.list_logical_devices() if d.device_type in ("GPU", "CPU")],
              "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                       for g in tf.config.list_physical_devices("GPU")],
              "training": {}, "distill": {}, "export": {}}
    runs = {}
    for name, hp in models.items():
        for precision, mixed in PRECISIONS.items():
            start = time.perf_counter()
            run_ = train(paths["train"], paths["valid"], work / f"{name}_{precision}", model=name,
                         mixed_precision=mixed, hyper_params=hp, **common)
            runs[name, precision] = run_
            test = run_.metrics["test"]["model"]
            result["training"].setdefault(name, {})[precision] = {
                "examples_per_second": run_.metrics["training"]["examples_per_second"],
                "seconds": time.perf_counter() - start, "auc": test["auc"], "logloss": test["logloss"]}
            print(f"{name:12} {precision:7} {result['training'][name][precision]['examples_per_second']:10.0f} ex/s "
                  f"AUC {test['auc']:.4f} logloss {test['logloss']:.4f}", flush=True)
    for precision, mixed in PRECISIONS.items():
        start = time.perf_counter()
        kd = distill(runs["xdeepfm", precision], paths["train"], paths["valid"], work / f"kd_{precision}",
                     student_params=student, epochs=args.epochs, finetune_epochs=0 if args.cpu_smoke else 1,
                     mixed_precision=mixed,
                     **{k: v for k, v in common.items() if k != "epochs"})
        final = kd.finetuned or kd.distilled
        result["distill"][precision] = {"seconds": time.perf_counter() - start,
                                        "auc": final.metrics["test"]["model"]["auc"],
                                        "logloss": final.metrics["test"]["model"]["logloss"]}
        print(f"distill      {precision:7} AUC {result['distill'][precision]['auc']:.4f}", flush=True)
    exported = EXPORTED["smoke" if args.cpu_smoke else "full"]
    versions = {precision: export_saved_model(runs[exported, precision], None, work / "models",
                                              f"{exported}_{precision}") for precision in PRECISIONS}
    on_cpu, cpu_devices = cpu_predictions(versions, paths["test"], work)
    for precision in PRECISIONS:
        run_ = runs[exported, precision]
        on_device = predict_split(run_.model, paths["test"], run_.spec)
        gap = float(np.max(np.abs(on_cpu[precision] - on_device)))
        result["export"][precision] = {"model": exported, "max_abs_probability_gap": gap,
                                       "tolerance": TOLERANCE[precision], "cpu_process_devices": cpu_devices,
                                       "within_tolerance": gap <= TOLERANCE[precision]}
        print(f"export       {precision:7} max |Δp| {gap:.2e} (tolerance {TOLERANCE[precision]})", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="a few thousand rows, tiny models, on the CPU")
    parser.add_argument("--rows", type=int, help="training rows (default 1,000,000; 2,000 with --cpu-smoke)")
    parser.add_argument("--batch-size", type=int, help="default 16384 (256 with --cpu-smoke)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", help="result JSON (default bench/results/gpu_check.json)")
    args = parser.parse_args()
    args.rows = args.rows or (2_000 if args.cpu_smoke else 1_000_000)
    args.batch_size = args.batch_size or (256 if args.cpu_smoke else 16_384)
    result = run(args)
    failed = [p for p, e in result["export"].items() if not e["within_tolerance"]]
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), **result}, indent=1))
    else:
        write_result("gpu_check", result)
    if failed:
        sys.exit(f"exported predictions beyond tolerance: {failed}")


if __name__ == "__main__":
    main()
