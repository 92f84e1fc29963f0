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
from tfctr.models.baselines import APG_DEFAULTS
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
    v4 = models.build("apg_wdl", small_spec, **HP, apg={**APG_DEFAULTS, "version": "v4"})
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


def _condition_inputs(model):
    """The inputs of every APG layer's generator: the conditions they were built on."""
    return [layer.generators[0][0].kernel.shape[0] for layer in model.get_layer("mlp").dense_layers]


def test_group_and_mix_wise_conditions_from_named_features(small_data, small_spec, tmp_path):
    names = [f.name for f in small_spec.embedded]
    set_seed(2)
    group = models.build("wdl", small_spec, **HP, apg={"condition": names[0], "rank": [6, 3]})
    # group-wise: every layer's generator reads the D = 8 embedding of the named field, not its layer input
    assert _condition_inputs(group) == [8, 8]
    assert [layer.rank for layer in group.get_layer("mlp").dense_layers] == [6, 3]
    x, _ = next(iter(parquet_dataset(small_data["valid"], small_spec, 64)))
    fields = group.get_layer("field_embedding")([x[f.name] for f in small_spec.embedded])
    mlp, flat = group.get_layer("mlp"), tf.keras.layers.Flatten()(fields)
    dense = group.get_layer("dense_block")([x[f.name] for f in small_spec.dense])
    expected = mlp((tf.concat([flat, dense], axis=1), fields[:, 0, :]))  # the MLP conditioned on field 0
    deep = tf.keras.Model(group.inputs, group.get_layer("mlp").output)
    np.testing.assert_allclose(deep(x).numpy(), expected.numpy(), atol=1e-6)
    # mix-wise over two fields, by concatenation (the default aggregation): generators read 2·D
    mix = models.build("fibinet", small_spec, **HP, apg={"condition": names[:2]})
    assert _condition_inputs(mix) == [16, 16]
    mix.compile(tf.keras.optimizers.Adam(0.003), "binary_crossentropy")
    mix.fit(parquet_dataset(small_data["train"], small_spec, 256), epochs=1, verbose=0)
    mix.save(tmp_path / "mix.keras")
    again = tf.keras.models.load_model(tmp_path / "mix.keras")
    predictions = predict_split(mix, small_data["valid"], small_spec)
    np.testing.assert_array_equal(predict_split(again, small_data["valid"], small_spec), predictions)
    exported = export_saved_model(mix, small_spec, tmp_path, "mix")  # folded (v5 → v4), same predictions
    raw = arrow_to_serving(pq.read_table(small_data["valid"]).slice(0, 200), small_spec)
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})["probability"].numpy().ravel()
    np.testing.assert_allclose(served, predictions[:200], atol=1e-5)
    with pytest.raises(ValueError, match="apg condition 'nope'.*expected the name"):
        models.build("wdl", small_spec, **HP, apg={"condition": "nope"})
    with pytest.raises(ValueError, match="2 layers"):
        models.build("wdl", small_spec, **HP, apg={"rank": [4, 4, 4]})


@pytest.mark.parametrize("name", ["dcn", "xdeepfm", "autoint", "fibinet", "pnn", "xdeepint", "dagfm"])
def test_every_model_with_an_mlp_takes_apg(name, small_spec):
    hp = {"embedding_dim": 4, "hidden_units": [8]}
    model = models.build(name, small_spec, **hp, apg={"rank": 2, "overparam_dim": 8})
    assert [type(layer).__name__ for layer in model.get_layer("mlp").dense_layers] == ["APGDense"]


def test_apg_layers_take_the_mlp_regulariser_and_warn_when_p_is_below_k():
    from tfctr.layers import MLP

    mlp = MLP([6], kernel_regularizer=tf.keras.regularizers.l2(0.5), apg={"rank": 2, "overparam_dim": 3})
    mlp(tf.ones([2, 5]))
    layer = mlp.dense_layers[0]
    # one penalty per shared factor (A_l, A_r, B_l, B_r) and one for the generator's kernel
    assert len(mlp.losses) == 5
    expected = 0.5 * sum(float(tf.reduce_sum(tf.square(w))) for w in (layer.a_l, layer.a_r, layer.b_l, layer.b_r))
    expected += 0.5 * float(tf.reduce_sum(tf.square(layer.generators[0][0].kernel)))
    assert float(tf.add_n(mlp.losses)) == pytest.approx(expected, rel=1e-5)
    with pytest.warns(UserWarning, match="P=2 is below rank K=4"):
        MLP([6], apg={"rank": 4, "overparam_dim": 2})
