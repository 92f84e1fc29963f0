"""Every registered model builds, trains one short epoch, beats a constant predictor and reloads identically."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfctr import models
from tfctr.data import parquet_dataset, read_columns
from tfctr.metrics import evaluate, logloss
from tfctr.training.train import predict_split
from tfctr.utils import set_seed


@pytest.mark.parametrize("name", ["lr", "wdl", "deepfm", "dcn", "dcnv2"])
def test_model_learns_and_round_trips(name, small_data, small_spec, tmp_path):
    set_seed(0)
    hp = {} if name == "lr" else {"embedding_dim": 8, "hidden_units": [32, 16]}
    model = models.build(name, small_spec, **hp)
    assert model.output_names == ["probability"] and model.get_layer("logit") is not None
    model.compile(tf.keras.optimizers.Adam(0.01 if name == "lr" else 0.003), "binary_crossentropy")
    model.fit(parquet_dataset(small_data["train"], small_spec, 256, shuffle=True), epochs=1, verbose=0)
    labels = read_columns(small_data["valid"], ["label"])["label"]
    predictions = predict_split(model, small_data["valid"], small_spec)
    constant = logloss(labels, np.full(len(labels), read_columns(small_data["train"], ["label"])["label"].mean()))
    metrics = evaluate(labels, predictions)
    assert metrics["logloss"] < constant - 0.01, (metrics, constant)
    assert metrics["auc"] > 0.6

    model.save(tmp_path / "m.keras")
    again = tf.keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(predict_split(again, small_data["valid"], small_spec), predictions)
    logits = models.logit_model(model).predict(parquet_dataset(small_data["valid"], small_spec, 4096,
                                                               with_label=False), verbose=0).ravel()
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), predictions, atol=1e-6)


def test_dcnv2_structures_and_low_rank(small_spec):
    stacked = models.build("dcnv2", small_spec, hidden_units=[8], embedding_dim=4)
    parallel = models.build("dcnv2", small_spec, hidden_units=[8], embedding_dim=4, structure="parallel")
    low_rank = models.build("dcnv2", small_spec, hidden_units=[8], embedding_dim=4, projection_dim=2)
    mix = models.build("dcnv2", small_spec, hidden_units=[8], embedding_dim=4, projection_dim=2, mixture_experts=3)
    assert [type(layer).__name__ for layer in mix.get_layer("cross").cross_layers] == ["MixtureCross"] * 3
    assert "cross_and_deep" in [layer.name for layer in parallel.layers]
    assert "cross_and_deep" not in [layer.name for layer in stacked.layers]
    assert low_rank.get_layer("cross").count_params() < stacked.get_layer("cross").count_params()
    with pytest.raises(ValueError, match="structure"):
        models.build("dcnv2", small_spec, structure="diagonal")


def test_registry_errors(small_spec):
    assert {"lr", "wdl", "deepfm", "dcn", "dcnv2"} <= set(models.available())
    with pytest.raises(KeyError, match="unknown model 'dcn3'"):
        models.build("dcn3", small_spec)
    with pytest.raises(TypeError, match=r"no hyper-parameters \['hidden'\]"):
        models.build("wdl", small_spec, hidden=[3])


def test_same_seed_same_model(small_spec):
    weights = []
    for _ in range(2):
        set_seed(42)
        weights.append(models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8]).get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_former_depth_names_are_deprecated_aliases_of_num_layers(small_spec):
    for model, former, current, value in (("dcnv2", "num_cross_layers", "num_layers", 2),
                                          ("autoint", "attention_layers", "num_layers", 2),
                                          ("xdeepint", "pin_layers", "num_layers", 2),
                                          ("densemoe", "experts", "expert_kinds", ["cross", "dense"])):
        assert current in models.hyper_parameters(model) and former not in models.hyper_parameters(model)
        with pytest.warns(DeprecationWarning, match=f"{former} is now called {current}"):
            built = models.build(model, small_spec, embedding_dim=4, **{former: value})
        assert json.loads(built.tfctr_card)["hyper_parameters"][current] == value
    with pytest.raises(TypeError, match="not both"):
        models.build("dcnv2", small_spec, num_layers=2, num_cross_layers=3)
