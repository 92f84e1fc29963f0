"""Renders bench/results/*.json as BENCHMARKS.md (tables, each paper's claim next to the measurement, PNG plots
in bench/results/plots/) and the benchmark summary block of README.md. ``bench/all.py`` calls it after the suite.

    python bench/report.py            # rewrite BENCHMARKS.md, the plots and README's summary from the results
    python bench/report.py --stdout   # print the Markdown instead
"""

import argparse
import json
import re
import statistics
from pathlib import Path

from claims import claim_rows
from common import BENCH_DIR, RESULTS

ROOT = BENCH_DIR.parent
PLOTS = RESULTS / "plots"


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _command(result):
    """The command as run from the repository root (older results recorded the script's absolute path)."""
    return re.sub(r"^\S*python\S* \S*?(bench/)?(\w+\.py)", r"python bench/\2", result["command"])


def _machine(result):
    m = result["machine"]
    return f"{m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}; `{_command(result)}`, {result['date']}"


COMPETITOR_NAMES = {"deepctr": "DeepCTR", "fuxictr": "FuxiCTR"}  # train_throughput.py --against


def throughput_table(result):
    against = result.get("against", "deepctr")  # older results measured DeepCTR only
    other = COMPETITOR_NAMES[against]
    peak = result["matmul_peak_flops"] / 1e9
    peaks = result.get("matmul_peak_runs", [])
    rounds = (f"; every model measured in {result['repeats']} rounds, tfctr and {other} back to back: median "
              f"round per side, tfctr / {other} = the median of the rounds' ratios (their range in brackets); "
              f"matmul peak = median of {len(peaks)} measurements, {min(peaks) / 1e9:.0f}-{max(peaks) / 1e9:.0f}"
              if result.get("repeats", 1) > 1 else "")
    clipping = (f"; both sides clip the gradient at global norm {result['clipnorm']:g}" if result.get("clipnorm")
                else "")
    rss = ("" if result.get("rss_measure") == "VmHWM" else
           " Peak RSS in this run was read with getrusage, which Linux floors at the peak of the parent process "
           "(the runner, with TensorFlow and the data loaded): a figure near the column's minimum is that floor, "
           "not the model's (`bench/rss.py`, used since).")
    lines = [f"Training at batch {result['batch_size']}, D = {result['embedding_dim']}, {result['rows']:,} rows; "
             f"float32 matmul peak measured in the run: {peak:.0f} GFLOP/s{rounds}{clipping}. {_machine(result)}"
             f"{rss}", "",
             f"| model | tfctr ex/s | {other} ex/s | tfctr / {other} | tfctr % of matmul peak | tfctr peak RSS MB "
             f"| {other} peak RSS MB | tfctr latency ms (1 / 1024) | {other} latency ms (1 / 1024) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in result["models"].items():
        ours, theirs = entry.get("tfctr", {}), entry.get(against) or {}

        def cell(m, key, fmt):
            return format(m[key], fmt) if key in m else "–"

        ratio = (f"{ours['examples_per_second'] / theirs['examples_per_second']:.2f}×"
                 if "examples_per_second" in ours and "examples_per_second" in theirs else "–")
        runs = entry.get("ratio_runs", [])
        if len(runs) > 1:  # the median of the rounds' ratios, and their range
            ratio = f"{statistics.median(runs):.2f}× ({min(runs):.2f}–{max(runs):.2f})"
        lines.append(
            f"| {name} | {cell(ours, 'examples_per_second', ',.0f')} | {cell(theirs, 'examples_per_second', ',.0f')} "
            f"| {ratio} | {100 * ours.get('fraction_of_matmul_peak', float('nan')):.0f}% "
            f"| {cell(ours, 'peak_rss_mb', ',.0f')} | {cell(theirs, 'peak_rss_mb', ',.0f')} "
            f"| {cell(ours, 'latency_ms_batch_1', '.2f')} / {cell(ours, 'latency_ms_batch_1024', '.1f')} "
            f"| {cell(theirs, 'latency_ms_batch_1', '.2f')} / {cell(theirs, 'latency_ms_batch_1024', '.1f')} |")
    return "\n".join(lines)


def fuxictr_quality_table(result):
    lines = [f"Test AUC / logloss after one epoch on {result['rows']:,} synthetic rows with learnable crosses "
             f"(the 1M leaderboard's splits): AUC mean ± std over seeds {result['seeds']} / mean logloss. "
             f"{_machine(result)}", "",
             "| model | setting (batch, D, MLP, Adam) | tfctr | FuxiCTR | tfctr − FuxiCTR AUC "
             "| seconds tfctr / FuxiCTR |",
             "|---|---|---|---|---|---|"]
    for model, settings in result["models"].items():
        for name, entry in settings.items():
            s = entry["setting"]
            sides = {side: {k: float(statistics.fmean([r[side][k] for r in entry["runs"]])) for k in ("auc", "logloss")}
                     for side in ("tfctr", "fuxictr")}
            spread = {side: statistics.pstdev([r[side]["auc"] for r in entry["runs"]]) for side in sides}
            seconds = (statistics.fmean([r["tfctr"]["seconds"] for r in entry["runs"]]),
                       statistics.fmean([r["fuxictr"]["train_seconds"] for r in entry["runs"]]))
            lines.append(
                f"| {model} | {name}: {s['batch_size']:,}, {s['embedding_dim']}, "
                f"{'-'.join(map(str, s['hidden_units']))}, {s['learning_rate']:g} "
                f"| {sides['tfctr']['auc']:.4f} ± {spread['tfctr']:.4f} / {sides['tfctr']['logloss']:.4f} "
                f"| {sides['fuxictr']['auc']:.4f} ± {spread['fuxictr']:.4f} / {sides['fuxictr']['logloss']:.4f} "
                f"| {sides['tfctr']['auc'] - sides['fuxictr']['auc']:+.4f} | {seconds[0]:.0f} / {seconds[1]:.0f} |")
    return "\n".join(lines)


def quality_table(result):
    first_model = next(iter(next(iter(result["datasets"].values())).values()))
    selection = result.get("selection", "early stopping on validation AUC")  # older results did not record it
    lines = [f"Test AUC / logloss, mean ± std over seeds {first_model['seeds']}, {result['epochs']} epochs max "
             f"({selection}). {_machine(result)}", ""]
    for data_name, models in result["datasets"].items():
        lines += [f"**{data_name}**", "", "| model | AUC | logloss |", "|---|---|---|"]
        for name, m in models.items():
            lines.append(f"| {name} | {m['auc_mean']:.4f} ± {m['auc_std']:.4f} "
                         f"| {m['logloss_mean']:.4f} ± {m['logloss_std']:.4f} |")
        bayes = next(iter(models.values())).get("bayes_optimal")
        if bayes:
            lines.append(f"| *Bayes-optimal (true CTR)* | {bayes['auc']:.4f} | {bayes['logloss']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def _rerun_cpu(rerun) -> str:
    """``", <CPU>"`` for a re-run that recorded its CPU (re-runs since 2026-12-08), else nothing."""
    return f", {rerun['cpu']}" if "cpu" in rerun else ""


def leaderboard_table(result):
    """Every model with its defaults (and the tuned ones) next to one-hot LR and LightGBM, per dataset."""
    reruns = "".join(f" Rows of {', '.join(r.get('measured', r['models'] + [t + ' (tuned)' for t in r['tuned']]))} "
                     "re-run with "
                     f"`{r['command']}` ({r['date']}{_rerun_cpu(r)})."
                     for r in result.get("reruns", []))
    synthetic = any("bayes_optimal" in entry for entry in result["datasets"].values())
    epochs = (f"; at most {result['synthetic_epochs']} epochs on synthetic data, where the AUC after the first epoch "
              "is shown too" if synthetic else "")
    stopped = (" **The run was stopped before every model had its turn: only the rows below were measured.**"
               if result.get("partial") else "")
    lines = [f"Test AUC / logloss, mean ± std over seeds; tfctr models with their defaults (`tfctr train` and "
             f"nothing else{epochs}). {_machine(result)}.{reruns}{stopped}", ""]
    for data_name, entry in result["datasets"].items():
        base = entry["baselines"]
        lr, gbm = base["one_hot_lr"]["test"], base["lightgbm"]["test"]
        bayes = entry.get("bayes_optimal")
        first_column = " | gap to Bayes AUC | AUC after epoch 1" if bayes else ""
        lines += [f"**{data_name}**" + (f" ({result['rows']:,} training rows)" if bayes else ""), "",
                  f"| model | AUC | logloss | ≥ one-hot LR (AUC and logloss) | gap to LightGBM AUC{first_column} "
                  "| selected epochs |", "|---|---|---|---|---|---|" + ("---|---|" if bayes else "")]
        rows = [(name, m, "") for name, m in entry["models"].items()]
        rows += [(f"{name}, tuned ({m['trials']} trials)", m, "") for name, m in entry.get("tuned", {}).items()]
        for name, m, _ in sorted(rows, key=lambda r: -r[1]["auc_mean"]):
            beats = "yes" if m["auc_mean"] >= lr["auc"] and m["logloss_mean"] <= lr["logloss"] else "**no**"
            first = (f" | {m['first_epoch_auc_mean']:.4f} (gap to Bayes {bayes['auc'] - m['first_epoch_auc_mean']:.4f})"
                     if bayes and "first_epoch_auc_mean" in m else (" | –" if bayes else ""))
            if bayes:
                first = f" | {bayes['auc'] - m['auc_mean']:.4f}" + first
            epochs = ", ".join(str(r["selected_epoch"]) for r in m["runs"])
            lines.append(f"| {name} | {_mean_std(m, 'auc')} | {_mean_std(m, 'logloss')} | {beats} "
                         f"| {m['auc_mean'] - gbm['auc']:+.4f}{first} | {epochs} |")
        lines.append(f"| *one-hot logistic regression (scikit-learn, C = {base['one_hot_lr']['C']})* | {lr['auc']:.4f} "
                     f"| {lr['logloss']:.4f} | | {lr['auc'] - gbm['auc']:+.4f} |" + (" | |" if bayes else "") + " |")
        lines.append(f"| *LightGBM ({base['lightgbm']['rounds']} rounds, early stopping on valid)* | {gbm['auc']:.4f} "
                     f"| {gbm['logloss']:.4f} | | 0 |" + (" | |" if bayes else "") + " |")
        if bayes:
            lines.append(f"| *Bayes-optimal (true CTR)* | {bayes['auc']:.4f} | {bayes['logloss']:.4f} | | | 0 | | |")
        for name, m in entry.get("tuned", {}).items():
            lines += ["", f"Tuned {name}: `{json.dumps(m['best_hp'], separators=(',', ':'))}` "
                          f"({m['tune_seconds'] / 60:.0f} min of search)."]
        lines.append("")
    return "\n".join(lines)


def pipeline_table(result):
    lines = [f"`parquet_dataset` on {result['rows']:,} Criteo-like rows ({result['fields']} fields), batch "
             f"{result['batch_size']}. {_machine(result)}", "", "| measure | value |", "|---|---|",
             f"| sequential rows/s | {result['sequential']['rows_per_second']:,.0f} |",
             f"| shuffled rows/s | {result['shuffled']['rows_per_second']:,.0f} |",
             f"| spec fit rows/s | {result['spec_fit_rows_per_second']:,.0f} |"]
    for key in ("fastest_model", "fastest_embedding_model"):
        if key in result:
            m = result[key]
            lines.append(f"| pipeline ÷ {key.replace('_', ' ')} ({m['model']}, {m['examples_per_second']:,.0f} ex/s) "
                         f"| {m['pipeline_ratio']:.1f}× |")
    return "\n".join(lines)


def serving_table(result):
    limits = ", ".join(f"batch {b}: {v:,.0f} rows/s" for b, v in result["in_process"].items())
    lines = [f"`tfctr serve` on {result['model']} (a server process; clients are threads of one Python process, "
             f"one gRPC channel each). In-process SavedModel limit: {limits}. {_machine(result)}", "",
             "| batching | request batch | clients | QPS | p50 ms | p99 ms | % of in-process rows/s |",
             "|---|---|---|---|---|---|---|"]
    for run in result["runs"]:
        lines.append(f"| {'on' if run['batching'] else 'off'} | {run['batch']} | {run['clients']} | {run['qps']:,.0f} "
                     f"| {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {100 * run['fraction_of_in_process']:.0f}% |")
    return "\n".join(lines)


def serving_faults_table(result):
    lines = [f"`tfctr serve` on {result['model']}, batch-1 Predict from threads of one client process; during "
             "exports this process writes a new version (with its warm-up requests) every few seconds and the "
             f"server replays the warm-up, then swaps the version in. {_machine(result)}", "",
             "| clients | exports during the run | QPS | p50 ms | p99 ms | max ms | failed requests |",
             "|---|---|---|---|---|---|---|"]
    for run in result["load"]:
        lines.append(f"| {run['clients']} | {run['versions_exported']} | {run['qps']:,.0f} | {run['p50_ms']:.1f} "
                     f"| {run['p99_ms']:.1f} | {run['max_ms']:.0f} | {run['failed']} |")
    memory = result["memory"]
    counts = ", ".join(f"{code} {n}" for code, n in memory["requests"].items())
    lines += ["", f"Memory (server RSS): {memory['rss_before_mb']:,.0f} MB once the last exported version is "
              f"served alone, before a burst of requests declaring "
              f"500,000 or 200,000,000 rows while carrying one value, and of requests at the "
              f"{memory['rows_at_limit']:,}-row limit ({counts}); {memory['rss_after_burst_mb']:,.0f} MB right "
              f"after, {memory['rss_after_5s_mb']:,.0f} MB 5 s later. `tfctr serve` hands freed request memory "
              f"back to the system (`tfctr.serving.memory`: fixed glibc thresholds, a trim after large requests)."]
    return "\n".join(lines)


def _bfloat16_cpu(result) -> str:
    """Whether the result's CPU computes bfloat16 in hardware, in words."""
    hardware = result["machine"].get("bfloat16_hardware")
    if hardware is None:
        return "an unrecorded CPU"
    return "a CPU with bfloat16 instructions" if hardware else "a CPU without bfloat16 instructions (emulated)"


def precision_table(result):
    where = _bfloat16_cpu(result)
    lines = [f"Training ex/s in float32 and in mixed precision, back to back in each of {result['repeats']} rounds, "
             f"batch {result['batch_size']}, on {where}. {_machine(result)}", "",
             "| model | float32 ex/s | mixed ex/s | mixed / float32 (median of rounds) |", "|---|---|---|---|"]
    for name, entry in result["models"].items():
        ratios = entry.get("mixed_ratio_runs") or [float("nan")]
        lines.append(f"| {name} | {entry['tfctr'].get('examples_per_second', float('nan')):,.0f} | "
                     f"{entry['tfctr_mixed'].get('examples_per_second', float('nan')):,.0f} | "
                     f"{statistics.median(ratios):.2f} |")
    return "\n".join(lines)


def batch1_latency_table(result):
    before = result.get("before")
    before_header = (" before: in-process / gRPC p50, batch 1 (ms) |" if before and "in_process_ms" in before
                     else " before: gRPC p50, batch 1 (ms) |")
    names = {"floor": "floor: logistic regression (the encoding)", "teacher": "teacher: CIN 128-128",
             "student": "student: DAGFM-inner, 3 layers", "dcnv2": "dcnv2 (defaults)"}
    lines = [f"{result['fields']} raw fields, untrained models exported by `tfctr export`. {_machine(result)}", "",
             "| model | in-process, batch 1 (ms) | in-process, batch 1024 (ms) | `tfctr serve` gRPC p50 / p99, "
             "batch 1 (ms) |" + (before_header if before else ""),
             "|---|---|---|---|" + ("---|" if before else "")]
    for name, label in names.items():
        now, grpc = result["in_process_ms"][name], result["grpc_ms"][name]
        row = f"| {label} | {now['1']:.3f} | {now['1024']:.2f} | {grpc['p50_ms']:.2f} / {grpc['p99_ms']:.2f} |"
        if before:  # a before whose in-process figure was measured another way shows only its gRPC p50
            row += (f" {before['in_process_ms'][name]['1']:.3f} /" if "in_process_ms" in before else "") + \
                   f" {before['grpc_ms'][name]['p50_ms']:.2f} |"
        lines.append(row)
    lines += ["", f"Student against teacher: {result['student_speedup_batch_1']:.2f}× faster at batch 1, "
              f"{result['student_speedup_batch_1024']:.1f}× at batch 1024."
              + (f" Before: {before['source']}, {before['date']}." if before else "")]
    return "\n".join(lines)


def precision_quality_table(result):
    lines = [f"Test AUC / logloss after the same {result['epochs']} epochs in float32 and in mixed precision (bfloat16 "
             f"on this CPU), same data ({result['rows']:,} synthetic rows with learnable crosses) and seed in each "
             f"pair. {_machine(result)}", "",
             "| model | seeds | AUC float32 | AUC mixed | mixed − float32 AUC | logloss float32 / mixed |",
             "|---|---|---|---|---|---|"]
    for name, row in result["models"].items():
        f32, mixed = row["float32"], row["mixed"]
        mean = statistics.fmean
        lines.append(f"| {name} | {', '.join(str(r['seed']) for r in f32)} | {mean(r['auc'] for r in f32):.4f} | "
                     f"{mean(r['auc'] for r in mixed):.4f} | {row['auc_gap_mean']:+.4f} ± {row['auc_gap_std']:.4f} | "
                     f"{mean(r['logloss'] for r in f32):.4f} / {mean(r['logloss'] for r in mixed):.4f} |")
    if not result.get("complete", True):
        lines += ["", "The run was stopped before every model had its turn: only the rows above were measured."]
    return "\n".join(lines)


def serving_precision_table(result):
    where = _bfloat16_cpu(result)
    lines = [f"Each model trained {result['epochs']} epochs on {result['rows']:,} synthetic rows with learnable "
             f"crosses, exported by `tfctr export` in float32 and with `--precision bfloat16`, both graphs called "
             f"on the whole test split and timed on {where}. {_machine(result)}", "",
             "| model | max / mean \\|Δp\\| on test | test AUC float32 / bfloat16 | test logloss float32 / bfloat16 | "
             "batch 1024: float32 / bfloat16 ms (speed-up) | batch 1: float32 / bfloat16 ms |",
             "|---|---|---|---|---|---|"]
    for name, row in result["models"].items():
        test, ms = row["test"], row["latency_ms"]
        lines.append(
            f"| {name} | {row['test_max_abs_probability_difference']:.4f} / "
            f"{row['test_mean_abs_probability_difference']:.4f} | {test['float32']['auc']:.4f} / "
            f"{test['bfloat16']['auc']:.4f} | {test['float32']['logloss']:.4f} / {test['bfloat16']['logloss']:.4f} | "
            f"{ms['float32']['1024']:.1f} / {ms['bfloat16']['1024']:.1f} ({row['batch1024_speedup']:.2f}×) | "
            f"{ms['float32']['1']:.2f} / {ms['bfloat16']['1']:.2f} |")
    return "\n".join(lines)


def adaensemble_defaults_table(result):
    names = {"paper": "paper form (controller, λ = 1)", "nc": "controller off, λ = 1",
             "default": "**defaults** (controller off, λ = 0)",
             "controller": "controller on, λ = 0 (k = 3, early exit)", "no_jitter": "defaults with gate jitter ε = 0",
             "unweighted": "defaults, experts summed without gates (authors' code)",
             "normalize": "defaults + instance norm after every layer (paper's text)",
             **{f"k{k}": f"defaults with k = {k}" for k in (1, 2, 4)},
             "k2_normalize": "k = 2 + instance norm", "densemoe": "DenseMoE",
             "densemoe_normalize": "DenseMoE + instance norm",
             **{f"only_{kind}": f"{kind} expert alone" for kind in ("dense", "cross", "pin", "conv", "attention")}}
    lines = ["Test AUC / logloss (mean ± std over the seeds listed), `tfctr train` defaults otherwise; synthetic: "
             "200k rows with learnable crosses, at most 2 epochs. Each run names where it came from in the JSON, "
             "and the runs since 2026-12-08 the CPU they ran on (the rows mix machines: their metrics, not their "
             f"times, are compared). Summary written on: {_machine(result)}", "",
             "| data | variant | seeds | AUC | logloss |", "|---|---|---|---|---|"]
    for data, variants in result["summary"].items():
        for variant in names:
            if variant in variants:
                v = variants[variant]
                lines.append(f"| {data} | {names[variant]} | {', '.join(map(str, v['seeds']))} "
                             f"| {v['auc_mean']:.4f} ± {v['auc_std']:.4f} | {v['logloss_mean']:.4f} |")
    return "\n".join(lines)


def _mean_std(m, key, digits=4):
    return f"{m[key + '_mean']:.{digits}f} ± {m[key + '_std']:.{digits}f}"


def kd_dagfm_table(result):
    a = result["args"]  # results from before --finetune-learning-rate existed fine-tuned at 1e-3
    lines = [f"{result['rows']:,} training rows (synthetic); teacher {a['teacher_epochs']} epochs at "
             f"{a['learning_rate']:g}, distillation {a['distill_epochs']} at {a['distill_learning_rate']:g}, "
             f"fine-tuning {a['finetune_epochs']} at {a.get('finetune_learning_rate', 1e-3):g}. "
             f"Test AUC / logloss over seeds {result['seeds']}; cost of seed 0's teacher and fine-tuned student "
             f"(forward FLOPs per example by TensorFlow's profiler; latency of the exported SavedModel's "
             f"serving_default on raw features, median). {_machine(result)}", ""]
    for data_name, teachers in result["datasets"].items():
        for teacher, entry in teachers.items():
            summary, cost = entry["summary"], entry["cost"]
            lines += [f"**{data_name}, {teacher} teacher → {entry['student']}**", "",
                      "| model | AUC | logloss | parameters | FLOPs / example | latency ms (1 / 1024) |",
                      "|---|---|---|---|---|---|"]
            for stage in ("teacher", "alone", "distilled", "finetuned"):
                c = cost.get(stage)
                extra = (f"{c['parameters']:,} | {c['forward_flops_per_example']:,.0f} | "
                         f"{c['latency_ms_batch_1']:.2f} / {c['latency_ms_batch_1024']:.2f}") if c else "| |"
                label = {"alone": "student alone", "finetuned": "fine-tuned (KD-DAGFM+ stage)"}.get(stage, stage)
                lines.append(f"| {label} | {_mean_std(summary[stage], 'auc')} "
                             f"| {_mean_std(summary[stage], 'logloss')} | {extra} |")
            if "bayes_optimal" in summary:
                b = summary["bayes_optimal"]
                lines.append(f"| *Bayes-optimal* | {b['auc']:.4f} | {b['logloss']:.4f} | | | |")
            speed = entry["student_speedup"]
            floor = entry.get("encoding_floor_ms_batch_1")
            bound = (f" (at most {cost['teacher']['latency_ms_batch_1'] / floor:.2f}× for any student: the raw-feature"
                     f" encoding alone, served as a logistic regression, takes {floor:.2f} ms)") if floor else ""
            lines += ["", f"Student serving speed-up over the teacher: {speed['batch_1']:.2f}× at batch 1{bound}, "
                      f"{speed['batch_1024']:.2f}× at batch 1024.", ""]
    if not result.get("complete", True):
        lines += ["The run was stopped before every teacher had its turn: only the tables above were measured.", ""]
    return "\n".join(lines)


def adaensemble_table(result):
    b = result["bayes_optimal"]
    a = result["args"]
    lines = [f"Synthetic data ({result['rows']:,} training rows), seeds {a['seeds']}, D = {a['embedding_dim']} "
             f"bit-wise, {a['layers']} layers, {a['epochs']} epochs at batch {a['batch_size']}, Adam "
             f"{a['learning_rate']:g}. Expected inference "
             f"FLOPs per example from the measured routing; latency per example of the exported SavedModel at "
             f"batch 1024 (seed 0's models). Bayes-optimal AUC {b['auc']:.4f}, logloss {b['logloss']:.4f}. "
             f"{_machine(result)}"
             f"{' **The run was stopped before every variant had its turn.**' if result.get('partial') else ''}"
             + "".join(f" Rows of {', '.join(r['measured'])} added by `{r['command']}` ({r['date']}"
                       f"{_rerun_cpu(r)}"
                       f"{'; stopped before every variant had its turn' if r.get('partial') else ''})."
                       for r in result.get("reruns", [])), "",
             "| model | AUC | logloss | FLOPs / example | µs / example | exit depths |", "|---|---|---|---|---|---|"]
    for name, m in result["models"].items():
        exits = (m.get("routing") or {}).get("exit_depths")
        exits = " / ".join(f"{100 * e:.0f}%" for e in exits) if exits else "–"
        latency = f"{m['latency_us_per_example_batch_1024']:.1f}" if "latency_us_per_example_batch_1024" in m else "–"
        if m.get("cpu", result["machine"]["cpu"]) != result["machine"]["cpu"]:
            latency += f" ({m['cpu']}; not comparable with the other rows)"
        lines.append(f"| {name} | {_mean_std(m, 'auc')} | {_mean_std(m, 'logloss')} "
                     f"| {m['expected_flops_per_example']:,.0f} | {latency} | {exits} |")
    return "\n".join(lines)


def optfusion_table(result):
    a = result["args"]
    lines = [f"Seeds {a['seeds']}, D = {a['embedding_dim']}, n = {a['levels']} levels, {a['epochs']} epochs for "
             f"search, retrain and the fixed models; mean seconds. {_machine(result)}", ""]
    for data_name, variants in result["datasets"].items():
        lines += [f"**{data_name}**", "", "| fusion | AUC | logloss | parameters | search s | (re)train s |",
                  "|---|---|---|---|---|---|"]
        for name, m in variants.items():
            train_s = m.get("retrain_seconds", m.get("train_seconds"))
            search_s = f"{m['search_seconds']:.0f}" if "search_seconds" in m else "–"
            lines.append(f"| {name} | {_mean_std(m, 'auc')} | {_mean_std(m, 'logloss')} | {m['parameters']:,} "
                         f"| {search_s} | {train_s:.0f} |")
        lines.append("")
    return "\n".join(lines)


def distributed_table(result):
    lines = [f"`tfctr train` of {', '.join(sorted({r['model'] for r in result['results']}))} on {result['rows']:,} "
             f"rows (4 Parquet files per split), batch {result['batch_size']}, D = {result['embedding_dim']}, "
             f"{result['epochs']} epochs; every task a process on 127.0.0.1 sharing the same cores. "
             f"{_machine(result)}", "",
             "| model | setup | tasks | ex/s | wall s | valid AUC | valid logloss |", "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        tasks = ", ".join(f"{n} × {job}" for job, n in (r["tasks"] or {"process": 1}).items())
        lines.append(f"| {r['model']} | {r['setup']} | {tasks} | {r['examples_per_second']:,.0f} "
                     f"| {r['wall_seconds']:.0f} | {r['valid_auc']:.4f} | {r['valid_logloss']:.4f} |")
    return "\n".join(lines)


def apg_table(result):
    rows = {(tuple(r["widths"]), r["version"]): r for r in result["table5"]}
    widths = sorted({w for w, _ in rows}, key=lambda w: w[0])
    versions = ["base", "v1", "v2", "v3", "v4", "v5"]

    def cell(r):
        if r["epoch_seconds"] is None:
            return f"not run: {r['hidden_parameters'] / 1e6:,.0f}M parameters do not fit in memory for training"
        return f"{r['epoch_seconds']:.3f} ({r['hidden_parameters'] / 1e6:.3f})"

    lines = [f"Input {result['input']}, K = {result['rank']}, {result['rows']:,} random rows per epoch at batch 256, "
             f"self-wise; seconds per epoch (hidden-layer parameters in millions). {_machine(result)}", "",
             "| widths | " + " | ".join(versions) + " |", "|---" * (len(versions) + 1) + "|"]
    lines += [f"| {list(w)} | " + " | ".join(cell(rows[(w, v)]) for v in versions) + " |" for w in widths]
    lines += ["", "Serving latency of the exported (folded) v5 MLP next to a plain v4 MLP of the same widths, median "
              "of 5 interleaved rounds:", "", "| widths | batch | folded v5 ms | v4 ms | ratio |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['widths']} | {r['batch']} | {r['folded_v5_ms']:.3f} | {r['v4_ms']:.3f} | {r['ratio']:.2f} |"
              for r in result["serving"]]
    return "\n".join(lines)


def _earlier_rows(result) -> str:
    """Where rows kept from an earlier run of the same benchmark (``--only`` re-runs) came from."""
    earlier = result.get("earlier_rows")
    if not earlier:
        return ""
    return f" Rows of {', '.join(earlier['notebooks'])} from `{earlier['command']}`, {earlier['date']}."


def notebooks_table(result):
    lines = [f"Each notebook top to bottom in a Jupyter kernel (nbclient) at `TFCTR_NOTEBOOK_SIZE={result['size']}`, "
             f"one at a time, each rendered with its outputs to [`docs/notebooks/`](docs/notebooks/). "
             f"{_machine(result)}"
             + _earlier_rows(result),
             "", "| notebook | seconds | status |", "|---|---|---|"]
    lines += [f"| `notebooks/{r['notebook']}` | {r['seconds']:.0f} | {'ok' if r['ok'] else 'ERROR'} |"
              for r in result["runs"]]
    return "\n".join(lines)


def claims_table(results):
    lines = ["| paper | the paper reports (its data, its hardware) | measured here | result |", "|---|---|---|---|"]
    for claim, measured in claim_rows(results):
        lines.append(f"| {claim.paper} | {claim.claim} | {measured or 'not measured (result missing)'} "
                     f"| {', '.join(f'`{r}`' for r in claim.results)} |")
    return "\n".join(lines)


def suite_table(suite):
    total = (f"**{suite['seconds'] / 60:.1f} minutes** in all, the sum of the jobs' wall times (some jobs were "
             f"re-run on their own with `python bench/all.py --only ...`; each job's start is listed)"
             if suite.get("separate_runs") else f"**{suite['seconds'] / 60:.1f} minutes** in all")
    lines = [f"`make bench` (`python bench/all.py`) started {suite['started']} on {suite['machine']['cpu']}, "
             f"{suite['machine']['cores']} cores, {suite['machine']['gpus']} GPUs, TensorFlow "
             f"{suite['machine']['tensorflow']}: {total}.", "",
             "| job | started | minutes | status |", "|---|---|---|---|"]
    lines += [f"| `{j['command']}` | {j.get('started', 'in the suite run')} | {j['seconds'] / 60:.1f} "
              f"| {'ok' if j['ok'] else 'FAILED'} |" for j in suite["jobs"]]
    return "\n".join(lines)


LEADERBOARD_NOTE = (
    "One-hot LR (C chosen on valid) and LightGBM (early stopping on valid) are computed by the benchmark on the same "
    "splits, with the columns typed as tfctr infers them. The synthetic data has learnable crosses (the fields of the "
    "second/third-order terms have 200 values). A model below LR is a failure to explain, not a result; the "
    "README (\"The training recipe\") says which ones are and why.")
# (title, result, table, figure under bench/results/plots or None, how to read it)
SECTIONS = (
    ("Leaderboard on UCI Adult: every model with its defaults, next to logistic regression and LightGBM",
     "leaderboard_adult", leaderboard_table, None, LEADERBOARD_NOTE),
    ("Leaderboard on synthetic data with learnable crosses", "leaderboard_synthetic", leaderboard_table, None,
     LEADERBOARD_NOTE),
    ("Leaderboard on 1M rows of synthetic data with learnable crosses: gaps to the Bayes-optimal AUC after 1 and "
     "at most 5 epochs", "leaderboard_synthetic_1m", leaderboard_table, None, LEADERBOARD_NOTE),
    ("Quality on synthetic data and UCI Adult", "quality_v100", quality_table, "quality_v100.png",
     "The synthetic labels come from a known logistic model, so the Bayes-optimal AUC/logloss of the same test "
     "rows is the ceiling every model is measured against. Adult (48,842 rows) is real data."),
    ("Training throughput and FLOP utilisation, tfctr next to DeepCTR", "train_throughput", throughput_table,
     "throughput.png",
     "DeepCTR 0.9.4 runs in its own venv (`make bench-deepctr-venv`) on the same encoded data and is timed by the "
     "same code (`bench/measure.py`). FLOP utilisation = 3 × the forward FLOPs TensorFlow's profiler counts in the "
     "batch-1 graph × examples/s ÷ the float32 matmul rate measured in the same run (the profiler does not count "
     "`einsum`, so DeepCTR's is not reported). Numbers on a shared 2-core machine move by 10-40% between runs; "
     "compare within the table."),
    ("Training throughput, tfctr next to FuxiCTR (PyTorch)", "train_throughput_fuxictr", throughput_table, None,
     "`python bench/train_throughput.py --against fuxictr`: FuxiCTR 2.3.10 on PyTorch's CPU build runs in its own "
     "venv (`make bench-fuxictr-venv`, not part of `make bench`); its `BaseModel.train_step` is timed with the "
     "protocol of `bench/measure.py`, on the same encoded rows, with the models put together from FuxiCTR's own "
     "layers as its model zoo does (`bench/fuxictr_twin.py`). Same hyper-parameters as the DeepCTR table; "
     "both sides clip the gradient as FuxiCTR's training does."),
    ("One epoch, tfctr next to FuxiCTR (PyTorch)", "fuxictr_quality", fuxictr_quality_table, None,
     "`python bench/fuxictr_quality.py` (FuxiCTR's venv as above; not part of `make bench`): both libraries train "
     "the same model on the same ids (tfctr's encoding of the rows) for one shuffled epoch and predict the same "
     "test rows. `tfctr_defaults` is `tfctr train --epochs 1` given nothing, FuxiCTR given the same settings; "
     "`fuxictr_template` is FuxiCTR's DeepFM template (`DeepFM_default` in its model zoo), tfctr given the same. "
     "tfctr's seconds include its per-epoch validation and the test prediction; FuxiCTR's are the epoch alone."),
    ("Input pipeline", "pipeline", pipeline_table, None,
     "`parquet_dataset` alone (no model); the ratios say how much headroom the pipeline leaves the fastest models."),
    ("Serving (`tfctr serve`, gRPC)", "serving", serving_table, "serving.png",
     "At batch 1 a request spends most of its time outside the model: the server's decoding and checks of 39 "
     "TensorProtos, gRPC and the Python client (the in-process limit calls the signature as the server does; "
     "see \"Batch-1 latency\")."),
    ("Batch-1 latency: the encoding floor, a CIN teacher and its DAGFM student", "batch1_latency",
     batch1_latency_table, None,
     "In-process is the exported `serving_default` called the way `tfctr serve` calls it; the gRPC p50 adds the "
     "server's request decoding and checks, gRPC and the Python client. At batch 1 the floor (encoding plus the "
     "call itself) is most of every model's time, which bounds the student's speed-up by teacher / floor."),
    ("Serving in bfloat16 (`tfctr export --precision bfloat16`)", "serving_precision", serving_precision_table,
     None,
     "The export itself refuses a bfloat16 graph whose probabilities move by more than `--probability-tolerance` "
     "(0.01) on the validation rows. The speed-up is the point on CPUs with AMX / AVX512-BF16; on AVX2-only "
     "CPUs TensorFlow emulates bfloat16 and the export is for the accuracy check only."),
    ("Serving AdaEnsemble (per-example early exit in the SavedModel)", "serving_adaensemble", serving_table, None,
     ""),
    ("Serving while versions are swapped in, and memory after oversized requests", "serving_faults",
     serving_faults_table, None,
     "The oversized requests are refused (INVALID_ARGUMENT) from their declared shape before any value is decoded."),
    ("APG efficiency (the setting of the paper's Table 5)", "apg", apg_table, "apg_efficiency.png",
     "Random inputs; only cost is measured. v1 at the largest width is reported, not trained: its generator "
     "alone has hundreds of millions of parameters."),
    ("APG quality (synthetic data with user groups; Adult)", "quality_v100_users4_wdl_apg_wdl_dcnv2_apg_dcnv2",
     quality_table, "quality_apg_users4.png",
     "`--user-groups 4` adds a user-dependent part to the synthetic logit (C1 is the user; 4 hidden groups with "
     "their own item-value weights), the pattern APG's per-example parameters are meant for."),
    ("APG variants: the condition (self-wise or the user field C1) and the rank K",
     "quality_v100_users4_wdl_apg_wdl_user_apg_wdl_rank32_apg_wdl_user_rank32", quality_table, None,
     "Run before the default K became 32 (the `apg_wdl` defaults were then K = 4): `apg_wdl_user` conditions every "
     "layer on the embedding of C1, the user (group-wise, the paper's main alternative); `_rank32` sets K = 32."),
    ("APG variants: K = 16 and 32 on both backbones", "quality_v100_users4_apg_wdl_rank16_apg_dcnv2_rank16_"
     "apg_dcnv2_rank32", quality_table, None,
     "The backbones (`wdl`, `dcnv2`) and K = 32 (now the default) are in the APG quality table above (the same "
     "seeds and data; training is deterministic per seed). K = 4, the former default, gave `apg_wdl` 0.7110 / "
     "0.5090 and `apg_dcnv2` 0.7161 / 0.5067 on users4, 0.9194 / 0.2871 and 0.9196 / 0.2879 on Adult (that "
     "table's previous version, in git history)."),
    ("KD-DAGFM: teachers, students alone, distilled, fine-tuned", "kd_dagfm", kd_dagfm_table, "kd_dagfm.png",
     "Speed-ups are the exported SavedModels' `serving_default` on raw rows, encoding included; at batch 1 that "
     "fixed encoding cost dominates both models. The paper's latencies are per example of batched inference "
     "(a CIN of 3.7 GFLOPs per example in 0.213 ms), which the batch-1024 column compares with."),
    ("AdaEnsemble (the paper's Tables 2-4)", "adaensemble", adaensemble_table, "adaensemble.png",
     "FLOPs per example are expected values from the measured routing (experts per example, exit depths). The "
     "suite's size (a few tens of steps) under-trains the mixtures most; the additional runs below with more "
     "rows are the better guide to how the variants compare."),
    ("AdaEnsemble's model defaults against the paper's form", "adaensemble_defaults", adaensemble_defaults_table,
     None, "Why `adaensemble` runs without the depth controller and the load regulariser by default (README, "
     "\"AdaEnsemble\")."),
    ("OptFusion (the shape of the paper's ablation)", "optfusion", optfusion_table, "optfusion.png",
     "The fixed `product` and `attention` rows fuse scaled inputs (`FusionOperation(scaled=True)`: the product is "
     "Π(1 + tanh x_i) − 1, the attention weights are multiplied by the width; README, \"OptFusion\"): unscaled, "
     "the product of eight inputs collapses to a constant prediction (AUC 0.5). `one_shot_hard` is the authors' "
     "pipeline (soft search, argmax derive), `one_shot_one_hot` tfctr's straight-through one-hot search."
     "\n\n![OptFusion one-shot soft architecture, synthetic data, seed 0](bench/results/optfusion_graph.png)"),
    ("Distributed training (`tf.distribute` strategies, one host)", "distributed", distributed_table,
     "distributed.png",
     "Every task is a process on the same cores, so no speed-up is possible: the table is the price of each "
     "strategy."),
    ("Distributed training on a GPU", "distributed_gpu", distributed_table, None, ""),
    ("Notebooks at full size", "notebooks", notebooks_table, None,
     "`make test` runs the same notebooks at `small` size (`tests/test_notebooks.py`)."),
)
SUITE_RESULTS = {name for _, name, *_ in SECTIONS}
# result files that other commands produced (larger or ablation runs): shown after the suite's sections
EXTRA_TABLES = {"leaderboard": leaderboard_table, "adaensemble": adaensemble_table, "kd_dagfm": kd_dagfm_table,
                "quality": quality_table, "optfusion": optfusion_table, "distributed": distributed_table,
                "serving_precision": serving_precision_table, "serving": serving_table,
                "precision_quality": precision_quality_table,
                "train_throughput_precision": precision_table}


def _extra_renderer(name):
    return next((render for prefix, render in EXTRA_TABLES.items() if name.startswith(prefix)), None)


def load_results() -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))
            if p.stem != "suite" and not p.stem.endswith(".partial")}  # .partial: a run still going


