import numpy as np
import pyarrow.parquet as pq
import pytest

from tfctr.data.formats import avazu_to_parquet, criteo_to_parquet
from tfctr.data.synthetic import SyntheticConfig, SyntheticCTR
from tfctr.metrics import logloss, roc_auc


def test_synthetic_is_deterministic_and_calibrated():
    config = SyntheticConfig(n_categorical=5, n_numeric=2, n_list=1, vocabulary_size=40, seed=11)
    a = SyntheticCTR(config).sample(20_000, "train")
    b = SyntheticCTR(config).sample(20_000, "train")
    assert a.equals(b)
    assert not a.equals(SyntheticCTR(config).sample(20_000, "test"))
    ctr, label = a["true_ctr"].to_numpy(), a["label"].to_numpy()
    assert abs(label.mean() - ctr.mean()) < 0.01  # labels are Bernoulli(true_ctr)
    assert abs(ctr.mean() - config.base_ctr) < 0.05
    assert roc_auc(label, ctr) > 0.7  # there is signal to learn
    assert a.schema.names == ["label", "I1", "I2", "C1", "C2", "C3", "C4", "C5", "tags", "true_ctr"]
    assert 0.02 < a["C1"].null_count / a.num_rows < 0.08


def test_third_order_part_is_present():
    model = SyntheticCTR(SyntheticConfig(n_categorical=4, n_numeric=1, n_triples=2, seed=1))
    cats, counts, lists = model._draw(2000, np.random.default_rng(0))
    first, second, third, user = model._logit_parts(cats, counts, lists)
    assert np.std(third) > 0 and np.std(second) > 0
    assert np.all(user == 0)  # no user-dependent part unless asked for


def test_user_dependent_part_depends_on_the_users_group():
    config = SyntheticConfig(n_categorical=4, n_numeric=1, vocabulary_size=50, n_user_groups=3,
                             n_user_dependent_fields=2, seed=2)
    model = SyntheticCTR(config)
    assert model.user_fields == [1, 2]
    cats, counts, lists = model._draw(3000, np.random.default_rng(0))
    user = model._logit_parts(cats, counts, lists)[3]
    # slow reference: look the weight of each row up by hand
    for row in range(0, 3000, 97):
        group = model.user_group[cats[row, 0]]
        expected = sum(model.group_weights[group, slot, cats[row, f]] for slot, f in enumerate([1, 2]))
        assert user[row] == pytest.approx(expected)
    # the same item value has different weights in different groups: the pattern is not first order
    assert not np.allclose(model.group_weights[0], model.group_weights[1])
    total = model.true_logit(cats, counts, lists) - model.bias
    parts = model._logit_parts(cats, counts, lists)
    assert np.std(model.scales[3] * parts[3]) == pytest.approx(config.user_dependent_scale, rel=0.1)
    assert total == pytest.approx(sum(s * p for s, p in zip(model.scales, parts)))
    with pytest.raises(ValueError, match="n_categorical"):
        SyntheticConfig(n_categorical=1, n_user_groups=2)


def test_data_without_user_groups_is_unchanged_by_the_option():
    base = SyntheticCTR(SyntheticConfig(n_categorical=3, n_numeric=1, seed=4)).sample(500, "test")
    again = SyntheticCTR(SyntheticConfig(n_categorical=3, n_numeric=1, seed=4, n_user_dependent_fields=2,
                                         user_dependent_scale=2.0)).sample(500, "test")
    assert base.equals(again)


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(y, s) == pytest.approx(pairwise, abs=1e-12)
    p = rng.random(300)
    assert logloss(y, p) == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    with pytest.raises(ValueError, match="single class"):
        roc_auc(np.ones(3), np.ones(3))


def test_criteo_tsv_to_parquet(tmp_path):
    lines = ["1\t" + "\t".join(["5", ""] + ["1"] * 11) + "\t" + "\t".join(["68fd1e64", ""] + ["abc"] * 24),
             "0\t" + "\t".join(["-1", "7"] + [""] * 11) + "\t" + "\t".join(["80e26c9b"] * 26)]
    (tmp_path / "day.tsv").write_text("\n".join(lines) + "\n")
    rows = criteo_to_parquet(tmp_path / "day.tsv", tmp_path / "day.parquet")
    table = pq.read_table(tmp_path / "day.parquet")
    assert rows == 2 and table.num_columns == 40
    assert table["label"].to_pylist() == [1, 0]
    assert table["I1"].to_pylist() == [5, -1] and table["I2"].to_pylist() == [None, 7]
    assert table["C1"].to_pylist() == ["68fd1e64", "80e26c9b"] and table["C2"].to_pylist() == [None, "80e26c9b"]


def test_avazu_csv_to_parquet(tmp_path):
    (tmp_path / "train.csv").write_text(
        "id,click,hour,C1,banner_pos,site_id\n"
        "1000009418151094273,0,14102100,1005,0,1fbe01fe\n"
        "10000169349117863715,1,14102314,1002,1,fe8cc448\n")
    rows = avazu_to_parquet(tmp_path / "train.csv", tmp_path / "train.parquet")
    table = pq.read_table(tmp_path / "train.parquet")
    assert rows == 2 and "id" not in table.column_names
    assert table["label"].to_pylist() == [0, 1]
    assert table["hour_of_day"].to_pylist() == ["0", "14"]
    assert table["weekday"].to_pylist() == ["1", "3"]  # 2014-10-21 Tuesday, 2014-10-23 Thursday (Mon = 0)
    assert table["site_id"].to_pylist() == ["1fbe01fe", "fe8cc448"]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an Avazu CSV"):
        avazu_to_parquet(tmp_path / "other.csv", tmp_path / "other.parquet")
