import numpy as np
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import CrossNetwork, VectorCross


def test_vector_cross_against_numpy():
    x0 = tf.random.normal([4, 5], seed=0)
    x = tf.random.normal([4, 5], seed=1)

    def reference(layer, inputs):
        a, b = inputs
        w, bias = layer.kernel.numpy(), layer.bias.numpy()
        return np.stack([a[i] * (b[i] @ w[:, 0]) + bias + b[i] for i in range(4)])

    check_layer(VectorCross, dict(kernel_initializer=tf.keras.initializers.GlorotUniform(seed=3)), (x0, x),
                numpy_reference=reference, weight_shapes={"kernel": (5, 1), "bias": (5,)})


def test_vector_cross_golden_with_ones():
    layer = VectorCross(kernel_initializer="ones")
    x0 = tf.constant([[1.0, 2.0]])
    # x0 * (x0 . 1) + 0 + x0 = [1, 2] * 3 + [1, 2]
    np.testing.assert_allclose(layer(x0).numpy(), [[4.0, 8.0]])


def _cross_network_reference(layer, x0):
    x = x0
    for cross in layer.cross_layers:
        if layer.kind == "vector":
            x = x0 * (x @ cross.kernel.numpy()) + cross.bias.numpy() + x
        elif layer.projection_dim is None:  # tfrs Cross, full rank: g(W x + b) + diag_scale x
            product = x @ cross._dense.kernel.numpy() + (cross._dense.bias.numpy() if layer.use_bias else 0.0)
            product = np.maximum(product, 0.0) if layer.preactivation is not None else product
            x = x0 * (product + layer.diag_scale * x) + x
        else:  # low rank: W = U V
            projected = (x @ cross._dense_u.kernel.numpy()) @ cross._dense_v.kernel.numpy()
            x = x0 * (projected + cross._dense_v.bias.numpy()) + x
    return x


def test_matrix_cross_network_full_rank():
    x0 = tf.random.normal([3, 4], seed=2)
    check_layer(
        CrossNetwork, dict(num_layers=2, kind="matrix", kernel_initializer=tf.keras.initializers.GlorotUniform(7)),
        x0, numpy_reference=_cross_network_reference, atol=1e-5,
        invalid_kwargs=[{"num_layers": 0}, {"kind": "diagonal"}, {"kind": "vector", "projection_dim": 2}],
    )


def test_vector_cross_network():
    x0 = tf.random.normal([3, 4], seed=2)
    check_layer(CrossNetwork, dict(num_layers=3, kind="vector"), x0, numpy_reference=_cross_network_reference)


def test_low_rank_cross_network_shapes_and_roundtrip():
    x0 = tf.random.normal([3, 6], seed=2)
    layer, _ = check_layer(CrossNetwork, dict(num_layers=2, kind="matrix", projection_dim=2), x0,
                           numpy_reference=_cross_network_reference, atol=1e-5)
    assert sorted(tuple(w.shape) for w in layer.weights) == sorted([(6, 2), (2, 6), (6,)] * 2)


def test_matrix_cross_golden_with_ones():
    layer = CrossNetwork(num_layers=2, kind="matrix", kernel_initializer="ones")
    # layer 1: [1, 2] * ([1, 2] @ ones + 0) + [1, 2] = [4, 8]; layer 2: [1, 2] * (12, 12) + [4, 8] = [16, 32]
    np.testing.assert_allclose(layer(tf.constant([[1.0, 2.0]])).numpy(), [[16.0, 32.0]])


def test_matrix_cross_network_passes_tfrs_options_through():
    x0 = tf.random.normal([3, 4], seed=5)
    layer, _ = check_layer(
        CrossNetwork, dict(num_layers=2, kind="matrix", diag_scale=0.5, use_bias=False, preactivation="relu",
                           kernel_initializer=tf.keras.initializers.GlorotUniform(3)),
        x0, numpy_reference=_cross_network_reference, atol=1e-5,
        invalid_kwargs=[{"diag_scale": -1.0}, {"kind": "vector"}, {"kind": "mix"}],
    )
    assert not any("bias" in w.name for w in layer.weights)