def benchmarks_markdown(results: dict, suite: dict | None, figures: set) -> str:
    parts = ["# tfctr benchmarks", "",
             "Generated by `make bench` (`python bench/all.py`, or `tfctr bench all`) from `bench/results/*.json`; "
             "`python bench/report.py` re-renders this page, its plots and the README summary without running "
             "anything. Every table names the command that produced it, the machine and the date.", ""]
    if suite:
        parts += ["## The suite run", "", suite_table(suite), ""]
    parts += ["## Each paper's claim next to what we measured", "",
              "The papers' numbers are on Criteo/Avazu-scale data after full training on GPUs; ours are on "
              "synthetic data and UCI Adult with a few epochs on 2 CPU cores, so the comparison is about the "
              "direction and the relative cost, not the absolute AUC.", "", claims_table(results), ""]
    for title, name, render, figure, note in SECTIONS:
        if name not in results:
            continue
        parts += [f"## {title}", "", render(results[name]), ""]
        if figure in figures:
            parts += [f"![{title}](bench/results/plots/{figure})", ""]
        if note:
            parts += [note, ""]
    extras = [n for n in results if n not in SUITE_RESULTS and _extra_renderer(n)]
    if extras:
        parts += ["## Additional runs (not part of the suite; each with its own command)", ""]
        for name in extras:
            parts += [f"### `{name}`", "", _extra_renderer(name)(results[name]), ""]
    return "\n".join(parts)


