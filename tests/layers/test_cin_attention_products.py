import numpy as np
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import (
    BilinearInteraction,
    CompressedInteraction,
    CrossNetwork,
    FieldSelfAttention,
    InnerProduct,
    MixtureCross,
    SENet,
)

B, F, D = 3, 4, 5
E = tf.random.stateless_normal([B, F, D], seed=[7, 0])


def _cin_reference(layer, e):
    x0, x, pooled = e, e, []
    for k, kernel in enumerate(layer.kernels):
        w = kernel.numpy().reshape(x.shape[1], F, -1)  # [H, m, H_k]
        maps = np.zeros((B, w.shape[2], D))
        for b in range(B):
            for n in range(w.shape[2]):
                for d in range(D):
                    maps[b, n, d] = sum(w[i, j, n] * x[b, i, d] * x0[b, j, d]
                                        for i in range(x.shape[1]) for j in range(F))
        last = k == len(layer.kernels) - 1
        if layer.split_half and not last:
            half = maps.shape[1] // 2
            x, out = maps[:, :half], maps[:, half:]
        else:
            x, out = maps, maps
        pooled.append(out.sum(axis=2))
    return np.concatenate(pooled, axis=1)


def test_cin_split_half_and_full():
    layer, out = check_layer(CompressedInteraction, {"layer_sizes": [4, 6]}, E, numpy_reference=_cin_reference,
                             atol=1e-5, weight_shapes={"kernel_0": (16, 4), "kernel_1": (8, 6)},
                             invalid_kwargs=[{"layer_sizes": [3, 2]}, {"layer_sizes": []}])
    assert out.shape == (B, 2 + 6) and layer.output_dim == 8
    check_layer(CompressedInteraction, {"layer_sizes": [3, 2], "split_half": False}, E,
                numpy_reference=_cin_reference, atol=1e-5, weight_shapes={"kernel_0": (16, 3), "kernel_1": (12, 2)})


def _attention_reference(layer, e):
    q, k, v = (e @ w.numpy() for w in (layer.query, layer.key, layer.value))
    heads = []
    for h in range(layer.num_heads):
        s = slice(h * layer.head_dim, (h + 1) * layer.head_dim)
        logits = np.einsum("bid,bjd->bij", q[:, :, s], k[:, :, s])
        if layer.scaled:
            logits = logits / np.sqrt(layer.head_dim)
        weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        heads.append(np.einsum("bij,bjd->bid", weights, v[:, :, s]))
    out = np.concatenate(heads, axis=-1)
    return np.maximum(out + e @ layer.res.numpy(), 0) if layer.residual else out


def test_field_self_attention_against_numpy():
    check_layer(FieldSelfAttention, {"num_heads": 2, "head_dim": 3}, E, numpy_reference=_attention_reference,
                weight_shapes={"query": (5, 6), "key": (5, 6), "value": (5, 6), "residual": (5, 6)},
                invalid_kwargs=[{"num_heads": 0}])
    check_layer(FieldSelfAttention, {"num_heads": 1, "head_dim": 4, "residual": False, "scaled": True}, E,
                numpy_reference=_attention_reference)
    layer, out = check_layer(FieldSelfAttention, {"layer_norm": True}, E)
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-5)


def test_inner_product_senet_bilinear_against_loops():
    pairs = [(i, j) for i in range(F) for j in range(i + 1, F)]
    check_layer(InnerProduct, {}, E, weight_shapes={},
                numpy_reference=lambda layer, e: np.stack([(e[:, i] * e[:, j]).sum(-1) for i, j in pairs], axis=1))

    def senet(layer, e):
        z = e.mean(-1)
        a = np.maximum(np.maximum(z @ layer.squeeze.numpy(), 0) @ layer.excite.numpy(), 0)
        return e * a[:, :, None]

    # SENet's 2 ReLU units can start dead on every row (then squeeze gets no gradient): seeded initialisation
    tf.keras.utils.set_random_seed(1)
    check_layer(SENet, {"reduction_ratio": 2}, E, numpy_reference=senet,
                weight_shapes={"squeeze": (4, 2), "excite": (2, 4)}, invalid_kwargs=[{"reduction_ratio": 0}])

    for kind, count in (("field_all", 1), ("field_each", F), ("field_interaction", len(pairs))):
        def bilinear(layer, e, kind=kind):
            w = layer.kernel.numpy()
            pick = {"field_all": lambda p, i: w[0], "field_each": lambda p, i: w[i],
                    "field_interaction": lambda p, i: w[p]}[kind]
            return np.stack([(e[:, i] @ pick(p, i)) * e[:, j] for p, (i, j) in enumerate(pairs)], axis=1)

        check_layer(BilinearInteraction, {"bilinear_type": kind}, E, numpy_reference=bilinear, atol=1e-5,
                    weight_shapes={"kernel": (count, D, D)}, invalid_kwargs=[{"bilinear_type": "outer"}])


def test_mixture_cross_against_numpy():
    x0 = tf.reshape(E, [B, F * D])
    x = tf.random.stateless_normal([B, F * D], seed=[8, 0])

    def reference(layer, v):
        a, b = v
        out = np.zeros_like(b)
        for n in range(B):
            logits = b[n] @ layer.gate.numpy()
            gates = np.exp(logits) / np.exp(logits).sum()
            for k in range(layer.num_experts):
                low = np.tanh(np.tanh(b[n] @ layer.v.numpy()[k]) @ layer.c.numpy()[k])
                out[n] += gates[k] * a[n] * (low @ layer.u.numpy()[k] + layer.bias.numpy())
        return out + b

    check_layer(MixtureCross, {"num_experts": 3, "projection_dim": 2}, (x0, x), numpy_reference=reference,
                atol=1e-5, weight_shapes={"v": (3, 20, 2), "c": (3, 2, 2), "u": (3, 2, 20), "gate": (20, 3),
                                          "bias": (20,)},
                invalid_kwargs=[{"num_experts": 0}])
    check_layer(CrossNetwork, {"num_layers": 2, "kind": "mix", "projection_dim": 3, "num_experts": 2}, x0,
                invalid_kwargs=[{"kind": "vector", "projection_dim": 2}, {"num_experts": 0}])


def test_outer_product_matmul_gradients_equal_autodiff_of_the_plain_form():
    from tfctr.layers.cin import outer_product_matmul

    x = tf.random.stateless_normal([10, 37], seed=[1, 1])  # 37 maps: three chunks, the last partial
    x0 = tf.random.stateless_normal([10, 5], seed=[2, 1])
    kernel = tf.random.stateless_normal([37 * 5, 7], seed=[3, 1])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, x0, kernel])
        fast = outer_product_matmul(x, x0, kernel)
        plain = tf.matmul(tf.reshape(x[:, :, None] * x0[:, None, :], [10, -1]), kernel)
        weights = tf.random.stateless_normal([10, 7], seed=[4, 1])
        loss_fast, loss_plain = tf.reduce_sum(fast * weights), tf.reduce_sum(plain * weights)
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(tape.gradient(loss_fast, [x, x0, kernel]), tape.gradient(loss_plain, [x, x0, kernel])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
