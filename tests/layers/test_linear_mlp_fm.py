import numpy as np
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import MLP, FMInteraction, LinearLogit


def test_linear_logit_against_numpy():
    inputs = [tf.constant([1, 2, 0]), tf.constant([[0, 2], [-1, -1], [1, -1]]), tf.random.normal([3, 2], seed=4)]

    def reference(layer, x):
        w = layer.weights_by_id.embeddings.numpy()[:, 0]
        v = layer.dense_weights.kernel.numpy()[:, 0]
        out = []
        for b in range(3):
            tokens = [t for t in x[1][b] if t >= 0]
            pooled = sum(w[4 + t] for t in tokens) / max(len(tokens), 1)
            out.append(w[x[0][b]] + pooled + x[2][b] @ v + layer.bias.numpy()[0])
        return np.array(out)[:, None]

    layer = LinearLogit([4, 3], poolings=[None, "mean"], num_dense=2)
    layer(inputs)  # build, then give the zero-initialised id weights values
    layer.weights_by_id.embeddings.assign(tf.random.normal([7, 1], seed=2))
    check_layer(
        LinearLogit, dict(vocabulary_sizes=[4, 3], poolings=[None, "mean"], num_dense=2), inputs,
        weight_shapes={"id_weights/embeddings": (7, 1), "dense_weights/kernel": (2, 1), "bias": (1,)},
        invalid_kwargs=[{"num_dense": -1}],
    )
    np.testing.assert_allclose(layer(inputs).numpy(), reference(layer, [t.numpy() for t in inputs]), atol=1e-6)


def test_mlp_against_numpy():
    x = tf.random.normal([4, 5], seed=0)

    def reference(layer, inputs):
        h = inputs
        for dense in layer.dense_layers:
            h = np.maximum(h @ dense.kernel.numpy() + dense.bias.numpy(), 0.0)
        return h

    check_layer(
        MLP, dict(units=[6, 3], kernel_initializer=tf.keras.initializers.GlorotUniform(seed=0)), x,
        numpy_reference=reference,
        weight_shapes={"dense_0/kernel": (5, 6), "dense_0/bias": (6,), "dense_1/kernel": (6, 3),
                       "dense_1/bias": (3,)},
        invalid_kwargs=[{"units": []}, {"units": [0]}, {"dropout": 1.0}],
    )


def test_mlp_dropout_and_batch_norm_act_only_in_training():
    layer = MLP([8], dropout=0.5, batch_norm=True)
    x = tf.random.normal([16, 4], seed=1)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), layer(x, training=False).numpy())
    assert not np.allclose(layer(x, training=True).numpy(), layer(x, training=False).numpy())
    check_layer(MLP, dict(units=[8], dropout=0.5, batch_norm=True), x)


def test_fm_interaction_against_pairwise_sum():
    x = tf.random.normal([3, 4, 2], seed=5)

    def reference(layer, e):
        out = np.zeros((e.shape[0], 1))
        for b in range(e.shape[0]):
            for i in range(e.shape[1]):
                for j in range(i + 1, e.shape[1]):
                    out[b, 0] += e[b, i] @ e[b, j]
        return out

    check_layer(FMInteraction, {}, x, numpy_reference=reference, weight_shapes={})


def test_linear_logit_penalises_the_rows_a_batch_uses():
    ids = [tf.constant([1, 1, 3]), tf.constant([0, 2, 2])]
    layer = LinearLogit([4, 3], rows_l2=0.5)
    layer(ids)
    layer.weights_by_id.embeddings.assign(tf.reshape(tf.range(7, dtype=tf.float32), [7, 1]))
    layer(ids)
    table = np.arange(7.0)
    used = {1, 3} | {4 + 0, 4 + 2}  # distinct rows of the batch; the second field's rows start at 4
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), 0.5 * sum(table[r] ** 2 for r in used), rtol=1e-6)
    check_layer(LinearLogit, dict(vocabulary_sizes=[4, 3], rows_l2=0.5), ids, invalid_kwargs=[{"rows_l2": -1.0}])
