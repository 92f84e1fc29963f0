import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr.data import DataError, parquet_dataset, read_columns, shard_rows, write_synthetic
from tfctr.data.fitting import fit_spec
from tfctr.features import CategoricalFeature, FeatureSpec, NumericFeature
from tfctr.training.train import exact_metrics  # noqa: F401  (import check of the evaluation path)


def _collect(dataset):
    features, labels = {}, []
    for x, y in dataset:
        for k, v in x.items():
            features.setdefault(k, []).append(v.numpy())
        labels.append(y.numpy())
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


def test_batches_cover_every_row_in_order(small_data, small_spec):
    dataset = parquet_dataset(small_data["valid"], small_spec, batch_size=700)
    sizes = [int(y.shape[0]) for _, y in dataset]
    assert sizes == [700] * 4 + [200]
    _, labels = _collect(dataset)
    np.testing.assert_array_equal(labels, read_columns(small_data["valid"], ["label"])["label"])


def test_shuffle_is_a_seeded_permutation_that_changes_per_epoch(small_data, small_spec):
    plain, plain_y = _collect(parquet_dataset(small_data["valid"], small_spec, 512))
    dataset = parquet_dataset(small_data["valid"], small_spec, 512, shuffle=True, shuffle_buffer=1000, seed=5)
    first, first_y = _collect(dataset)
    second, _ = _collect(dataset)
    again, _ = _collect(parquet_dataset(small_data["valid"], small_spec, 512, shuffle=True, shuffle_buffer=1000,
                                        seed=5))

    def rows(f, y):
        return sorted(map(tuple, np.column_stack([f["C1"], f["I1"], f["C2"], y]).tolist()))

    assert rows(first, first_y) == rows(plain, plain_y)  # same multiset of rows
    assert not np.array_equal(first["C1"], plain["C1"])
    assert not np.array_equal(first["C1"], second["C1"])  # a new order every epoch
    np.testing.assert_array_equal(first["C1"], again["C1"])  # the same seed gives the same order


@pytest.mark.parametrize("files", [1, 4])
def test_shards_partition_the_rows(tmp_path, small_spec, files):
    from conftest import SMALL

    paths = write_synthetic(tmp_path, 0, 4000, 0, SMALL, files_per_split=files)
    full, _ = _collect(parquet_dataset(paths["valid"], small_spec, 256))
    parts = [_collect(parquet_dataset(paths["valid"], small_spec, 256, shard=(2, i)))[0] for i in range(2)]
    assert sum(len(p["C1"]) for p in parts) == len(full["C1"]) == 4000
    assert min(len(p["C1"]) for p in parts) > 0
    merged = sorted(np.concatenate([p["I2"] * 1000 + p["C1"] for p in parts]).tolist())
    assert merged == sorted((full["I2"] * 1000 + full["C1"]).tolist())
    assert [shard_rows(paths["valid"], 2, i) for i in range(2)] == [len(p["C1"]) for p in parts]
    # shuffling permutes rows inside a shard, epoch after epoch, and never moves them to another shard
    shuffled = parquet_dataset(paths["valid"], small_spec, 256, shuffle=True, shuffle_buffer=500, shard=(2, 0))
    for _ in range(2):
        epoch, _ = _collect(shuffled)
        assert sorted((epoch["I2"] * 1000 + epoch["C1"]).tolist()) == sorted((parts[0]["I2"] * 1000
                                                                              + parts[0]["C1"]).tolist())


def test_drop_remainder_and_no_label(small_data, small_spec):
    sizes = [int(y.shape[0]) for _, y in parquet_dataset(small_data["valid"], small_spec, 700, drop_remainder=True)]
    assert sizes == [700] * 4
    batch = next(iter(parquet_dataset(small_data["valid"], small_spec, 10, with_label=False)))
    assert isinstance(batch, dict) and batch["tags"].shape == (10, small_spec["tags"].max_length)


# ----------------------------------------------------------------------------------------------- bad input
def _spec():
    spec = FeatureSpec([CategoricalFeature("city"), NumericFeature("clicks")])
    spec["city"].vocabulary = ["a", "b"]
    spec["clicks"].boundaries = [1.0, 2.0]
    return spec


def _write(tmp_path, table):
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    return str(path)


