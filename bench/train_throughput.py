"""Training throughput, FLOP utilisation, peak memory and inference latency per model, tfctr next to DeepCTR.

Configuration (issue 3): 1M synthetic Criteo-like rows (39 fields, all embedded), D = 16, batch 4096, Adam 1e-3;
DNNs 256-128-64; DCNv2 = 3 full-rank cross layers parallel to the DNN; xDeepFM with CIN 32-32 and 128-128;
AutoInt 3 layers × 2 heads × 8. Inputs are encoded once (``bench/.data/encoded_*.npz``) and fed from memory, so
the model, not the input pipeline, is measured. Every model runs in its own process (peak RSS is per process),
one at a time. FLOP utilisation = 3 × forward FLOPs per example × examples/s ÷ the float32 matmul rate measured
in the same run. DeepCTR runs in ``bench/.venv-deepctr`` (``make bench-deepctr-venv``) when it exists.

``--against fuxictr`` measures FuxiCTR (PyTorch, ``bench/.venv-fuxictr``, ``make bench-fuxictr-venv``) instead, on
the models it has a twin for here (dcnv2, deepfm, wdl; ``bench/fuxictr_twin.py``), written to
``train_throughput_fuxictr.json``. FuxiCTR's training step clips the gradient at global norm 10, so the tfctr side
does too there (``tfctr train``'s own default), where against DeepCTR neither side clips.

A shared VM's speed drifts by tens of percent within minutes, so with ``--repeats R`` every model is measured in R
rounds, tfctr and DeepCTR back to back in each round: each side reports its median round, the ratio is the median
of the per-round ratios, and the matmul peak is re-measured before every round (FLOP utilisation uses its median).

    python bench/train_throughput.py [--models dcnv2 xdeepfm_cin32 ...] [--rows 1000000] [--repeats 3]

``--precision both`` measures tfctr in float32 and in mixed precision (bfloat16 on a CPU, float16 on a GPU) back
to back in every round instead, the ratio per round in ``mixed_ratio_runs``: on a CPU with AVX512-BF16/AMX the
matmul-bound models are expected to gain, on one without (the JSON's ``bfloat16_hardware``) to lose.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import BENCH_DIR, DATA, encoded_split, synthetic, write_result

HIDDEN = (256, 128, 64)
# name -> (tfctr model, tfctr hyper-parameters); bench/deepctr_throughput.py has the DeepCTR twin of each
CONFIGS = {
    "lr": ("lr", {}),
    "wdl": ("wdl", {"hidden_units": HIDDEN}),
    "deepfm": ("deepfm", {"hidden_units": HIDDEN}),
    "dcn": ("dcn", {"hidden_units": HIDDEN}),
    "dcnv2": ("dcnv2", {"hidden_units": HIDDEN, "structure": "parallel", "num_layers": 3}),
    "xdeepfm_cin32": ("xdeepfm", {"hidden_units": HIDDEN, "cin_layer_sizes": (32, 32)}),
    "xdeepfm_cin128": ("xdeepfm", {"hidden_units": HIDDEN, "cin_layer_sizes": (128, 128)}),
    "autoint": ("autoint", {"hidden_units": HIDDEN, "num_layers": 3, "num_heads": 2, "head_dim": 8}),
    "xdeepint": ("xdeepint", {"hidden_units": HIDDEN}),
    "fibinet": ("fibinet", {"hidden_units": HIDDEN}),
    "pnn": ("pnn", {"hidden_units": HIDDEN}),
}
# tfctr-only configurations (no DeepCTR or FuxiCTR twin): measured when named, e.g. with --precision both
CONFIGS_WITHOUT_TWIN = {"apg_dcnv2": ("apg_dcnv2", {"hidden_units": HIDDEN, "structure": "parallel", "num_layers": 3})}
# the library measured next to tfctr: its venv's python, its twin of run_one, and the global norm its training
# step clips the gradient at (None: it does not; the tfctr side then clips at the same norm)
COMPETITORS = {
    "deepctr": (BENCH_DIR / ".venv-deepctr" / "bin" / "python", "deepctr_throughput.py", None),
    "fuxictr": (BENCH_DIR / ".venv-fuxictr" / "bin" / "python", "fuxictr_twin.py", 10.0),
}


def encoded_data(rows: int) -> Path:
    """1M Criteo-like rows encoded to model ids once, shared by tfctr and DeepCTR runs."""
    path = DATA / f"encoded_criteo_like_{rows}.npz"
    if not path.exists():
        from tfctr.data.fitting import fit_spec, infer_spec

        paths = synthetic(f"criteo_like_{rows}", rows, 1000, 1000)
        spec = fit_spec(infer_spec(paths["train"], exclude=["true_ctr"]), paths["train"])
        columns, labels = encoded_split(paths["train"], spec)
        arrays = {f"x_{k}": v for k, v in columns.items()}
        sizes = np.array([spec[k].vocabulary_size for k in columns])
        np.savez(path, label=labels, names=np.array(list(columns)), sizes=sizes, **arrays)
        (DATA / f"spec_criteo_like_{rows}.json").write_text(spec.to_json())
    return path


def load_encoded(path: Path):
    data = np.load(path)
    inputs = {str(name): data[f"x_{name}"] for name in data["names"]}
    return inputs, data["label"], {str(n): int(s) for n, s in zip(data["names"], data["sizes"])}


def run_one(name: str, data_path: Path, batch_size: int, embedding_dim: int, min_seconds: float,
            mixed: bool = False, clipnorm: float | None = None) -> dict:
    import tensorflow as tf
    from measure import measure_model

    from tfctr import models
    from tfctr.features import FeatureSpec
    from tfctr.training.distribute import precision

    inputs, labels, _ = load_encoded(data_path)
    spec = FeatureSpec.load(DATA / data_path.name.replace("encoded_", "spec_").replace(".npz", ".json"))
    model_name, hp = {**CONFIGS, **CONFIGS_WITHOUT_TWIN}[name]
    if model_name != "lr":
        hp = {**hp, "embedding_dim": embedding_dim}
    with precision(mixed):  # mixed: float16 on a GPU, bfloat16 on a CPU, as tfctr train --mixed-precision
        model = models.build(model_name, spec, **hp)
    model.compile(tf.keras.optimizers.Adam(1e-3, global_clipnorm=clipnorm), "binary_crossentropy")
    return measure_model(model, inputs, labels, batch_size, min_seconds)


def _subprocess(python, script, name, data_path, args, mixed=False, clipnorm=None) -> dict:
    command = [str(python), str(BENCH_DIR / script), "--one", name, "--data", str(data_path),
               "--batch-size", str(args.batch_size), "--embedding-dim", str(args.embedding_dim),
               "--min-seconds", str(args.min_seconds)] + (["--mixed"] if mixed else [])
    if clipnorm is not None:
        command += ["--clipnorm", str(clipnorm)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=BENCH_DIR,
                          env={**__import__("os").environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  {script} {name} failed:\n{done.stderr[-2000:]}")
        return {"error": done.stderr[-500:]}
    return json.loads(lines[-1])


def _median_round(runs: list) -> dict:
    """The run with the median examples/second (the lower middle one for an even count), with every round's
    examples/second attached; a failed or unsupported side is returned as it came."""
    timed = sorted((r for r in runs if "examples_per_second" in r), key=lambda r: r["examples_per_second"])
    if not timed:
        return runs[-1]
    return {**timed[(len(timed) - 1) // 2], "examples_per_second_runs": [r["examples_per_second"] for r in timed]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--models", nargs="*", default=list(CONFIGS), choices=[*CONFIGS, *CONFIGS_WITHOUT_TWIN])
    parser.add_argument("--against", choices=[*COMPETITORS, "none"], default="deepctr",
                        help="the library measured back to back with tfctr (when its venv exists)")
    parser.add_argument("--no-deepctr", action="store_true", help="the same as --against none")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per model (tfctr and DeepCTR back to back)")
    parser.add_argument("--min-seconds", type=float, default=15.0, help="timed training per model (at most 40 steps)")
    parser.add_argument("--precision", choices=["float32", "mixed", "both"], default="float32",
                        help="tfctr's precision; both: float32 and mixed back to back in every round (no DeepCTR), "
                             "written to train_throughput_precision.json")
    parser.add_argument("--result", help="bench/results/RESULT.json (default: train_throughput, "
                        "train_throughput_precision or train_throughput_fuxictr, by what is measured)")
    parser.add_argument("--mixed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clipnorm", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.data), args.batch_size, args.embedding_dim, args.min_seconds,
                                 args.mixed, args.clipnorm)))
        return

    from measure import matmul_peak_flops

    data_path = encoded_data(args.rows)
    against = "none" if args.no_deepctr or args.precision != "float32" else args.against
    other_python, other_script, clipnorm = COMPETITORS.get(against, (None, None, None))
    if other_python is not None and not other_python.exists():
        print(f"{other_python} does not exist: tfctr alone (make bench-{against}-venv)")
        against, clipnorm = "none", None
    sides = {}
    if args.precision in ("float32", "both"):
        sides["tfctr"] = (sys.executable, "train_throughput.py", False)
    if args.precision in ("mixed", "both"):
        sides["tfctr_mixed"] = (sys.executable, "train_throughput.py", True)
    if against != "none":
        sides[against] = (other_python, other_script, False)
    results, peaks = {}, []
    for name in args.models:
        rounds = []
        for _ in range(args.repeats):
            peaks.append(matmul_peak_flops())
            rounds.append({side: _subprocess(python, script, name, data_path, args, mixed, clipnorm)
                           for side, (python, script, mixed) in sides.items()})
            print(f"{name:15s} round {len(rounds)}: " + "  ".join(
                f"{side} {measured.get('examples_per_second', float('nan')):,.0f} ex/s"
                for side, measured in rounds[-1].items()), flush=True)
        entry = {side: _median_round([r[side] for r in rounds]) for side in sides}
        if against != "none":
            ratios = [r["tfctr"]["examples_per_second"] / r[against]["examples_per_second"] for r in rounds
                      if "examples_per_second" in r["tfctr"] and "examples_per_second" in r[against]]
            if ratios:
                entry["ratio_runs"] = ratios
        if args.precision == "both":
            entry["mixed_ratio_runs"] = [
                r["tfctr_mixed"]["examples_per_second"] / r["tfctr"]["examples_per_second"] for r in rounds
                if "examples_per_second" in r["tfctr"] and "examples_per_second" in r["tfctr_mixed"]]
        results[name] = entry
    peak = float(np.median(peaks))
    print(f"matmul peak: median {peak / 1e9:.1f} GFLOP/s over {len(peaks)} measurements "
          f"({min(peaks) / 1e9:.0f}-{max(peaks) / 1e9:.0f})")
    for name, entry in results.items():
        for side in sides:
            measured = entry[side]
            if "train_flops_per_example" in measured:  # not counted for FuxiCTR's PyTorch graph
                measured["fraction_of_matmul_peak"] = (measured["examples_per_second"]
                                                       * measured["train_flops_per_example"] / peak)
                print(f"{name:15s} {side:8s} {measured['examples_per_second']:10,.0f} ex/s  "
                      f"{100 * measured['fraction_of_matmul_peak']:5.1f}% of peak  "
                      f"{measured['peak_rss_mb']:7,.0f} MB RSS  latency {measured['latency_ms_batch_1']:.2f} ms (1) "
                      f"{measured['latency_ms_batch_1024']:.2f} ms (1024)")
        if "ratio_runs" in entry:
            print(f"{name:15s} tfctr / {against} per round: {', '.join(f'{r:.2f}' for r in entry['ratio_runs'])}")
    result_name = args.result or ("train_throughput_precision" if args.precision != "float32" else
                                  "train_throughput_fuxictr" if against == "fuxictr" else "train_throughput")
    write_result(result_name, {
        "precision": args.precision, "rows": args.rows, "batch_size": args.batch_size,
        "min_seconds": args.min_seconds, "embedding_dim": args.embedding_dim, "matmul_peak_flops": peak,
        "matmul_peak_runs": peaks, "repeats": args.repeats, "against": against, "deepctr": against == "deepctr",
        "clipnorm": clipnorm, "rss_measure": "VmHWM", "models": results})


if __name__ == "__main__":
    main()
