"""Trains each model for a few steps on one CPU device and with MirroredStrategy over 2 logical CPU devices, on
the same global batches and from the same initial weights, and prints the largest weight difference per model
as JSON. Run as a script: the logical devices must exist before TensorFlow initialises (tests/test_distribute)."""

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from tfctr import models  # noqa: E402
from tfctr.data import parquet_dataset  # noqa: E402
from tfctr.features import FeatureSpec  # noqa: E402
from tfctr.training import BilevelTraining, Distiller, FusionSearch  # noqa: E402
from tfctr.training.distill import copy_embedding  # noqa: E402
from tfctr.training.train import compile_ctr  # noqa: E402

train_path, spec_path = sys.argv[1], sys.argv[2]
spec = FeatureSpec.load(spec_path)
batches = list(parquet_dataset(train_path, spec, 256).take(6))
features = {k: tf.concat([b[0][k] for b in batches], 0) for k in batches[0][0]}
labels = tf.concat([b[1] for b in batches], 0)
data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(256)
validation = tf.data.Dataset.from_tensor_slices((features, labels)).skip(768).batch(256)
SMALL = {"embedding_dim": 4}


def build(name, **hp):
    tf.keras.utils.set_random_seed(7)
    return models.build(name, spec, **SMALL, **hp)


def keras_model(name, **hp):
    def make():
        net = build(name, **hp)
        compile_ctr(net, 1e-3)
        return net, net
    return make


def distiller():
    teacher = build("xdeepfm", cin_layer_sizes=[4], hidden_units=[8])
    student = build("dagfm", num_layers=2)
    copy_embedding(teacher, student)
    model = Distiller(student, teacher)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    return model, student


def fusion_search():
    network = build("optfusion_search", num_levels=1)
    model = FusionSearch(network, tf.keras.optimizers.Adam(0.1))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    return model, network


def bilevel():
    network = build("adaensemble", num_layers=2, expert_kinds=["cross", "pin"], k=1, gate_reduction_ratio=4, jitter=0.0,
                    controller=True, load_weight=1.0)
    model = BilevelTraining(network, tf.keras.optimizers.Adam(1e-3))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    return model, network


CASES = {
    "dcnv2": keras_model("dcnv2", hidden_units=[16]),
    "adaensemble": keras_model("adaensemble", num_layers=2, expert_kinds=["cross", "pin", "dense"], k=2,
                               gate_reduction_ratio=4, jitter=0.0, controller=True, load_weight=1.0),
    "distiller": distiller,
    "fusion_search": fusion_search,
    "bilevel_adaensemble": bilevel,
}

result = {}
for name, make in CASES.items():
    print(name, file=sys.stderr, flush=True)
    model, weights_of = make()
    inputs = BilevelTraining.pair(data, validation) if isinstance(model, BilevelTraining) else data
    model.fit(inputs, epochs=1, verbose=0)
    single = weights_of.get_weights()
    # logical CPU devices reduce through one device (the collective all-reduce of CPU devices rejects the
    # embedding table's sparse gradients, whose row counts differ between replicas)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model, weights_of = make()
    model.fit(inputs, epochs=1, verbose=0)
    mirrored = weights_of.get_weights()
    start = make()[1].get_weights()
    result[name] = {"max_abs_difference": float(max(np.max(np.abs(a - b)) for a, b in zip(single, mirrored))),
                    "max_abs_update": float(max(np.max(np.abs(a - b)) for a, b in zip(single, start)))}
print(json.dumps(result))
