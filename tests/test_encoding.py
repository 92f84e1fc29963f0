"""Training-time (Arrow) and serving-time (TF ops) preprocessing give identical ids on the same raw rows."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tfctr.data.encoding import ArrowEncoder, RawFeatureEncoder, arrow_to_serving
from tfctr.data.fitting import fit_spec
from tfctr.features import CategoricalFeature, FeatureSpec, ListFeature, NumericFeature


def _both_paths(spec, table):
    arrow_ids = ArrowEncoder(spec).encode(table.to_batches()[0])
    raw = arrow_to_serving(table, spec)
    tf_ids = RawFeatureEncoder(spec)({k: tf.constant(v) for k, v in raw.items()})
    return arrow_ids, {k: v.numpy() for k, v in tf_ids.items()}


def test_every_feature_kind_agrees_exactly(tmp_path):
    train = pa.table({
        "label": [0, 1, 0, 1, 0, 1],
        "s": ["a", "b", "a", None, "c", "a"],
        "i": [10, 20, 10, 30, None, 10],
        "h": ["x", "y", "z", "x", None, "w"],
        "cnt": [0, 1, 5, 100, None, 3000],
        "q": [0.1, 0.5, None, 2.5, 3.0, 9.0],
        "z": [1.0, 2.0, 3.0, None, 5.0, 6.0],
        "t": [["a", "b"], [], None, ["c", "a", "b", "d"], ["a"], ["", "b"]],
    })
    path = tmp_path / "train.parquet"
    pq.write_table(train, path)
    spec = fit_spec(FeatureSpec([
        CategoricalFeature("s"), CategoricalFeature("i", dtype="int64"), CategoricalFeature("h", hash_bins=7),
        NumericFeature("cnt", "log_square"), NumericFeature("q", "quantile", num_buckets=3),
        NumericFeature("z", "standardize"), ListFeature("t", max_length=2),
    ]), str(path))
    unseen = pa.table({
        "label": [0, 0, 0, 0],
        "s": ["a", "zzz", None, "c"], "i": [10, 99, None, 30], "h": ["x", "new", None, "w"],
        "cnt": [-5, 2, 10**9, None], "q": [-1.0, float("nan"), 100.0, 0.5], "z": [None, 0.0, 1e6, 3.5],
        "t": [["zz", "a", "b"], None, ["", ""], ["d"]],
    })
    for table in (train, unseen):
        arrow_ids, tf_ids = _both_paths(spec, table)
        assert arrow_ids.keys() == tf_ids.keys()
        for name in arrow_ids:
            assert arrow_ids[name].dtype == tf_ids[name].dtype, name
            np.testing.assert_array_equal(arrow_ids[name], tf_ids[name], err_msg=name)
    arrow_ids, _ = _both_paths(spec, unseen)
    # documented conventions: unseen -> OOV 0, missing numeric -> 0, lists padded with -1 and truncated
    assert arrow_ids["s"][1] == 0 and arrow_ids["i"][1] == 0
    assert arrow_ids["cnt"][3] == 0 and arrow_ids["q"][1] == 0 and arrow_ids["z"][0] == 0.0
    np.testing.assert_array_equal(arrow_ids["t"], [[0, 1], [-1, -1], [-1, -1], [4, -1]])
    assert set(np.unique(arrow_ids["h"])) <= set(range(7))


def test_synthetic_rows_agree(small_data, small_spec):
    table = pq.read_table(small_data["test"]).slice(0, 2000)
    arrow_ids, tf_ids = _both_paths(small_spec, table)
    for name in arrow_ids:
        np.testing.assert_array_equal(arrow_ids[name], tf_ids[name], err_msg=name)


def test_raw_encoder_names_missing_inputs(small_spec):
    import pytest

    with pytest.raises(ValueError, match="lacks features"):
        RawFeatureEncoder(small_spec)({"C1": tf.constant(["a"])})


def test_raw_feature_encoder_through_the_layer_harness(small_data, small_spec):
    from layer_test_case import check_layer

    table = pq.read_table(small_data["valid"]).slice(0, 300)
    raw = {k: tf.constant(v) for k, v in arrow_to_serving(table, small_spec).items()}
    batch = table.to_batches()[0]
    check_layer(RawFeatureEncoder, {"spec": small_spec}, raw,
                numpy_reference=lambda layer, _: ArrowEncoder(small_spec).encode(batch), atol=0, rtol=0,
                weight_shapes={})


def test_fields_encoded_together_keep_their_own_ids(tmp_path):
    # several fields of each kind, sharing raw values, so the fused lookup and the batched bucket search must
    # keep fields apart; quantile boundaries at values float32 cannot hold (0.1, 0.3), infinities, NaN
    train = pa.table({
        "label": [0, 1, 0, 1, 0, 1, 0, 1],
        "s1": ["a", "b", "a", "c", None, "a", "b", "a"],
        "s2": ["c", "a", "c", "c", "b", None, "d", "c"],
        "i1": [1, 2, 1, 3, 1, 2, None, 1],
        "i2": [3, 1, 3, 3, 2, 1, 1, None],
        "t": [["a", "c"], ["b"], None, ["c", "a"], [], ["a"], ["d"], ["b", "b"]],
        "q1": [0.1, 0.3, 0.1, 0.7, 0.3, None, 0.1, 0.9],
        "q2": [5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "c": [0, 3, 10, 100, 7, None, 2, 1000],
        "z1": [0.1, 0.2, 0.3, None, 0.5, 0.6, 0.7, 0.8],
        "z2": [10.0, 20.0, None, 40.0, 50.0, 60.0, 70.0, 80.0],
    })
    path = tmp_path / "train.parquet"
    pq.write_table(train, path)
    spec = fit_spec(FeatureSpec([
        CategoricalFeature("s1"), CategoricalFeature("s2"), CategoricalFeature("i1", dtype="int64"),
        CategoricalFeature("i2", dtype="int64"), ListFeature("t", max_length=2),
        NumericFeature("q1", "quantile", num_buckets=4), NumericFeature("q2", "quantile", num_buckets=2),
        NumericFeature("c", "log_square"), NumericFeature("z1", "standardize"), NumericFeature("z2", "standardize"),
    ]), str(path))
    assert 0.1 in spec["q1"].boundaries or 0.3 in spec["q1"].boundaries
    unseen = pa.table({
        "label": [0, 0, 0, 0],
        "s1": ["c", "d", None, "zz"], "s2": ["a", "zz", "b", None], "i1": [3, 4, None, -1], "i2": [1, 2, 99, None],
        "t": [["d", "a"], ["zz"], None, ["c"]],
        "q1": [float("inf"), float("-inf"), 0.3, float("nan")], "q2": [float("inf"), 3.0, None, -1.0],
        "c": [10**12, -3, None, 0], "z1": [0.1, None, 1e9, -0.3], "z2": [None, 10.0, 0.0, 1e-9],
    })
    for table in (train, unseen):
        arrow_ids, tf_ids = _both_paths(spec, table)
        for name in arrow_ids:
            assert arrow_ids[name].dtype == tf_ids[name].dtype, name
            np.testing.assert_array_equal(arrow_ids[name], tf_ids[name], err_msg=name)
