import numpy as np
import pytest
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import (
    ConvExpert,
    CrossExpert,
    GatedDenseExpert,
    MixtureCross,
    PINExpert,
    PolynomialInteraction,
    SelfAttentionExpert,
    SlotDense,
    SparseMoE,
    SubspaceSplit,
    VectorCross,
)

B, F, D = 3, 4, 6


def _embeddings(seed=0):
    return tf.random.stateless_normal([B, F, D], seed=[seed, 0])


def _slot_dense_np(x, kernel, bias=None):
    out = np.zeros((x.shape[0], kernel.shape[1], x.shape[2]))
    for b in range(x.shape[0]):
        for m in range(kernel.shape[1]):
            for j in range(x.shape[2]):
                out[b, m, j] = sum(x[b, n, j] * kernel[n, m] for n in range(x.shape[1]))
                out[b, m, j] += 0.0 if bias is None else bias[m]
    return out


def test_subspace_split_and_inverse():
    e = _embeddings()
    for h in (1, 2, D):
        c = D // h

        def reference(layer, x, h=h, c=c):
            out = np.zeros((B, F * h, c))
            for b in range(B):
                for k in range(h):
                    for f in range(F):
                        out[b, k * F + f] = x[b, f, k * c:(k + 1) * c]
            return out

        _, slots = check_layer(SubspaceSplit, {"num_subspaces": h}, e, numpy_reference=reference, weight_shapes={},
                               invalid_kwargs=[{"num_subspaces": 0}])
        _, back = check_layer(SubspaceSplit, {"num_subspaces": h, "inverse": True}, tf.constant(slots),
                              weight_shapes={})
        np.testing.assert_array_equal(back, e.numpy())
    import pytest

    with pytest.raises(ValueError, match="not divisible"):
        SubspaceSplit(4)(e)


def test_slot_dense_against_loops():
    x = SubspaceSplit(2)(_embeddings())
    check_layer(SlotDense, {"units": 5, "activation": "tanh"}, x,
                numpy_reference=lambda layer, v: np.tanh(_slot_dense_np(v, layer.kernel.numpy(), layer.bias.numpy())),
                weight_shapes={"kernel": (8, 5), "bias": (5,)}, invalid_kwargs=[{"units": 0}])


def test_polynomial_interaction_residual_and_concat():
    x0 = SubspaceSplit(D)(_embeddings())  # bit-wise: [B, F·D, 1]

    def reference(layer, v):
        x, outs = v, []
        for kernel in layer.kernels:
            x = x * _slot_dense_np(v, kernel.kernel.numpy()) + (x if layer.residual else 0)
            outs.append(x)
        return x if layer.residual else np.concatenate(outs, axis=1)

    check_layer(PolynomialInteraction, {"num_layers": 3}, x0, numpy_reference=reference, atol=1e-5,
                invalid_kwargs=[{"num_layers": 0}])
    check_layer(PolynomialInteraction, {"num_layers": 2, "residual": False}, x0, numpy_reference=reference,
                atol=1e-5)


def _expert_inputs(h=1):
    split = SubspaceSplit(h)
    return split(_embeddings(1)), split(_embeddings(2))


def test_cross_and_pin_experts_against_numpy():
    x, x0 = _expert_inputs(h=2)
    check_layer(CrossExpert, {}, (x0, x), atol=1e-5, numpy_reference=lambda layer, v: v[0] * _slot_dense_np(
        v[1], layer.dense.kernel.numpy(), layer.dense.bias.numpy()))
    check_layer(PINExpert, {}, (x0, x), atol=1e-5, numpy_reference=lambda layer, v: v[1] * _slot_dense_np(
        v[0], layer.kernels[0].kernel.numpy()))


def test_gated_dense_expert_against_numpy():
    x, x0 = _expert_inputs(h=1)

    def reference(layer, v):
        relu = _slot_dense_np(v[1], layer.dense.kernel.numpy(), layer.dense.bias.numpy()).clip(min=0)
        flat = v[0].reshape(B, -1)
        hidden = (flat @ layer.gate_hidden.kernel.numpy() + layer.gate_hidden.bias.numpy()).clip(min=0)
        gate = 1 / (1 + np.exp(-(hidden @ layer.gate_out.kernel.numpy() + layer.gate_out.bias.numpy())))
        return relu * 2 * gate[:, :, None]

    check_layer(GatedDenseExpert, {"reduction_ratio": 4}, (x0, x), numpy_reference=reference,
                invalid_kwargs=[{"reduction_ratio": 0}])
    check_layer(GatedDenseExpert, {"gated": False}, (x0, x), numpy_reference=lambda layer, v: _slot_dense_np(
        v[1], layer.dense.kernel.numpy(), layer.dense.bias.numpy()).clip(min=0))


