import itertools

import numpy as np
import pytest
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import FusionOperation, FusionSupernet
from tfctr.layers.fusion import OPERATIONS, node_names, num_sources

B, W, K = 4, 6, 3


def _inputs(k=K, seed=0):
    return [tf.random.stateless_normal([B, W], seed=[seed, i]) for i in range(k)]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _operation_np(layer, op, xs, mask=None, scaled=False):
    """One fusion operation, the obvious way, on NumPy inputs (already masked)."""
    if op == "add":
        return sum(xs)
    if op == "product":
        connected = [x for i, x in enumerate(xs) if mask is None or mask[i] > 0]
        if scaled:  # Σ over the non-empty subsets S of the connected inputs of Π_{i ∈ S} tanh(x_i)
            terms = [np.tanh(x) for x in connected]
            return sum((np.prod(subset, axis=0) for r in range(1, len(terms) + 1)
                        for subset in itertools.combinations(terms, r)), np.zeros_like(xs[0]))
        return np.prod(connected, axis=0) if connected else np.zeros_like(xs[0])
    if op == "concat":
        kernel, bias = layer.concat.get_weights()
        return np.concatenate(xs, axis=1) @ kernel + bias
    out = 0
    for i, x in enumerate(xs):
        w1, b1 = layer.attention[2 * i].get_weights()
        (w2,) = layer.attention[2 * i + 1].get_weights()
        out = out + (W if scaled else 1) * _softmax(np.maximum(x @ w1 + b1, 0) @ w2) * x
    return out


@pytest.mark.parametrize("op", ["product", "attention"])
def test_scaled_product_and_attention_against_numpy(op):
    xs = [x * 1e-3 for x in _inputs(k=5, seed=3)]  # five inputs of embedding scale
    check_layer(FusionOperation, {"operations": [op], "scaled": True}, xs,
                numpy_reference=lambda layer, xs: _operation_np(layer, op, xs, scaled=True))
    def rms(op_layer):
        return float(np.sqrt((op_layer(xs).numpy() ** 2).mean()))

    add = rms(FusionOperation(["add"]))
    # scaled: both start as ADD; plain: the product is (1e-3)^5, the attention about W times smaller
    assert 0.5 < rms(FusionOperation([op], scaled=True)) / add < 2
    assert (rms(FusionOperation([op])) < 1e-12) if op == "product" else (rms(FusionOperation([op])) / add < 0.4)


def test_scaled_product_with_connections_and_large_inputs():
    """A disconnected input is a factor 1, nothing connected gives zeros, and each factor stays in [0, 2]."""
    xs = [x * 100.0 for x in _inputs(seed=4)]
    layer = FusionOperation(["product"], scaled=True)
    mask = np.array([1.0, 0.0, 1.0], np.float32)
    np.testing.assert_allclose(layer(xs, connections=tf.constant(mask)).numpy(),
                               _operation_np(layer, "product", [x.numpy() for x in xs], mask, scaled=True),
                               rtol=1e-5, atol=1e-5)
    assert np.all(layer(xs, connections=tf.zeros([K])).numpy() == 0)
    out = layer(xs).numpy()
    assert np.all(out >= -1) and np.all(out <= 2 ** K - 1)  # tanh saturates to ±1 in float32


@pytest.mark.parametrize("op", OPERATIONS)
def test_each_operation_against_numpy(op):
    shapes = {"add": {}, "product": {}, "concat": {"concat/kernel": (K * W, W), "concat/bias": (W,)},
              "attention": {f"attention_{kind}_{i}/{w}": shape for i in range(K)
                            for kind, w, shape in [("hidden", "kernel", (W, W)), ("hidden", "bias", (W,)),
                                                   ("score", "kernel", (W, W))]}}[op]
    check_layer(FusionOperation, {"operations": [op]}, _inputs(),
                numpy_reference=lambda layer, xs: _operation_np(layer, op, xs), weight_shapes=shapes,
                invalid_kwargs=[{"operations": ["max"]}, {"operations": []},
                                {"operations": [op], "operation_weights": [0.5, 0.5]}])


