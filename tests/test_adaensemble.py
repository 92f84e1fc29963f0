"""AdaEnsemble models: training, routing statistics, bi-level steps, export with sparse dispatch and early exit."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model
from tfctr.training import BilevelTraining, RoutingMetrics, routing_statistics, train
from tfctr.training.bilevel import router_variables
from tfctr.training.train import predict_split

SMALL_ENSEMBLE = {"embedding_dim": 4, "num_layers": 3, "expert_kinds": ["dense", "cross", "pin", "conv", "attention"],
                  "k": 2, "gate_reduction_ratio": 4, "depth_prior": [0.3, 0.4, 0.3], "controller": True,
                  "load_weight": 1.0}  # the paper's form: depth controller and load regulariser on
# the bi-level tests check which variables each step moves: two layers of three experts trace in a third of the time
BILEVEL_ENSEMBLE = dict(SMALL_ENSEMBLE, num_layers=2, expert_kinds=["dense", "cross", "pin"], depth_prior=[0.5, 0.5])


@pytest.fixture(scope="module")
def ensemble_run(small_data, small_spec, tmp_path_factory):
    return train(small_data["train"], small_data["valid"], tmp_path_factory.mktemp("ada") / "run",
                 model="adaensemble", test=small_data["test"], spec=small_spec, epochs=1, batch_size=256,
                 learning_rate=3e-3, hyper_params=SMALL_ENSEMBLE, verbose=0)


def test_adaensemble_trains_and_routes_to_every_depth(ensemble_run, small_data):
    assert ensemble_run.metrics["test"]["model"]["auc"] > 0.6
    stats = routing_statistics(ensemble_run.model, parquet_dataset(small_data["test"], ensemble_run.spec, 1024))
    assert len(stats["exit_depths"]) == 3 and sum(stats["exit_depths"]) == pytest.approx(1)
    assert sum(f > 0 for f in stats["exit_depths"]) >= 2  # the controller spreads examples over depths
    for loads in stats["expert_loads"]:  # every example that reaches a layer picks exactly k experts
        assert sum(loads.values()) == pytest.approx(2.0)


def test_exported_model_keeps_early_exit_and_matches_in_process(ensemble_run, small_data, tmp_path):
    run = ensemble_run
    exported = export_saved_model(run.model, run.spec, tmp_path, "adaensemble")
    serving = tf.saved_model.load(str(exported)).signatures["serving_default"]
    ops = {op.type for op in serving.graph.get_operations()}
    for function in serving.graph._functions.values():
        ops |= {node.op for node in function.definition.node_def}
    assert {"DynamicStitch", "ScatterNd"} <= ops  # early exit and sparse dispatch are in the served graph
    for rows in (1, 257):
        raw = arrow_to_serving(pq.read_table(small_data["test"]).slice(0, rows), run.spec)
        served = serving(**{k: tf.constant(v) for k, v in raw.items()})["probability"].numpy().ravel()
        np.testing.assert_allclose(served, predict_split(run.model, small_data["test"], run.spec)[:rows], atol=1e-5)


def test_densemoe_and_routing_metrics_callback(small_data, small_spec):
    model = models.build("densemoe", small_spec, embedding_dim=4, num_layers=2, expert_kinds=["cross", "pin"],
                         gate_reduction_ratio=4)
    model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
    data = parquet_dataset(small_data["valid"], small_spec, 512)
    history = model.fit(data, epochs=1, verbose=0, callbacks=[RoutingMetrics(data.take(2))])
    assert history.history["layer_1_load_0_cross"] == [1.0]  # dense: every expert sees every example
    assert "exit_depth_1" not in history.history


def _bilevel_setup(small_data, small_spec, rows):
    """A seeded adaensemble without jitter, one training and one validation batch, and its router variables."""
    tf.keras.utils.set_random_seed(0)
    network = models.build("adaensemble", small_spec, **dict(BILEVEL_ENSEMBLE, jitter=0.0))
    train_batch = next(iter(parquet_dataset(small_data["train"], small_spec, rows)))
    valid_batch = next(iter(parquet_dataset(small_data["valid"], small_spec, rows)))
    return network, train_batch, valid_batch, router_variables(network)


def test_bilevel_step_updates_routers_on_validation_and_the_rest_on_training(small_data, small_spec):
    network, train_batch, valid_batch, routers = _bilevel_setup(small_data, small_spec, 256)
    assert routers and all("gate" in v.name for v in routers)
    others = [v for v in network.trainable_variables if all(v is not r for r in routers)]
    before_routers = [v.numpy() for v in routers]
    before_others = [v.numpy() for v in others]
    logit = tf.keras.Model(network.inputs, network.get_layer("logit").output)

    def gradients(batch, variables):
        x, y = batch
        with tf.GradientTape() as tape:
            z = logit(x, training=True)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                tf.reshape(tf.cast(y, tf.float32), [-1, 1]), z)) + tf.add_n(logit.losses)
        return tape.gradient(loss, variables)

    expected_router_step = gradients(valid_batch, routers)
    bilevel = BilevelTraining(network, tf.keras.optimizers.SGD(0.1))
    bilevel.compile(optimizer=tf.keras.optimizers.SGD(0.0))  # W frozen: only the router step moves anything
    inputs = BilevelTraining.pair(tf.data.Dataset.from_tensors(train_batch), tf.data.Dataset.from_tensors(valid_batch))
    history = bilevel.fit(inputs, epochs=1, verbose=0)
    assert history.history["val_batch_loss"][0] > 0
    for v, before, g in zip(routers, before_routers, expected_router_step):
        np.testing.assert_allclose(v.numpy(), before - 0.1 * tf.convert_to_tensor(g).numpy(), rtol=1e-4,
                                   atol=1e-6)
    for v, before in zip(others, before_others):
        np.testing.assert_array_equal(v.numpy(), before)


def test_router_every_n_updates_the_routers_on_every_nth_step_only(small_data, small_spec):
    network, train_batch, valid_batch, routers = _bilevel_setup(small_data, small_spec, 128)
    bilevel = BilevelTraining(network, tf.keras.optimizers.SGD(0.1), router_every=3)
    bilevel.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    inputs = BilevelTraining.pair(tf.data.Dataset.from_tensors(train_batch), tf.data.Dataset.from_tensors(valid_batch))
    moved = []
    for _ in range(4):  # steps 0..3: the routers move at steps 0 and 3
        before = [v.numpy() for v in routers]
        bilevel.fit(inputs, epochs=1, verbose=0)
        moved.append(any(not np.array_equal(v.numpy(), b) for v, b in zip(routers, before)))
    assert moved == [True, False, False, True]
    with pytest.raises(ValueError, match="router_every"):
        BilevelTraining(network, router_every=0)


def test_cli_trains_adaensemble_bilevel_with_annealing(small_data, small_spec, tmp_path):
    import json

    from tfctr.cli import main

    small_spec.save(tmp_path / "spec.json")
    main(["train", "--model", "adaensemble", "--train", small_data["train"], "--valid", small_data["valid"],
          "--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "run"), "--epochs", "1",
          "--batch-size", "256", "--learning-rate", "3e-3", "--routing", "bilevel", "--router-every", "2",
          "--anneal-steps", "3",
          "--verbose", "0", "--hp"] + [f"{k}={json.dumps(v)}" for k, v in BILEVEL_ENSEMBLE.items()])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["routing"] == "bilevel" and config["training"]["anneal_steps"] == 3
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["valid"]["model"]["auc"] > 0.55
    model = tf.keras.models.load_model(tmp_path / "run" / "model.keras")
    # annealing ended at the configured k = 2 of every layer, which is what the saved model routes with
    assert [int(layer.gate.active_k.numpy()) for layer in model.get_layer("adaensemble").moes] == [2, 2]
