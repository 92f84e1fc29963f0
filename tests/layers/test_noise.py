"""Training-time noise drawn from a generator the layer owns: dropout and the gate's jitter, with the random
state saved and restored by checkpoints (a resumed run draws the uninterrupted run's masks)."""

import numpy as np
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import Dropout, NoisyCosineGate


def test_dropout_is_the_identity_at_inference_and_passes_the_harness():
    x = tf.random.normal([4, 6], seed=0)
    check_layer(Dropout, dict(rate=0.3, seed=1), x, numpy_reference=lambda layer, inputs: inputs,
                weight_shapes={}, invalid_kwargs=[{"rate": 1.0}, {"rate": -0.1}])


def test_dropout_in_training_zeroes_a_fraction_rate_and_scales_the_rest():
    rate, x = 0.3, np.random.default_rng(0).uniform(1.0, 2.0, size=(200, 50)).astype(np.float32)
    y = Dropout(rate, seed=3)(x, training=True).numpy()
    dropped = y == 0
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)
    assert abs(dropped.mean() - rate) < 0.02  # 10,000 Bernoulli draws: the std of the mean is 0.0046


def _draws_repeat_after_restore(layer, call, tmp_path):
    call()  # builds the layer and moves its generator on
    checkpoint = tf.train.Checkpoint(layer=layer)
    path = checkpoint.write(str(tmp_path / "ckpt"))
    after_save = call()
    assert not np.array_equal(after_save, call()), "consecutive draws should differ"
    checkpoint.read(path).assert_consumed()
    np.testing.assert_array_equal(call(), after_save)


def test_dropout_masks_continue_from_a_checkpoint(tmp_path):
    layer, x = Dropout(0.5), tf.ones([8, 16])
    _draws_repeat_after_restore(layer, lambda: layer(x, training=True).numpy(), tmp_path)


def test_gate_jitter_continues_from_a_checkpoint(tmp_path):
    gate, x0 = NoisyCosineGate(4, k=2, reduction_ratio=2, jitter=0.5), tf.random.normal([8, 3, 4], seed=2)
    _draws_repeat_after_restore(gate, lambda: gate(x0, training=True)[1].numpy(), tmp_path)
