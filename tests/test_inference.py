"""Safe feature inference: integer ids become categoricals, counts stay counts; atoms keep their own bucket."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.data.synthetic import SyntheticConfig, SyntheticCTR, write_synthetic
from tfctr.features import CategoricalFeature, FeatureSpec, NumericFeature, integer_kind, quantile_boundaries

CONFIG = dict(n_categorical=4, n_numeric=3, vocabulary_size=500, n_pairs=2, n_triples=1, seed=5)


def test_integer_ids_from_the_synthetic_writer_are_categorical(tmp_path):
    paths = write_synthetic(tmp_path, 20_000, 100, 100, SyntheticConfig(categorical_dtype="int64", **CONFIG))
    assert pq.read_schema(paths["train"]).field("C1").type == pa.int64()
    spec = infer_spec(paths["train"], exclude=["true_ctr"])
    kinds = {f.name: type(f) for f in spec.features}
    assert all(kinds[f"C{i}"] is CategoricalFeature for i in range(1, 5))
    assert all(kinds[f"I{i}"] is NumericFeature and spec[f"I{i}"].transform == "log_square" for i in range(1, 4))
    assert spec["C1"].dtype == "int64"
    table = fit_spec(spec, paths["train"]).describe()
    assert "C1" in table and "categorical" in table and "log_square" in table


def test_criteo_style_counts_stay_counts():
    rng = np.random.default_rng(0)
    for mu in (0.5, 1.5, 3.0):  # the synthetic writer's range of count scales
        counts = np.floor(np.exp(rng.normal(mu, 1.5, size=50_000))).astype(np.int64)
        assert integer_kind("I1", counts)[0] == "count"
    zipf_ids = rng.permutation(10_000)[rng.zipf(1.2, size=50_000) % 10_000]  # popular ids are arbitrary codes
    assert integer_kind("item", zipf_ids)[0] == "categorical"


@pytest.mark.parametrize("name", ["user_id", "itemId", "ad_key", "id", "uid"])
def test_identifier_names_are_categorical(name):
    assert integer_kind(name, np.arange(1000) // 3)[0] == "categorical"


def test_two_valued_integers_are_categorical_and_few_rows_stay_counts():
    flags = np.random.default_rng(2).integers(0, 2, size=500)
    assert integer_kind("is_mobile", flags)[0] == "categorical"
    kind, why = integer_kind("is_mobile", flags[:5])  # five values are no evidence: counts, as from a schema
    assert kind == "count" and "too few" in why


def test_a_schema_alone_still_infers_counts():
    schema = pa.schema([("label", pa.int8()), ("n", pa.int64())])
    assert isinstance(FeatureSpec.infer(schema)["n"], NumericFeature)


def test_quantile_boundaries_give_an_atom_its_own_bucket():
    rng = np.random.default_rng(1)
    gains = np.concatenate([np.zeros(9_000), rng.exponential(5_000, 1_000)])
    bounds = np.array(quantile_boundaries(gains, 16))
    buckets = np.searchsorted(bounds, gains, side="right")
    assert len(set(buckets[gains == 0])) == 1
    assert not set(buckets[gains == 0]) & set(buckets[gains > 0])
    assert len(set(buckets[gains > 0])) >= 10  # the non-zero tail keeps its resolution
    # without atoms it is the plain equal-frequency cut
    normal = rng.normal(size=10_000)
    np.testing.assert_allclose(quantile_boundaries(normal, 4), np.quantile(normal, [0.25, 0.5, 0.75]))


def test_cross_vocabulary_size_limits_the_crossed_fields_only():
    model = SyntheticCTR(SyntheticConfig(cross_vocabulary_size=20, **CONFIG))
    crossed = {int(f) for term in model.pairs + model.triples for f in term}
    table = model.sample(5_000)
    for i in range(4):
        distinct = len(set(table.column(f"C{i + 1}").drop_null().to_pylist()))
        assert (distinct <= 20) == (i in crossed)
    with pytest.raises(ValueError, match="cross_vocabulary_size"):
        SyntheticConfig(cross_vocabulary_size=0)
    with pytest.raises(ValueError, match="categorical_dtype"):
        SyntheticConfig(categorical_dtype="float")


def test_spec_command_writes_an_editable_spec_that_train_fits(small_data, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tfctr.training import train

    spec_path = tmp_path / "spec.json"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([str(Path(sys.executable).parent / "tfctr"), "spec", "--train", small_data["train"],
                           "--exclude", "true_ctr", "--out", str(spec_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "column" in done.stdout and "C1" in done.stdout and "log_square" in done.stdout
    data = json.loads(spec_path.read_text())
    assert all(f.get("vocabulary") is None for f in data["features"] if f["kind"] == "categorical")  # unfitted
    for feature in data["features"]:  # the user's edit: C2 hashed instead of a vocabulary
        if feature["name"] == "C2":
            feature["hash_bins"] = 7
    spec_path.write_text(json.dumps(data))
    result = train(small_data["train"], small_data["valid"], str(tmp_path / "run"), model="lr", epochs=1,
                   spec=str(spec_path), verbose=0)
    assert result.spec["C2"].hash_bins == 7 and result.spec["C2"].vocabulary_size == 7
    assert result.spec.fitted and result.spec["C1"].vocabulary


def test_only_a_marked_or_named_oracle_column_is_kept_out_of_the_features(tmp_path):
    from tfctr.data.parquet import ORACLE_METADATA_KEY, oracle_column_of
    from tfctr.training.train import resolve_spec

    table = pa.table({"label": np.arange(200) % 2, "true_ctr": np.linspace(0.1, 0.9, 200),
                      "city": [f"c{i % 5}" for i in range(200)]})
    plain = tmp_path / "plain.parquet"
    pq.write_table(table, plain)
    assert "true_ctr" in infer_spec(plain).names  # a real column of that name is a feature
    assert "true_ctr" in resolve_spec(str(plain)).names
    assert "true_ctr" not in resolve_spec(str(plain), oracle_column="true_ctr").names  # unless named
    marked = tmp_path / "marked.parquet"
    pq.write_table(table.replace_schema_metadata({ORACLE_METADATA_KEY: b"true_ctr"}), marked)
    assert oracle_column_of(marked) == "true_ctr" and "true_ctr" not in infer_spec(marked).names
    synthetic = write_synthetic(tmp_path / "synthetic", 300, 0, 0, SyntheticConfig(**CONFIG))
    assert oracle_column_of(synthetic["train"]) == "true_ctr"  # tfctr's writer marks it