def test_conv_expert_against_numpy():
    x, x0 = _expert_inputs(h=D)  # [B, 24, 1]

    def reference(layer, v):
        reduced = _slot_dense_np(v[1], layer.reduce.kernel.numpy(), layer.reduce.bias.numpy())  # [B, R, 1]
        kernel, bias = layer.conv.kernel.numpy(), layer.conv.bias.numpy()  # [k, 1, filters]
        steps = reduced.shape[1] - kernel.shape[0] + 1
        conv = np.array([[[sum(reduced[b, t + i, 0] * kernel[i, 0, f] for i in range(kernel.shape[0])) + bias[f]
                           for f in range(kernel.shape[2])] for t in range(steps)] for b in range(B)])
        pooled = np.maximum(conv[:, 0:steps - 1:2], conv[:, 1:steps:2])[:, :steps // 2]
        flat = pooled.reshape(B, -1) @ layer.project.kernel.numpy() + layer.project.bias.numpy()
        return flat.reshape(v[1].shape)

    check_layer(ConvExpert, {"reduced_slots": 9, "filters": 3, "kernel_size": 4}, (x0, x), numpy_reference=reference,
                atol=1e-5, invalid_kwargs=[{"filters": 0}])


def test_self_attention_expert_against_numpy():
    x, x0 = _expert_inputs(h=2)

    def gelu(v):
        from math import erf, sqrt
        return v * 0.5 * (1 + np.vectorize(erf)(v / sqrt(2)))

    def reference(layer, v):
        fields = np.zeros((B, F, D))
        c = D // 2
        for k in range(2):
            for f in range(F):
                fields[:, f, k * c:(k + 1) * c] = v[1][:, k * F + f]
        att = layer.attention
        q, k_, val = (gelu(fields @ w.numpy()) for w in (att.query, att.key, att.value))
        heads = []
        for h in range(att.num_heads):
            s = slice(h * att.head_dim, (h + 1) * att.head_dim)
            logits = q[:, :, s] @ k_[:, :, s].transpose(0, 2, 1) / np.sqrt(att.head_dim)
            weights = np.exp(logits - logits.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            heads.append(weights @ val[:, :, s])
        out = gelu(np.concatenate(heads, -1) @ layer.attention_output.kernel.numpy()
                   + layer.attention_output.bias.numpy())
        mean, var = out.mean(1, keepdims=True), out.var(1, keepdims=True)
        normed = (out - mean) / np.sqrt(var + 1e-3) * layer.norm.gamma.numpy() + layer.norm.beta.numpy()
        projected = (normed.reshape(B, -1) @ layer.project.kernel.numpy() + layer.project.bias.numpy())
        projected = projected.reshape(B, F, D)
        return np.concatenate([projected[:, :, k * c:(k + 1) * c] for k in range(2)], axis=1)

    check_layer(SelfAttentionExpert, {"num_subspaces": 2}, (x0, x), numpy_reference=reference, atol=1e-5)


@pytest.mark.parametrize("layer, x0, x", [
    (VectorCross(), tf.ones([2, 5]), tf.ones([2, 6])),
    (MixtureCross(), tf.ones([2, 5]), tf.ones([2, 4])),
    (PolynomialInteraction(1), tf.ones([2, 6, 1]), tf.ones([2, 5, 1])),
    (CrossExpert(), tf.ones([2, 6, 2]), tf.ones([2, 6, 1])),
    (SparseMoE(["dense", "cross"], k=1), tf.ones([2, 6, 2]), tf.ones([2, 3, 2])),
])
def test_every_pair_layer_takes_x0_first_and_checks_the_shapes(layer, x0, x):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}: x0 .* and x .* must have the same shape"):
        layer((x0, x))
