"""tf.distribute: MirroredStrategy over 2 logical CPU devices gives the weights of single-device training on the
same global batches, for Keras models and every custom train_step; mixed precision trains with float32 outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tfctr import models
from tfctr.training import train
from tfctr.training.distribute import precision

SCRIPT = Path(__file__).parent / "scripts" / "mirrored_equivalence.py"
ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def mirrored(small_data, small_spec, tmp_path_factory):
    spec_path = tmp_path_factory.mktemp("mirrored") / "spec.json"
    small_spec.save(spec_path)
    done = subprocess.run([sys.executable, str(SCRIPT), small_data["train"], str(spec_path)], env=ENV,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["dcnv2", "adaensemble", "distiller", "fusion_search", "bilevel_adaensemble"])
def test_two_replicas_train_like_one_device(mirrored, case):
    # float32 summation order is the only difference: 1e-5 is ~1000x below the size of the updates
    assert mirrored[case]["max_abs_update"] > 1e-3
    assert mirrored[case]["max_abs_difference"] < 1e-5


def test_mixed_precision_trains_with_float32_logits(small_data, small_spec, tmp_path):
    result = train(small_data["train"], small_data["valid"], tmp_path / "run", model="dcnv2", spec=small_spec,
                   epochs=2, batch_size=512, learning_rate=3e-3, embedding_dim=8, hyper_params={"hidden_units": [32]},
                   mixed_precision=True, strategy="mirrored", verbose=0)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored after training
    assert result.model.get_layer("mlp").dtype_policy.compute_dtype == "bfloat16"
    assert result.model.get_layer("logit").dtype_policy.compute_dtype == "float32"
    assert result.model.output.dtype == tf.float32
    assert result.metrics["valid"]["model"]["auc"] > 0.6
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["mixed_precision"] and config["training"]["strategy"] == "mirrored"


@pytest.mark.parametrize("name", models.available())
def test_mixed_precision_reaches_every_layer_with_weights(name, small_spec):
    # a sublayer built with the variable dtype (as TFRS's Cross builds its dense layers) computes in float32
    # between two casts and keeps a model's largest matmuls out of bfloat16
    with precision(True):
        model = models.build(name, small_spec)
    in_float32 = sorted(layer.name for layer in model.submodules if isinstance(layer, tf.keras.layers.Layer)
                        and not isinstance(layer, tf.keras.Model) and layer.weights
                        and layer.compute_dtype != "bfloat16")
    assert in_float32 == [], f"{name}: these layers compute in float32 under mixed precision"
    assert model.get_layer("logit").compute_dtype == "float32"  # the loss's input stays float32


def _tf_config(monkeypatch, cluster, task_type, index):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))


def test_cluster_roles_from_tf_config(monkeypatch):
    from tfctr.training.distribute import ClusterRole

    monkeypatch.delenv("TF_CONFIG", raising=False)
    alone = ClusterRole.from_environment()
    assert alone.task_type is None and alone.is_chief and alone.training_workers("default") == 1
    workers = {"worker": ["a:1", "b:1"]}
    _tf_config(monkeypatch, workers, "worker", 0)
    assert ClusterRole.from_environment().is_chief
    _tf_config(monkeypatch, workers, "worker", 1)
    role = ClusterRole.from_environment()
    assert not role.is_chief and role.worker_index == 1 and role.training_workers("multi_worker") == 2
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"], "ps": ["p:1", "q:1"]}
    _tf_config(monkeypatch, with_chief, "worker", 0)
    role = ClusterRole.from_environment()
    assert not role.is_chief and role.worker_index == 1  # the chief is worker 0 of the synchronous workers
    assert role.training_workers("parameter_server") == 2 and role.num_parameter_servers == 2


def test_cluster_misconfiguration_is_named(monkeypatch, small_data, small_spec):
    from tfctr.data import DataError
    from tfctr.training import strategy
    from tfctr.training.distribute import ClusterRole
    from tfctr.training.distributed_input import sharded_input

    with pytest.raises(ValueError, match="strategy must be one of"):
        strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy("multi_worker")
    _tf_config(monkeypatch, {"worker": ["a:1"], "ps": ["p:1"]}, "worker", 0)
    with pytest.raises(ValueError, match="'chief' task .* worker:0"):
        strategy("parameter_server")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid cluster description"):
        ClusterRole.from_environment()
    _tf_config(monkeypatch, {"worker": ["a:1", "b:1", "c:1"]}, "worker", 0)
    role = ClusterRole.from_environment()
    with pytest.raises(ValueError, match="divisible by the 3 workers"):
        sharded_input(small_data["valid"], small_spec, 512, role, 0, 0, "validation")
    with pytest.raises(DataError, match="validation data .* fewer rows than its batch of 3000"):
        sharded_input(small_data["valid"], small_spec, 9000, role, 0, 0, "validation")
