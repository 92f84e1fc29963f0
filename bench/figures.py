"""The comparison plots of BENCHMARKS.md, one function per result file: ``figure(result) -> matplotlib Figure``.

``FIGURES`` maps a PNG name to (the result it reads, the function drawing it); ``report.py`` draws every figure
whose result exists into bench/results/plots/.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _bars(ax, labels, series: dict, ylabel: str, errors: dict | None = None):
    """Grouped bars: ``series`` maps a legend label to one value per ``labels`` entry (NaN = missing)."""
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name,
               yerr=(errors or {}).get(name), capsize=2)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _auc_axis(ax, values, bayes=None):
    values = [v for v in values if np.isfinite(v)] + ([bayes] if bayes else [])
    ax.set_ylim(min(values) - 0.01, max(values) + 0.01)
    if bayes:
        ax.axhline(bayes, color="black", linestyle="--", linewidth=1, label="Bayes-optimal")
        ax.legend(fontsize=8)


def _auc_per_dataset(datasets: dict, width: float, drop_worst: float = 0.0):
    """One panel per data set of ``{data set: {model: {auc_mean, auc_std, [bayes_optimal]}}}``: AUC bars with
    their std and the Bayes-optimal line when known; the y axis leaves out the ``drop_worst`` fraction of the
    lowest bars (models that failed to train would otherwise flatten the rest)."""
    figure, axes = plt.subplots(1, len(datasets), figsize=(width * len(datasets), 3.6), squeeze=False)
    for ax, (data_name, models) in zip(axes[0], datasets.items()):
        names = list(models)
        means = [models[n]["auc_mean"] for n in names]
        _bars(ax, names, {"AUC": means}, "test AUC", {"AUC": [models[n]["auc_std"] for n in names]})
        bayes = (next(iter(models.values())).get("bayes_optimal") or {}).get("auc")
        _auc_axis(ax, sorted(means)[int(drop_worst * len(means)):], bayes)
        ax.set_title(data_name)
    figure.tight_layout()
    return figure


def quality(result):
    return _auc_per_dataset(result["datasets"], 5)


def throughput(result):
    names = list(result["models"])

    def value(side, key):
        return [float((result["models"][n].get(side) or {}).get(key, np.nan)) for n in names]

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    _bars(left, names, {"tfctr": value("tfctr", "examples_per_second"),
                        "DeepCTR": value("deepctr", "examples_per_second")}, "training examples / s")
    left.set_yscale("log")
    left.set_title(f"batch {result['batch_size']}, D = {result['embedding_dim']}")
    _bars(right, names, {"tfctr": [100 * v for v in value("tfctr", "fraction_of_matmul_peak")]},
          "% of the measured float32 matmul peak")
    right.set_title(f"FLOP utilisation (peak {result['matmul_peak_flops'] / 1e9:.0f} GFLOP/s)")
    figure.tight_layout()
    return figure


def serving(result):
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for batching in (False, True):
        for batch in sorted({r["batch"] for r in result["runs"]}):
            runs = [r for r in result["runs"] if r["batching"] == batching and r["batch"] == batch]
            label = f"batch {batch}, batching {'on' if batching else 'off'}"
            clients = [r["clients"] for r in runs]
            left.plot(clients, [r["rows_per_second"] for r in runs], marker="o", label=label)
            right.plot(clients, [r["p99_ms"] for r in runs], marker="o", label=label)
    for ax, ylabel in ((left, "rows / s"), (right, "p99 latency ms")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    left.set_title(f"tfctr serve, {result['model']}")
    figure.tight_layout()
    return figure


def apg(result):
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    versions = ["base", "v1", "v2", "v3", "v4", "v5"]
    widths = sorted({tuple(r["widths"]) for r in result["table5"]}, key=lambda w: w[0])
    rows = {(tuple(r["widths"]), r["version"]): r for r in result["table5"]}
    for version in versions:
        seconds = [rows[(w, version)]["epoch_seconds"] or np.nan for w in widths]
        params = [rows[(w, version)]["hidden_parameters"] for w in widths]
        left.plot(range(len(widths)), seconds, marker="o", label=version)
        right.plot(range(len(widths)), params, marker="o", label=version)
    for ax, ylabel in ((left, "seconds / epoch"), (right, "hidden-layer parameters")):
        ax.set_xticks(range(len(widths)), [str(list(w)) for w in widths], rotation=20)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, ncol=2)
    left.set_title("APG training cost (paper Table 5 setting)")
    figure.tight_layout()
    return figure


def kd_dagfm(result):
    panels = [(d, t, e) for d, teachers in result["datasets"].items() for t, e in teachers.items()]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, (data_name, teacher, entry) in zip(axes[0], panels):
        stages = ["teacher", "alone", "distilled", "finetuned"]
        means = [entry["summary"][s]["auc_mean"] for s in stages]
        _bars(ax, stages, {"AUC": means}, "test AUC", {"AUC": [entry["summary"][s]["auc_std"] for s in stages]})
        _auc_axis(ax, means)
        speed = entry["student_speedup"]["batch_1024"]
        ax.set_title(f"{data_name}\n{teacher} → {entry['student']} ({speed:.1f}× faster at 1024)", fontsize=9)
    figure.tight_layout()
    return figure


def adaensemble(result):
    figure, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, m in result["models"].items():
        ax.errorbar(m["expected_flops_per_example"], m["auc_mean"], yerr=m["auc_std"], marker="o", capsize=2)
        ax.annotate(name, (m["expected_flops_per_example"], m["auc_mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("expected inference FLOPs / example (measured routing)")
    ax.set_ylabel("test AUC")
    ax.set_title(f"AdaEnsemble variants, {result['rows']:,} rows "
                 f"(Bayes-optimal AUC {result['bayes_optimal']['auc']:.3f})")
    figure.tight_layout()
    return figure


def optfusion(result):
    # fixed product and attention fusion can fail to train at all (AUC 0.5): the axis shows the useful range
    return _auc_per_dataset(result["datasets"], 5.5, drop_worst=1 / 3)


def distributed(result):
    figure, ax = plt.subplots(figsize=(6, 3.4))
    labels = [f"{r['model']} {r['setup']}" for r in result["results"]]
    _bars(ax, labels, {"ex/s": [r["examples_per_second"] for r in result["results"]]}, "training examples / s")
    ax.set_title("tf.distribute strategies on one host")
    figure.tight_layout()
    return figure


FIGURES = {
    "quality_v100.png": ("quality_v100", quality),
    "quality_apg_users4.png": ("quality_v100_users4_wdl_apg_wdl_dcnv2_apg_dcnv2", quality),
    "throughput.png": ("train_throughput", throughput),
    "serving.png": ("serving", serving),
    "apg_efficiency.png": ("apg", apg),
    "kd_dagfm.png": ("kd_dagfm", kd_dagfm),
    "adaensemble.png": ("adaensemble", adaensemble),
    "optfusion.png": ("optfusion", optfusion),
    "distributed.png": ("distributed", distributed),
}


def draw(name: str, result: dict, directory) -> None:
    figure = FIGURES[name][1](result)
    figure.savefig(directory / name, dpi=100)
    plt.close(figure)
