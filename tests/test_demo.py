from tfctr.demo import run_demo


def test_demo_end_to_end_on_small_data(tmp_path):
    result = run_demo(tmp_path / "demo", train_rows=20_000, epochs=1, check_rows=500)
    test = result["metrics"]["test"]
    assert test["model"]["auc"] > 0.55 and test["bayes_optimal"]["auc"] > test["model"]["auc"]
    assert result["max_abs_diff"] <= 1e-6 and result["grpc_max_abs_diff"] <= 1e-6
