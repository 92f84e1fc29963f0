import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.features import (
    CategoricalFeature,
    FeatureSpec,
    ListFeature,
    NumericFeature,
    SpecError,
    log_square_boundaries,
)


def _write(tmp_path, table, name="data.parquet"):
    path = tmp_path / name
    pq.write_table(table, path)
    return str(path)


def test_infer_types_overrides_and_exclude(tmp_path):
    table = pa.table({"label": [0, 1], "city": ["a", "b"], "clicks": [1, 2], "price": [0.5, 1.5],
                      "flag": [True, False], "tags": [["x"], []], "row_id": ["r1", "r2"]})
    spec = infer_spec(_write(tmp_path, table), exclude=["row_id"],
                      overrides={"price": {"kind": "numeric", "transform": "standardize"}})
    kinds = {f.name: (f.kind, getattr(f, "transform", getattr(f, "dtype", None))) for f in spec.features}
    assert kinds == {"city": ("categorical", "string"), "clicks": ("numeric", "log_square"),
                     "price": ("numeric", "standardize"), "flag": ("categorical", "int64"), "tags": ("list", "string")}
    with pytest.raises(SpecError, match="'nope'"):
        FeatureSpec.infer(table.schema, exclude=["nope"])
    with pytest.raises(SpecError, match="label column 'click'"):
        FeatureSpec.infer(table.schema, label="click")


def test_vocabulary_min_count_order_and_oov(tmp_path):
    table = pa.table({"label": [0] * 7, "c": ["b", "a", "b", "c", "a", "b", None]})
    spec = fit_spec(FeatureSpec([CategoricalFeature("c", min_count=2)]), _write(tmp_path, table))
    # by descending count, "c" (count 1) and the missing token "" (count 1) are below min_count -> OOV
    assert spec["c"].vocabulary == ["b", "a"]
    assert spec["c"].vocabulary_size == 3


def test_log_square_boundaries_reproduce_the_criteo_transform():
    bounds = np.array(log_square_boundaries(-2, 5000))
    xs = np.arange(-2, 5001)
    buckets = np.searchsorted(bounds, xs, side="right")
    # Criteo value, tagged by region: tfctr keeps small counts (x <= 2) apart from the log region, where
    # the original transform lets e.g. x = 1 and x = 3 collide.
    criteo = np.array([(1, math.floor(math.log(x) ** 2)) if x > 2 else (0, x) for x in xs])
    keys = criteo[:, 0] * 10_000 + criteo[:, 1]
    # two counts share a bucket exactly when they share the (region, Criteo value)
    for key in np.unique(keys):
        assert len(np.unique(buckets[keys == key])) == 1, key
    assert len(np.unique(buckets)) == len(np.unique(keys))
    assert np.all(np.diff(buckets) >= 0)


def test_quantile_and_standardize_fit(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, 20_000)
    table = pa.table({"label": np.zeros(20_000, np.int8), "q": values, "s": values})
    spec = FeatureSpec([NumericFeature("q", "quantile", num_buckets=4), NumericFeature("s", "standardize")])
    fit_spec(spec, _write(tmp_path, table), batch_size=3000, sample_size=5000)
    np.testing.assert_allclose(spec["q"].boundaries, np.quantile(values, [0.25, 0.5, 0.75]), atol=0.1)
    assert spec["q"].vocabulary_size == 5
    assert spec["s"].mean == pytest.approx(values.mean()) and spec["s"].std == pytest.approx(values.std())


def test_list_feature_fits_max_length_and_rejects_separator(tmp_path):
    table = pa.table({"label": [0, 1, 0], "t": [["a", "b", "c"], None, ["a", ""]]})
    spec = fit_spec(FeatureSpec([ListFeature("t")]), _write(tmp_path, table))
    assert spec["t"].max_length == 3 and spec["t"].vocabulary == ["a", "b", "c"]
    bad = pa.table({"label": [0], "t": [["a|b"]]})
    with pytest.raises(SpecError, match="separator"):
        fit_spec(FeatureSpec([ListFeature("t")]), _write(tmp_path, bad, "bad.parquet"))


def test_json_round_trip(small_spec, tmp_path):
    small_spec.save(tmp_path / "spec.json")
    again = FeatureSpec.load(tmp_path / "spec.json")
    assert again == small_spec and again.fitted
    assert [type(f) for f in again.features] == [type(f) for f in small_spec.features]


@pytest.mark.parametrize("bad, message", [
    (dict(kind="numeric", transform="log"), "transform"),
    (dict(kind="categorical", dtype="float"), "dtype"),
    (dict(kind="list", pooling="max"), "pooling"),
    (dict(kind="vector"), "kind"),
    (dict(kind="categorical", bins=3), "invalid arguments"),
])
def test_invalid_feature_declarations(bad, message):
    with pytest.raises(SpecError, match=message):
        FeatureSpec.from_dict({"label": "label", "features": [{"name": "x", **bad}]})


def test_unfitted_spec_is_refused(tmp_path):
    spec = FeatureSpec([CategoricalFeature("c")])
    with pytest.raises(SpecError, match="not fitted"):
        spec.require_fitted()
    with pytest.raises(KeyError, match="did you mean 'c'"):
        spec["C"]
