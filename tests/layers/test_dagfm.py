import itertools

import numpy as np
import pytest
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import DAGFM, CompressedInteraction, CrossNetwork

B, F, D = 3, 4, 5


def _embeddings(seed=0, shape=(B, F, D)):
    return tf.random.stateless_normal(shape, seed=[seed, 7])


def _edge_matrix(layer, t, i, j):
    """The D×D matrix edge i → j of layer t applies to H_{t-1}[i] (row vector), read off the weights."""
    if layer.interaction_type == "inner":
        return np.diag(layer.p[t].numpy()[:, i, j])
    if layer.interaction_type == "outer":
        return np.outer(layer.p[t].numpy()[i, :, j], layer.q[t].numpy()[j, i, :])
    return layer.p[t].numpy()[i * D:(i + 1) * D, j * D:(j + 1) * D]


def _dagfm_reference(layer, e):
    """Node by node, edge by edge: H_t[j] = H_0[j] ⊙ Σ_{i ≤ j} H_{t-1}[i] · M_ij^{(t)}."""
    connect = layer.connect_kernel.numpy() if layer.connect else np.eye(F)
    out = []
    for b in range(e.shape[0]):
        h0 = np.array([sum(connect[j, f] * e[b, f] for f in range(F)) for j in range(F)])
        states, h = [h0], h0
        for t in range(layer.num_layers):
            h = np.array([h0[j] * sum(h[i] @ _edge_matrix(layer, t, i, j) for i in range(j + 1))
                          for j in range(F)])
            states.append(h)
        if layer.readout == "state_sum":
            out.append(sum(states))
        else:
            out.append(np.concatenate([s.sum(axis=1) for s in states]))
    return np.array(out)


@pytest.mark.parametrize("interaction_type", ["inner", "outer", "kernel"])
def test_dagfm_against_edge_by_edge_reference(interaction_type):
    e = _embeddings()
    shapes = {"inner": {"p_0": (D, F, F), "p_1": (D, F, F)},
              "outer": {"p_0": (F, D, F), "q_0": (F, F, D), "p_1": (F, D, F), "q_1": (F, F, D)},
              "kernel": {"w_0": (F * D, F * D), "w_1": (F * D, F * D)}}[interaction_type]
    layer, out = check_layer(
        DAGFM, {"interaction_type": interaction_type, "num_layers": 2}, e, numpy_reference=_dagfm_reference,
        weight_shapes={"connect": (F, F), **shapes},
        invalid_kwargs=[{"interaction_type": "cosine"}, {"num_layers": 0}, {"output": "logit"}])
    assert out.shape == (B, F * 3)
    # the connect layer starts as the identity: layer 0's readout is the per-field sum of E
    np.testing.assert_allclose(out[:, :F], e.numpy().sum(axis=2), rtol=1e-5, atol=1e-6)
    # both read-outs (KD-DAGFM+'s summed states too), with a trained (non-identity) connect matrix and without
    for output in ("layer_sums", "state_sum"):
        layer = DAGFM(interaction_type, num_layers=2, readout=output)
        layer(e)
        layer.connect_kernel.assign(tf.random.stateless_normal([F, F], seed=[3, 3]))
        np.testing.assert_allclose(layer(e).numpy(), _dagfm_reference(layer, e.numpy()), rtol=1e-5, atol=1e-5)
        layer = DAGFM(interaction_type, num_layers=2, connect=False, readout=output)
        np.testing.assert_allclose(layer(e).numpy(), _dagfm_reference(layer, e.numpy()), rtol=1e-5, atol=1e-5)


def test_inner_with_unit_edges_sums_every_monotone_triple():
    """METHODS.md §5: F = 3, L = 2, all p = 1, C = I: Σ_nodes of layer 2's readout = Σ_{i≤j≤k} Σ_d e_i e_j e_k."""
    e = _embeddings(1, (2, 3, 4))
    layer = DAGFM("inner", num_layers=2, connect=False, kernel_initializer="ones")
    out = layer(e).numpy()
    x = e.numpy()
    expected = [sum(np.sum(x[b, i] * x[b, j] * x[b, k]) for i, j, k in itertools.combinations_with_replacement(
        range(3), 3)) for b in range(2)]
    np.testing.assert_allclose(out[:, 6:9].sum(axis=1), expected, rtol=1e-5)


