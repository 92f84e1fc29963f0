"""Renders bench/results/*.json as the Markdown tables of the README's benchmark section.

    python bench/report.py > /tmp/tables.md
"""

import json

from common import BENCH_DIR, RESULTS


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(result):
    m = result["machine"]
    return f"{m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}; `{result['command']}`, {result['date']}"


def throughput_table(result):
    peak = result["matmul_peak_flops"] / 1e9
    lines = [f"Training at batch {result['batch_size']}, D = {result['embedding_dim']}, {result['rows']:,} rows; "
             f"float32 matmul peak measured in the run: {peak:.0f} GFLOP/s. {_machine(result)}", "",
             "| model | tfctr ex/s | DeepCTR ex/s | tfctr / DeepCTR | tfctr % of matmul peak | tfctr peak RSS MB "
             "| DeepCTR peak RSS MB | tfctr latency ms (1 / 1024) | DeepCTR latency ms (1 / 1024) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in result["models"].items():
        ours, theirs = entry.get("tfctr", {}), entry.get("deepctr") or {}

        def cell(m, key, fmt):
            return format(m[key], fmt) if key in m else "–"

        ratio = (f"{ours['examples_per_second'] / theirs['examples_per_second']:.2f}×"
                 if "examples_per_second" in ours and "examples_per_second" in theirs else "–")
        lines.append(
            f"| {name} | {cell(ours, 'examples_per_second', ',.0f')} | {cell(theirs, 'examples_per_second', ',.0f')} "
            f"| {ratio} | {100 * ours.get('fraction_of_matmul_peak', float('nan')):.0f}% "
            f"| {cell(ours, 'peak_rss_mb', ',.0f')} | {cell(theirs, 'peak_rss_mb', ',.0f')} "
            f"| {cell(ours, 'latency_ms_batch_1', '.2f')} / {cell(ours, 'latency_ms_batch_1024', '.1f')} "
            f"| {cell(theirs, 'latency_ms_batch_1', '.2f')} / {cell(theirs, 'latency_ms_batch_1024', '.1f')} |")
    return "\n".join(lines)


def quality_table(result):
    first_model = next(iter(next(iter(result["datasets"].values())).values()))
    lines = [f"Test AUC / logloss, mean ± std over seeds {first_model['seeds']}, {result['epochs']} epochs max "
             f"(early stopping on validation AUC). {_machine(result)}", ""]
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


def _mean_std(m, key, digits=4):
    return f"{m[key + '_mean']:.{digits}f} ± {m[key + '_std']:.{digits}f}"


def kd_dagfm_table(result):
    lines = [f"Test AUC / logloss over seeds {result['seeds']}; cost of seed 0's teacher and fine-tuned student "
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
            lines += ["", f"Student serving speed-up over the teacher: {speed['batch_1']:.2f}× at batch 1, "
                      f"{speed['batch_1024']:.2f}× at batch 1024.", ""]
    return "\n".join(lines)


def adaensemble_table(result):
    b = result["bayes_optimal"]
    lines = [f"Synthetic data ({result['rows']:,} training rows), seeds {result['args']['seeds']}, D = "
             f"{result['args']['embedding_dim']} bit-wise, {result['args']['layers']} layers. Expected inference "
             f"FLOPs per example from the measured routing; latency per example of the exported SavedModel at "
             f"batch 1024 (seed 0's models). Bayes-optimal AUC {b['auc']:.4f}, logloss {b['logloss']:.4f}. "
             f"{_machine(result)}", "",
             "| model | AUC | logloss | FLOPs / example | µs / example | exit depths |", "|---|---|---|---|---|---|"]
    for name, m in result["models"].items():
        exits = (m.get("routing") or {}).get("exit_depths")
        exits = " / ".join(f"{100 * e:.0f}%" for e in exits) if exits else "–"
        latency = f"{m['latency_us_per_example_batch_1024']:.1f}" if "latency_us_per_example_batch_1024" in m else "–"
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


def write_report(path=BENCH_DIR.parent / "BENCHMARKS.md"):
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        main()
    path.write_text("# tfctr benchmarks\n\n" + text.getvalue())
    return path


def main():
    for title, name, render in (("Training throughput", "train_throughput", throughput_table),
                                ("Input pipeline", "pipeline", pipeline_table),
                                ("Serving", "serving", serving_table),
                                ("Serving AdaEnsemble", "serving_adaensemble", serving_table),
                                ("KD-DAGFM, fine-tuning at 1e-3 (the code's default then)", "kd_dagfm",
                                 kd_dagfm_table),
                                ("KD-DAGFM, fine-tuning at 1e-4", "kd_dagfm_finetune_1e-4", kd_dagfm_table),
                                ("AdaEnsemble", "adaensemble", adaensemble_table),
                                ("AdaEnsemble, 200,000 rows", "adaensemble_200k", adaensemble_table),
                                ("AdaEnsemble, depth training and gate ablations", "adaensemble_depth_training",
                                 adaensemble_table),
                                ("OptFusion", "optfusion", optfusion_table),
                                ("Distributed training", "distributed", distributed_table),
                                ("Distributed training on a GPU", "distributed_gpu", distributed_table)):
        result = _load(name)
        if result:
            print(f"### {title}\n\n{render(result)}\n")
    for path in sorted(RESULTS.glob("quality_v*.json")):
        print(f"### Quality ({path.stem})\n\n{quality_table(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
