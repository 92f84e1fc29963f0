import numpy as np
import pytest
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import APGDense

B, D_IN, D_OUT, K = 4, 6, 5, 2
X = tf.random.stateless_normal([B, D_IN], seed=[1, 2])
Z1 = tf.random.stateless_normal([B, 3], seed=[2, 2])
Z2 = tf.random.stateless_normal([B, 3], seed=[3, 2])


def _mlp(layers, z):
    for layer in layers:
        z = z @ layer.kernel.numpy() + layer.bias.numpy()
        if layer is not layers[-1]:
            z = np.maximum(z, 0)
    return z


def _attention(layer, zs):
    scores = np.concatenate([np.tanh(z @ layer.attention.kernel.numpy() + layer.attention.bias.numpy())
                             @ layer.attention_score.kernel.numpy() for z in zs], axis=1)
    weights = np.exp(scores - scores.max(1, keepdims=True))
    return weights / weights.sum(1, keepdims=True)


def _generated(layer, zs):
    if len(zs) == 1:
        return _mlp(layer.generators[0], zs[0])
    where, how = layer.aggregation.split("_")
    if where == "input":
        z = {"concat": lambda: np.concatenate(zs, 1), "mean": lambda: sum(zs) / len(zs),
             "attention": lambda: np.einsum("bk,kbd->bd", _attention(layer, zs), np.stack(zs))}[how]()
        return _mlp(layer.generators[0], z)
    outs = np.stack([_mlp(g, z) for g, z in zip(layer.generators, zs)])  # [k, B, s]
    return outs.mean(0) if how == "mean" else np.einsum("bk,kbs->bs", _attention(layer, zs), outs)


def _reference(layer, inputs):
    x, zs = (inputs[0], inputs[1] if isinstance(inputs[1], list) else [inputs[1]]) \
        if isinstance(inputs, (list, tuple)) else (inputs, [inputs])
    params = _generated(layer, zs)
    out = np.zeros((B, D_OUT))
    for i in range(B):  # the explicit per-example weight W_i, then x_i W_i
        p = params[i]
        if layer.generate_bias:
            bias, p = p[:D_OUT], p[D_OUT:]
        else:
            bias = layer.bias.numpy()
        if layer.version == "v1":
            w = p.reshape(D_IN, D_OUT)
        elif layer.version in ("v2", "v3"):
            u = p[:D_IN * K].reshape(D_IN, K)
            s = p[D_IN * K:D_IN * K + K * K].reshape(K, K)
            w = u @ s @ p[D_IN * K + K * K:].reshape(K, D_OUT)
        else:
            a = layer.a.numpy() if layer.version == "v4" else layer.a_l.numpy() @ layer.a_r.numpy()
            bm = layer.b.numpy() if layer.version == "v4" else layer.b_l.numpy() @ layer.b_r.numpy()
            w = a @ p.reshape(K, K) @ bm
        out[i] = x[i] @ w + bias
    return out


@pytest.mark.parametrize("version", ["v1", "v2", "v3", "v4", "v5"])
def test_every_version_equals_the_explicit_weight(version):
    check_layer(APGDense, dict(units=D_OUT, rank=K, version=version, overparam_dim=7), X, numpy_reference=_reference,
                invalid_kwargs=[{"version": "v6"}, {"rank": 0}, {"units": 0}, {"aggregation": "output_concat"}])


@pytest.mark.parametrize("aggregation", ["input_concat", "input_mean", "input_attention", "output_mean",
                                         "output_attention"])
def test_group_and_mix_wise_conditions(aggregation):
    check_layer(APGDense, dict(units=D_OUT, rank=K, version="v4", aggregation=aggregation, generator_units=[8],
                               generate_bias=True), (X, [Z1, Z2]), numpy_reference=_reference)


def test_group_wise_single_condition():
    check_layer(APGDense, dict(units=D_OUT, rank=K), (X, Z1), numpy_reference=_reference)


def test_mean_and_attention_need_equal_condition_widths():
    with pytest.raises(ValueError, match="equal width"):
        APGDense(3, aggregation="input_mean")((X, [Z1, tf.zeros([B, 4])]))


def test_v5_folds_into_v4_with_v4_variables_only():
    layer = APGDense(D_OUT, rank=K, version="v5", overparam_dim=16, generate_bias=True)
    layer(X)
    folded = layer.serving_form()
    assert folded.version == "v4"
    v4 = APGDense(D_OUT, rank=K, version="v4", generate_bias=True)
    v4(X)
    assert sorted(tuple(w.shape) for w in folded.weights) == sorted(tuple(w.shape) for w in v4.weights)
    np.testing.assert_allclose(folded(X).numpy(), layer(X).numpy(), atol=1e-5)
