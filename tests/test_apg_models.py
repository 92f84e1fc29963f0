"""APG inside models: apg_wdl / apg_deepfm / apg_dcnv2 train, reload, and export folded (v5 serves as v4)."""

from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr import models
from tfctr.data import parquet_dataset, read_columns
from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model, fold_for_serving
from tfctr.metrics import logloss
from tfctr.training.train import predict_split
from tfctr.utils import set_seed

HP = {"embedding_dim": 8, "hidden_units": [32, 16]}


@pytest.mark.parametrize("name", ["apg_wdl", "apg_deepfm", "apg_dcnv2"])
def test_apg_model_learns_and_round_trips(name, small_data, small_spec, tmp_path):
    set_seed(0)
    model = models.build(name, small_spec, **HP)
    assert all(type(layer).__name__ == "APGDense" for layer in model.get_layer("mlp").dense_layers)
    model.compile(tf.keras.optimizers.Adam(0.003), "binary_crossentropy")
    model.fit(parquet_dataset(small_data["train"], small_spec, 256, shuffle=True), epochs=2, verbose=0)
    labels = read_columns(small_data["valid"], ["label"])["label"]
    predictions = predict_split(model, small_data["valid"], small_spec)
    constant = logloss(labels, np.full(len(labels), read_columns(small_data["train"], ["label"])["label"].mean()))
    assert logloss(labels, predictions) < constant - 0.01
    model.save(tmp_path / "m.keras")
    again = tf.keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(predict_split(again, small_data["valid"], small_spec), predictions)


def _variable_shapes(version_dir):
    loaded = tf.saved_model.load(str(version_dir))  # kept alive while its variables are read
    return sorted(tuple(v.shape) for v in loaded.signatures["serving_default"].variables if v.trainable)


def _serving_ops(version_dir) -> Counter:
    graph = tf.saved_model.load(str(version_dir)).signatures["serving_default"].graph
    ops = Counter(op.type for op in graph.get_operations())
    for function in graph._functions.values():
        ops.update(node.op for node in function.definition.node_def)
    return ops


def test_exported_v5_has_exactly_the_variables_of_v4_and_predicts_the_same(small_data, small_spec, tmp_path):
    set_seed(1)
    v5 = models.build("apg_wdl", small_spec, **HP)
    v5.compile("adam", "binary_crossentropy")
    v5.fit(parquet_dataset(small_data["train"], small_spec, 512), epochs=1, verbose=0)
    v4 = models.build("apg_wdl", small_spec, **HP, apg={"rank": 4, "version": "v4"})
    folded = fold_for_serving(v5)
    np.testing.assert_allclose(predict_split(folded, small_data["valid"], small_spec),
                               predict_split(v5, small_data["valid"], small_spec), atol=1e-5)
    v5_dir = export_saved_model(v5, small_spec, tmp_path, "v5")
    v4_dir = export_saved_model(v4, small_spec, tmp_path, "v4")
    assert _variable_shapes(v5_dir) == _variable_shapes(v4_dir)
    # the served computations are the same graph: same ops, same counts (so v5 serves at v4's cost)
    assert _serving_ops(v5_dir) == _serving_ops(v4_dir)
    assert not any(64 in shape for shape in _variable_shapes(v5_dir))  # no over-parameterised factor (P = 64)
    raw = arrow_to_serving(pq.read_table(small_data["valid"]).slice(0, 300), small_spec)
    loaded = tf.saved_model.load(str(v5_dir))
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["probability"]
    served = served.numpy()
    np.testing.assert_allclose(served, predict_split(v5, small_data["valid"], small_spec)[:300], atol=1e-5)