def readme_summary(results: dict) -> str:
    lines = ["| paper | the paper reports | measured here |", "|---|---|---|"]
    lines += [f"| {c.paper} | {c.claim} | {m or 'not measured'} |" for c, m in claim_rows(results)]
    return "\n".join(lines)


def write_report(root: Path = ROOT) -> Path:
    """Draws the figures, writes BENCHMARKS.md and replaces README.md's block between the benchmark-summary
    markers. Returns the path of BENCHMARKS.md."""
    from figures import FIGURES, draw

    results = load_results()
    suite_path = RESULTS / "suite.json"
    suite = json.loads(suite_path.read_text()) if suite_path.exists() else None
    PLOTS.mkdir(parents=True, exist_ok=True)
    drawn = set()
    for figure, (name, _) in FIGURES.items():
        if name in results:
            draw(figure, results[name], PLOTS)
            drawn.add(figure)
    path = root / "BENCHMARKS.md"
    path.write_text(benchmarks_markdown(results, suite, drawn))
    readme = root / "README.md"
    text = readme.read_text()
    block = re.compile(r"(<!-- benchmark-summary:start -->\n).*?(<!-- benchmark-summary:end -->)", re.S)
    if block.search(text):
        readme.write_text(block.sub(lambda m: m.group(1) + readme_summary(results) + "\n" + m.group(2), text))
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stdout", action="store_true", help="print BENCHMARKS.md instead of writing files")
    args = parser.parse_args()
    if args.stdout:
        print(benchmarks_markdown(load_results(), None, set()))
    else:
        print(f"wrote {write_report()}")


if __name__ == "__main__":
    main()