def _first_batch(path):
    return next(iter(parquet_dataset(path, _spec(), 4)))


@pytest.mark.parametrize("table, message", [
    (pa.table({"label": [0, 1], "City": ["a", "b"], "clicks": [1, 2]}),
     r"column 'city' required by the FeatureSpec is missing \(did you mean 'City'\?\)"),
    (pa.table({"label": [0, 2], "city": ["a", "b"], "clicks": [1, 2]}), r"label column 'label' must be 0 or 1.*2\.0"),
    (pa.table({"label": [0, None], "city": ["a", "b"], "clicks": [1, 2]}), r"label column 'label' has 1 null"),
    (pa.table({"label": [0, 1], "city": [1.5, 2.5], "clicks": [1, 2]}),
     r"column 'city' has Arrow type double.*categorical feature of dtype string"),
    (pa.table({"label": [0, 1], "city": ["a", "b"], "clicks": ["1", "2"]}),
     r"column 'clicks' has Arrow type string.*numeric feature"),
    (pa.table({"label": ["yes", "no"], "city": ["a", "b"], "clicks": [1, 2]}),
     r"label column 'label' has Arrow type string"),
    (pa.table({"lable": [0, 1], "city": ["a", "b"], "clicks": [1, 2]}),
     r"label column 'label' is missing \(did you mean 'lable'\?\)"),
])
def test_bad_input_names_the_column(tmp_path, table, message):
    # schema problems raise DataError when the dataset is made; value problems (labels) when the batch that
    # holds them is read, where tf.data wraps the DataError and keeps its message
    path = _write(tmp_path, table)
    with pytest.raises((DataError, tf.errors.InvalidArgumentError), match=message) as info:
        _first_batch(path)
    assert "bad.parquet" in str(info.value)


def test_empty_file_is_named(tmp_path):
    schema = pa.schema([("label", pa.int8()), ("city", pa.string()), ("clicks", pa.int64())])
    path = _write(tmp_path, schema.empty_table())
    with pytest.raises(DataError, match=r"bad.parquet' is empty"):
        _first_batch(path)


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        parquet_dataset(str(tmp_path / "nope.parquet"), _spec())
    with pytest.raises(DataError, match="contains no"):
        parquet_dataset(str(tmp_path), _spec())
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        parquet_dataset(str(tmp_path / "junk.parquet"), _spec())


def test_spec_that_does_not_match_the_data(small_data):
    spec = FeatureSpec([CategoricalFeature("I1", dtype="string")])
    spec["I1"].vocabulary = ["1"]
    with pytest.raises(DataError, match=r"column 'I1' has Arrow type int64"):
        parquet_dataset(small_data["valid"], spec)


def test_truncated_and_corrupt_files_are_named_in_every_read(tmp_path):
    from tfctr.data.parquet import read_schema

    spec = FeatureSpec(features=[CategoricalFeature("c"), NumericFeature("x")], label="label")
    table = pa.table({"c": [f"v{i % 7}" for i in range(5000)], "x": np.arange(5000, dtype=np.float64),
                      "label": np.arange(5000) % 2})
    good = tmp_path / "good.parquet"
    pq.write_table(table, good, compression="snappy")
    fit_spec(spec, str(good))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(data[: len(data) // 2])  # the footer is gone
    for read in (lambda: read_schema(str(truncated)), lambda: shard_rows(str(truncated), 1, 0),
                 lambda: read_columns(str(truncated), ["label"]),
                 lambda: parquet_dataset([str(good), str(truncated)], spec, 64)):
        with pytest.raises(DataError, match="truncated.parquet"):
            read()
    corrupt = tmp_path / "corrupt.parquet"  # footer intact, a data page overwritten with garbage
    middle = len(data) // 3
    corrupt.write_bytes(data[:middle] + bytes(range(256)) * 4 + data[middle + 1024:])
    # inside tf.data the DataError arrives wrapped in TensorFlow's error, its message (the file) intact
    with pytest.raises(tf.errors.InvalidArgumentError, match="DataError: '.*corrupt.parquet': cannot read its data"):
        for _ in parquet_dataset(str(corrupt), spec, 64):
            pass
    with pytest.raises(DataError, match="corrupt.parquet"):
        read_columns(str(corrupt), ["c", "x"])