def test_soft_mixture_with_connections_and_runtime_weights():
    xs = _inputs(seed=1)
    layer = FusionOperation(OPERATIONS)
    mask = np.array([1.0, 0.0, 1.0], np.float32)
    weights = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    out = layer(xs, connections=tf.constant(mask), op_weights=tf.constant(weights)).numpy()
    masked = [x.numpy() * m for x, m in zip(xs, mask)]
    expected = sum(w * _operation_np(layer, op, masked, mask) for w, op in zip(weights, OPERATIONS))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # the product skips disconnected inputs; the literal code zeroes it; nothing connected gives zeros
    product = FusionOperation(["product"])
    np.testing.assert_allclose(product(xs, connections=tf.constant(mask)).numpy(), masked[0] * masked[2], rtol=1e-6)
    literal = FusionOperation(["product"], product_masked_as_zero=True)
    assert np.all(literal(xs, connections=tf.constant(mask)).numpy() == 0)
    assert np.all(product(xs, connections=tf.zeros([K])).numpy() == 0)
    # constant weights (a derived soft node) equal the same runtime weights
    constant = FusionOperation(OPERATIONS, operation_weights=weights.tolist())
    constant(xs)
    constant.set_weights(layer.get_weights())
    np.testing.assert_allclose(constant(xs).numpy(), layer(xs, op_weights=tf.constant(weights)).numpy(), rtol=1e-6)


def test_search_space_shape():
    assert node_names(2) == ["x0", "cross_0", "cross_1", "mlp_1", "cross_2", "mlp_2", "output"]
    # level i has 2i candidate inputs, cross_0 has x0, the output every node before it (2n + 2)
    assert [num_sources(j) for j in range(1, 7)] == [1, 2, 2, 4, 4, 6]


def _supernet_np(layer, x0):
    """The supernet forward pass node by node from its weights: masks 1[α > 0], softmax/one-hot β."""
    alpha, beta = layer.alpha.numpy(), layer.beta.numpy()
    weights = _softmax(beta) if layer.selection == "soft" else np.eye(4)[beta.argmax(axis=1)]

    def cross(component, x):
        kernel, bias = component.get_weights()
        return x0 * (x @ kernel) + bias + x

    values = [x0, cross(layer.cross_0, x0 * (alpha[1, 0] > 0))]
    for j, (component, fusion) in enumerate(zip(layer.components, layer.fusions), start=2):
        k = num_sources(j)
        mask = (alpha[j, :k] > 0).astype(np.float64)
        masked = [values[i] * mask[i] for i in range(k)]
        fused = sum(w * _operation_np(fusion, op, masked, mask) for w, op in zip(weights[j - 2], OPERATIONS))
        if component.name.startswith("cross"):
            values.append(cross(component, fused))
        else:
            kernel, bias = component.get_weights()
            out = fused @ kernel + bias
            values.append(out if component.name == "output" else np.maximum(out, 0))
    return values[-1]


@pytest.mark.parametrize("selection", ["soft", "one_hot"])
def test_supernet_against_numpy_with_random_connections(selection):
    # the initial α (random) cuts about half the connections, and an input slot cut at initialisation gives its
    # attention weights no gradient: the draw is fixed, not left to the tests that ran before
    tf.keras.utils.set_random_seed(0)
    x0 = tf.random.stateless_normal([B, W], seed=[5, 5])
    if selection == "soft":
        layer, _ = check_layer(FusionSupernet, {"num_levels": 2, "selection": selection}, x0,
                               numpy_reference=_supernet_np, atol=1e-4, rtol=1e-4,
                               invalid_kwargs=[{"num_levels": 0}, {"selection": "gumbel"}])
    else:  # one-hot: the unselected operations' own weights get no gradient, by design (one-hot forward)
        layer = FusionSupernet(num_levels=2, selection=selection)
        np.testing.assert_allclose(layer(x0).numpy(), _supernet_np(layer, x0.numpy()), rtol=1e-4, atol=1e-4)
    alpha = tf.random.stateless_normal(layer.alpha.shape, seed=[6, 6])  # about half the connections cut
    layer.alpha.assign(alpha)
    np.testing.assert_allclose(layer(x0).numpy(), _supernet_np(layer, x0.numpy()), rtol=1e-4, atol=1e-4)


def test_straight_through_masks_pass_the_gradient_to_alpha():
    x0 = tf.random.stateless_normal([B, W], seed=[7, 7])
    layer = FusionSupernet(num_levels=1, selection="one_hot")
    layer(x0)
    with tf.GradientTape() as tape:
        masks = layer.masks()
        weights = layer.operation_weights()
        loss = tf.reduce_sum(masks * tf.random.stateless_normal(masks.shape, seed=[1, 1])) + \
            tf.reduce_sum(weights * tf.random.stateless_normal(weights.shape, seed=[2, 2]))
    d_alpha, d_beta = tape.gradient(loss, [layer.alpha, layer.beta])
    np.testing.assert_array_equal(masks.numpy(), (layer.alpha.numpy() > 0).astype(np.float32))  # exactly 0/1
    np.testing.assert_allclose(d_alpha.numpy(), tf.random.stateless_normal(masks.shape, seed=[1, 1]).numpy())
    assert set(np.unique(weights.numpy())) <= {0.0, 1.0} and np.all(weights.numpy().sum(axis=1) == 1)
    assert np.any(d_beta.numpy() != 0)  # the hard one-hot passes the softmax's gradient to β
