"""BENCHMARKS.md rendering: every committed result renders with its command and machine, every paper claim is
measured from the results, every figure draws, the README summary block is replaced and nothing else, and
``tfctr bench list`` prints the suite. Nothing is benchmarked here."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import claims  # noqa: E402
import figures  # noqa: E402
import report  # noqa: E402


@pytest.fixture(scope="module")
def results():
    loaded = report.load_results()
    assert loaded, "bench/results has no result files"
    return loaded


def test_every_claim_is_measured_from_the_committed_results(results):
    rows = claims.claim_rows(results)
    assert {c.paper for c, _ in rows} == {"APG", "KD-DAGFM", "AdaEnsemble", "OptFusion"}
    for claim, measured in rows:
        assert measured, f"{claim.paper}: {claim.claim!r} has no measurement (needs {claim.results})"


def test_claim_reports_the_numbers_of_its_result(results):
    k3, dense = (results["adaensemble"]["models"][n] for n in ("sparse_k3", "densemoe"))
    measured = claims._ada_sparse_vs_dense(results)
    assert f"{k3['auc_mean'] - dense['auc_mean']:+.4f}" in measured
    assert f"{100 * k3['expected_flops_per_example'] / dense['expected_flops_per_example']:.0f}%" in measured


def test_a_missing_result_is_reported_not_invented(results):
    partial = {k: v for k, v in results.items() if k != "kd_dagfm"}
    for claim, measured in claims.claim_rows(partial):
        assert (measured is None) == ("kd_dagfm" in claim.results)
    assert "not measured (result missing)" in report.claims_table(partial)


def test_markdown_names_command_machine_and_date_of_every_section(results):
    suite = {"machine": {"cpu": "CPU", "cores": 2, "gpus": 0, "tensorflow": "2.21.0"}, "started": "now",
             "seconds": 600.0, "jobs": [{"command": "python bench/apg.py", "seconds": 60.0, "ok": True}]}
    text = report.benchmarks_markdown(results, suite, {"apg_efficiency.png"})
    assert "**10.0 minutes** in all" in text and "| `python bench/apg.py` | in the suite run | 1.0 | ok |" in text
    assert "![APG efficiency (the setting of the paper's Table 5)](bench/results/plots/apg_efficiency.png)" in text
    sections = text.split("\n## ")[3:]  # after the title, the suite and the claims
    assert len(sections) >= 8
    for section in sections:
        if section.startswith("Additional runs"):
            for run in section.split("\n### ")[1:]:
                assert "`python" in run and "2 cores" in run, run[:200]
        else:
            assert "`python" in section and "TensorFlow" in section, section[:200]


def test_every_figure_draws_a_png(results, tmp_path):
    for name, (result, _) in figures.FIGURES.items():
        if result in results:
            figures.draw(name, results[result], tmp_path)
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_write_report_replaces_only_the_readme_summary_block(results, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PLOTS", tmp_path / "plots")
    (tmp_path / "README.md").write_text("# x\nbefore\n<!-- benchmark-summary:start -->\n"
                                        "<!-- benchmark-summary:end -->\nafter\n")
    path = report.write_report(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# x\nbefore\n<!-- benchmark-summary:start -->\n| paper |")
    assert readme.endswith("\n<!-- benchmark-summary:end -->\nafter\n") and "OLD" not in readme
    assert path.read_text().startswith("# tfctr benchmarks")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir())


def test_tfctr_bench_list_prints_the_suite():
    import all as suite

    done = subprocess.run([sys.executable, "-m", "tfctr.cli", "bench", "list"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:-1] == ["python bench/" + " ".join(j.args) for j in suite.SUITE]


def test_suite_record_round_trips_as_json(tmp_path, monkeypatch):
    import all as suite

    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    job = suite.Job("nothing", ("common.py",))  # a script that writes no result: recorded as a failure
    record = suite.run_suite([job])
    assert json.loads(json.dumps(record))["jobs"][0]["ok"] is False
    assert record["jobs"][0]["returncode"] == 0
    shutil.rmtree(tmp_path)


def test_a_partial_rerun_replaces_its_jobs_and_sums_the_wall_times():
    import all as suite

    def job(name, seconds):
        return {"result": name, "command": f"python bench/{name}.py", "seconds": seconds, "ok": True}

    previous = {"started": "t0", "seconds": 30.0, "jobs": [job("a", 10.0), job("b", 20.0)]}
    merged = suite.merge(previous, {"jobs": [job("b", 5.0)]})
    assert [(j["result"], j["seconds"]) for j in merged["jobs"]] == [("a", 10.0), ("b", 5.0)]
    assert merged["seconds"] == 15.0 and merged["separate_runs"] and merged["started"] == "t0"
    assert "the sum of the jobs' wall times" in report.suite_table({**merged, "machine": {
        "cpu": "CPU", "cores": 2, "gpus": 0, "tensorflow": "2.21.0"}})
