"""The interaction (teacher) models learn what LR cannot: on data whose true logit is mostly second- and
third-order interactions, one epoch of each beats logistic regression's test logloss."""

import numpy as np
import pytest
import tensorflow as tf

from tfctr import models
from tfctr.data import parquet_dataset, read_columns, write_synthetic
from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.data.synthetic import SyntheticConfig
from tfctr.metrics import logloss
from tfctr.training.train import predict_split
from tfctr.utils import set_seed

INTERACTIONS = SyntheticConfig(n_categorical=6, n_numeric=2, vocabulary_size=12, zipf_exponent=0.5,
                               n_pairs=4, n_triples=3, first_order_scale=0.3, second_order_scale=0.8,
                               third_order_scale=1.2, missing_rate=0.0, seed=5)
TEACHERS = {
    "xdeepfm": {"cin_layer_sizes": [16, 16]},
    "autoint": {"num_layers": 2, "num_heads": 2, "head_dim": 4},
    "xdeepint": {"num_layers": 3},
    "fibinet": {},
    "pnn": {},
}


@pytest.fixture(scope="module")
def interaction_data(tmp_path_factory):
    paths = write_synthetic(tmp_path_factory.mktemp("interactions"), 40_000, 2_000, 5_000, INTERACTIONS)
    spec = fit_spec(infer_spec(paths["train"], exclude=["true_ctr"]), paths["train"])
    return paths, spec


def _test_logloss(name, paths, spec, learning_rate, **hp):
    set_seed(1)
    model = models.build(name, spec, **hp)
    model.compile(tf.keras.optimizers.Adam(learning_rate), "binary_crossentropy")
    model.fit(parquet_dataset(paths["train"], spec, 128, shuffle=True), epochs=1, verbose=0)
    return model, logloss(read_columns(paths["test"], ["label"])["label"], predict_split(model, paths["test"], spec))


@pytest.fixture(scope="module")
def lr_logloss(interaction_data):
    return _test_logloss("lr", *interaction_data, learning_rate=0.02)[1]


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_teacher_beats_logistic_regression(name, interaction_data, lr_logloss, tmp_path):
    paths, spec = interaction_data
    model, loss = _test_logloss(name, paths, spec, 3e-3, embedding_dim=8, **TEACHERS[name])
    print(f"{name}: test logloss {loss:.4f}, LR {lr_logloss:.4f}")
    assert loss < lr_logloss - 0.005, (name, loss, lr_logloss)
    # usable as a KD teacher: the logit model shares the weights and returns sigmoid^-1 of the probability
    logits = models.logit_model(model).predict(parquet_dataset(paths["test"], spec, 4096, with_label=False),
                                               verbose=0).ravel()
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), predict_split(model, paths["test"], spec), atol=1e-6)
    model.save(tmp_path / "teacher.keras")
    again = tf.keras.models.load_model(tmp_path / "teacher.keras")
    np.testing.assert_array_equal(predict_split(again, paths["valid"], spec),
                                  predict_split(model, paths["valid"], spec))
