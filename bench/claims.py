"""Each paper's headline claim (METHODS.md §1.6, §2.8, §3.7, §4.7) next to what the benchmark results here show.

A claim's ``measure(results)`` reads the result files it names and returns the measured statement, or ``None``
when a result is missing; nothing here is typed in by hand except the paper's side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    paper: str
    claim: str  # what the paper reports, in its setting
    results: tuple[str, ...]  # bench/results/<name>.json the measurement reads
    measure: Callable[[dict], str]


def _signed(x: float, digits: int = 4) -> str:
    return f"{x:+.{digits}f}"


def _apg_quality(results) -> str:
    parts = []
    for data_name, models in results["quality_v100_users4_wdl_apg_wdl_dcnv2_apg_dcnv2"]["datasets"].items():
        for base in ("wdl", "dcnv2"):
            delta = models[f"apg_{base}"]["auc_mean"] - models[base]["auc_mean"]
            parts.append(f"{data_name} {base}: ΔAUC {_signed(delta)}")
    return "; ".join(parts)


def _apg_rows(results):
    return {(tuple(r["widths"]), r["version"]): r for r in results["apg"]["table5"]}


def _apg_efficiency(results) -> str:
    rows = _apg_rows(results)
    parts = []
    for widths in sorted({w for w, _ in rows}, key=lambda w: w[0]):
        base, v4 = rows[(widths, "base")], rows[(widths, "v4")]
        parts.append(f"{list(widths)}: v4 time {100 * (v4['epoch_seconds'] / base['epoch_seconds'] - 1):+.0f}%, "
                     f"hidden parameters {100 * (v4['hidden_parameters'] / base['hidden_parameters'] - 1):+.0f}%")
    return "; ".join(parts)


def _apg_serving(results) -> str:
    return "; ".join(f"{r['widths']} batch {r['batch']}: {100 * (r['ratio'] - 1):+.0f}%"
                     for r in results["apg"]["serving"])


def _kd_parity(results) -> str:
    parts = []
    for data_name, teachers in results["kd_dagfm"]["datasets"].items():
        for teacher, entry in teachers.items():
            auc = {stage: m["auc_mean"] for stage, m in entry["summary"].items() if "auc_mean" in m}
            parts.append(f"{data_name} {teacher}: distilled {_signed(auc['distilled'] - auc['teacher'])}, "
                         f"fine-tuned {_signed(auc['finetuned'] - auc['teacher'])}")
    return "; ".join(parts)


def _kd_cost(teacher):
    def measure(results) -> str:
        parts = []
        for data_name, teachers in results["kd_dagfm"]["datasets"].items():
            if teacher in teachers:
                entry = teachers[teacher]
                flops = (entry["cost"]["teacher"]["forward_flops_per_example"]
                         / entry["cost"]["finetuned"]["forward_flops_per_example"])
                speed = entry["student_speedup"]
                parts.append(f"{data_name}: {flops:,.0f}× fewer FLOPs, latency {speed['batch_1']:.2f}× (batch 1) / "
                             f"{speed['batch_1024']:.1f}× (batch 1024)")
        return "; ".join(parts)
    return measure


def _ada(results, name):
    return results["adaensemble"]["models"][name]


def _k3_vs_dense(sparse, dense) -> str:
    return (f"k=3 ΔAUC {_signed(sparse['auc_mean'] - dense['auc_mean'])} vs DenseMoE at "
            f"{100 * sparse['expected_flops_per_example'] / dense['expected_flops_per_example']:.0f}% of its FLOPs")


def _ada_sparse_vs_dense(results) -> str:
    return _k3_vs_dense(_ada(results, "sparse_k3"), _ada(results, "densemoe"))


def _ada_without_load_regulariser(results) -> str:
    models = results["adaensemble_load0"]["models"]
    parts = [f"{label}: {_k3_vs_dense(models[name], models['densemoe'])}"
             for name, label in (("sparse_k3_nc_load0", "λ = 0"), ("sparse_k3_nc_load0_t025", "λ = 0, τ₀ = 0.25"))
             if name in models]
    return "; ".join(parts) + " (50k rows, 3 seeds)"


def _ada_k_order(results) -> str:
    models = results["adaensemble"]["models"]
    return ", ".join(f"k={k} {models[f'sparse_k{k}']['auc_mean']:.4f}" for k in (1, 2, 3, 4)
                     if f"sparse_k{k}" in models)


def _ada_controller(results) -> str:
    k3, full = _ada(results, "sparse_k3"), _ada(results, "sparse_k3_no_controller")
    return (f"ΔAUC {_signed(k3['auc_mean'] - full['auc_mean'])}, FLOPs "
            f"{100 * (k3['expected_flops_per_example'] / full['expected_flops_per_example'] - 1):+.0f}%")


def _ada_exits(results) -> str:
    exits = _ada(results, "sparse_k3")["routing"]["exit_depths"]
    return " / ".join(f"{100 * e:.1f}%" for e in exits) + " (configured prior 10 / 20 / 60 / 10%)"


def _fusion_best(results) -> str:
    parts = []
    for data_name, variants in results["optfusion"]["datasets"].items():
        fixed = {n: v for n, v in variants.items() if "search_seconds" not in v}
        best_fixed = max(fixed, key=lambda n: fixed[n]["auc_mean"])
        soft, hard = variants["one_shot_soft"]["auc_mean"], variants["one_shot_hard"]["auc_mean"]
        parts.append(f"{data_name}: soft {_signed(soft - fixed[best_fixed]['auc_mean'])}, hard "
                     f"{_signed(hard - fixed[best_fixed]['auc_mean'])} vs best fixed ({best_fixed})")
    return "; ".join(parts)


def _fusion_one_shot(results) -> str:
    parts = []
    for data_name, variants in results["optfusion"]["datasets"].items():
        one, seq = variants["one_shot_soft"], variants["sequential_soft"]
        parts.append(f"{data_name}: ΔAUC {_signed(one['auc_mean'] - seq['auc_mean'])}, search "
                     f"{one['search_seconds']:.0f} s vs {seq['search_seconds']:.0f} s")
    return "; ".join(parts)


CLAIMS = (
    Claim("APG", "APG beats its backbone on every dataset: mean AUC +0.24 / +0.28 / +0.89 pt (MovieLens / Amazon / "
          "IAAC, 7 backbones)", ("quality_v100_users4_wdl_apg_wdl_dcnv2_apg_dcnv2",), _apg_quality),
    Claim("APG", "v4 trains faster than base at every width (−38.7% at [1024, 512, 256], −0.7% at [64, 32, 16]); "
          "hidden-layer memory −96.6% at the largest width", ("apg",), _apg_efficiency),
    Claim("APG", "serving an APG model costs about the plain one (14.8 vs 14.5 ms, +2%)", ("apg",), _apg_serving),
    Claim("KD-DAGFM", "the distilled student matches its teacher's AUC (within 1e-4 on Criteo) and the fine-tuned "
          "student beats it", ("kd_dagfm",), _kd_parity),
    Claim("KD-DAGFM", "CIN → DAGFM-inner: ≈1,100× fewer FLOPs, 3.1× lower latency", ("kd_dagfm",), _kd_cost("cin")),
    Claim("KD-DAGFM", "CrossNet → DAGFM-outer: ≈10.6× fewer FLOPs, 1.45× lower latency", ("kd_dagfm",),
          _kd_cost("crossnet")),
    Claim("AdaEnsemble", "SparseMoE k = 3 ≈ DenseMoE (−0.0001 AUC) at ≈62% of its FLOPs", ("adaensemble",),
          _ada_sparse_vs_dense),
    Claim("AdaEnsemble", "SparseMoE k = 3 ≈ DenseMoE, here without the load regulariser (λ = 0)",
          ("adaensemble_load0",), _ada_without_load_regulariser),
    Claim("AdaEnsemble", "AUC rises with k up to 3, then flat (k=1 0.8096, k=2 0.8121, k=3 0.8132, k=4 0.8133)",
          ("adaensemble",), _ada_k_order),
    Claim("AdaEnsemble", "the depth controller is slightly better (+0.0004 AUC) and ≈30% cheaper than full depth",
          ("adaensemble",), _ada_controller),
    Claim("AdaEnsemble", "exit depths 6.5 / 19.4 / 66.4 / 7.7% (layers 1-4)", ("adaensemble",), _ada_exits),
    Claim("OptFusion", "OptFusion-Soft beats every fixed fusion (Criteo 0.8113 vs best fixed ADD 0.8111); Hard is "
          "close (0.8108)", ("optfusion",), _fusion_best),
    Claim("OptFusion", "one-shot search beats sequential (connections, then operations): 0.8113 vs 0.8109",
          ("optfusion",), _fusion_one_shot),
)


def claim_rows(results: dict) -> list[tuple[Claim, str | None]]:
    """(claim, measured statement or None when a result it needs is missing) for every claim."""
    return [(c, _measured(c, results) if all(r in results for r in c.results) else None) for c in CLAIMS]


def _measured(claim: Claim, results: dict) -> str | None:
    """The claim's measured statement, or None when a result lacks the variant it compares (a run stopped before
    that variant's turn writes what it measured)."""
    try:
        return claim.measure(results)
    except KeyError:
        return None