def test_inner_reproduces_a_cin_layer():
    """CIN's first layer pooled, Σ_d Σ_{i,j} W_ij e_i e_j, is DAGFM-inner's layer-1 readout summed over nodes with
    p_ij = W_ij + W_ji (i < j) and p_ii = W_ii on every d: the inner type spans CIN's interactions."""
    e = _embeddings(2)
    cin = CompressedInteraction([1], split_half=False)
    cin_out = cin(e).numpy()[:, 0]
    w = cin.kernels[0].numpy()[:, 0].reshape(F, F)  # kernel rows are i·F + j (map i of X^0, field j)
    layer = DAGFM("inner", num_layers=1, connect=False)
    layer(e)
    p = np.triu(w + w.T, 1) + np.diag(np.diag(w))
    layer.p[0].assign(np.broadcast_to(p, (D, F, F)))
    np.testing.assert_allclose(layer(e).numpy()[:, F:].sum(axis=1), cin_out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("interaction_type", ["kernel", "outer"])
def test_kernel_and_outer_reproduce_a_cross_layer(interaction_type):
    """A DCN-V2 cross layer's second-order part read out by a vector w, Σ_{j,d'} w_jd' x_jd' (x W)_jd', is the
    bilinear form Σ_{i≤j} e_i^T A_ij e_j with A_ij = W_ij diag(w_j) + (W_ji diag(w_i))^T (i < j). The kernel
    type reproduces it with W_ij := A_ij; the outer type with rank-1 pair matrices, when they are rank 1."""
    e = _embeddings(3)
    rng = np.random.default_rng(0)
    cross = CrossNetwork(1, kind="matrix")
    x0 = tf.reshape(e, [B, F * D])
    cross(x0)
    if interaction_type == "outer":  # rank-1 blocks W_ij = a_ij b_ij^T and a rank-1 readout
        u, v = rng.normal(size=(F, F, D)), rng.normal(size=(F, F, D))
        kernel = np.block([[np.outer(u[i, j], v[i, j]) * (i <= j) for j in range(F)] for i in range(F)])
        readout = np.ones(F * D)
    else:
        kernel = rng.normal(size=(F * D, F * D))
        readout = rng.normal(size=F * D)
    cross.set_weights([kernel.astype(np.float32), np.zeros(F * D, np.float32)])
    cross_second_order = (cross(x0).numpy() - x0.numpy()) @ readout  # x0 ⊙ (x0 W): the order-2 term

    blocks = lambda i, j: kernel[i * D:(i + 1) * D, j * D:(j + 1) * D] * readout[j * D:(j + 1) * D]  # noqa: E731
    pair = {(i, j): blocks(i, j) + (blocks(j, i).T if i < j else 0) for i in range(F) for j in range(i, F)}
    layer = DAGFM(interaction_type, num_layers=1, connect=False)
    layer(e)
    if interaction_type == "kernel":
        w = np.zeros((F * D, F * D))
        for (i, j), a in pair.items():
            w[i * D:(i + 1) * D, j * D:(j + 1) * D] = a
        layer.p[0].assign(w)
    else:
        p, q = np.zeros((F, D, F)), np.zeros((F, F, D))
        for (i, j), a in pair.items():  # the outer type needs each pair matrix to be rank 1: a = p q^T
            left, s, right = np.linalg.svd(a)
            assert s[1] < 1e-6 * max(s[0], 1.0) or i == j, "pair matrix is not rank 1"
            p[i, :, j], q[j, i, :] = left[:, 0] * s[0], right[0]
        layer.p[0].assign(p)
        layer.q[0].assign(q)
    student = layer(e).numpy()[:, F:].sum(axis=1)
    np.testing.assert_allclose(student, cross_second_order, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("interaction_type", ["inner", "outer", "kernel"])
def test_masked_entries_get_no_gradient_and_serving_form_folds_them(interaction_type):
    e = _embeddings(4)
    layer = DAGFM(interaction_type, num_layers=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(e) ** 2)
    grads = dict(zip([w.name for w in layer.trainable_weights], tape.gradient(loss, layer.trainable_weights)))
    lower = np.tril(np.ones((F, F)), -1).astype(bool)  # non-edges i > j
    for w, is_q in [(w, False) for w in layer.p] + [(w, True) for w in layer.q]:
        g = grads[w.name].numpy()
        if interaction_type == "inner":
            unused = g[:, lower]
        elif interaction_type == "kernel":
            unused = g.reshape(F, D, F, D).transpose(0, 2, 1, 3)[lower]
        elif is_q:
            unused = g[lower.T]
        else:
            unused = g.transpose(0, 2, 1)[lower]
        assert np.all(unused == 0), f"{w.name} gets gradient on non-edges"
        assert np.any(g != 0)
    served = layer.serving_form()
    assert not served.apply_mask and layer.needs_folding and not served.needs_folding
    np.testing.assert_allclose(served(e).numpy(), layer(e).numpy(), rtol=1e-6, atol=1e-6)
    for w in served.p:  # non-edge entries are zeros in the served weights
        value = w.numpy()
        assert np.all((value[:, lower] if interaction_type == "inner" else
                       value.reshape(F, D, F, D).transpose(0, 2, 1, 3)[lower] if interaction_type == "kernel" else
                       value.transpose(0, 2, 1)[lower]) == 0)


def test_dagfm_rejects_unknown_field_count():
    with pytest.raises(ValueError, match=r"\[B, F, D\]"):
        DAGFM()(tf.keras.Input(shape=(None, 4)))


def test_a_config_saved_with_the_former_output_name_still_loads():
    config = {**DAGFM("inner", num_layers=2, readout="state_sum").get_config()}
    config["output"] = config.pop("readout")
    with pytest.warns(DeprecationWarning, match="readout"):
        assert DAGFM.from_config(config).readout == "state_sum"
