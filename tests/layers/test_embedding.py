import numpy as np
import pytest
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import DenseBlock, FieldEmbedding
from tfctr.layers.embedding import DENSE_GRADIENT_MAX_ELEMENTS, gather_with_dense_gradient


def _reference(layer, inputs):
    table = layer.embeddings.numpy()
    out = np.zeros((inputs[0].shape[0], len(inputs), table.shape[1]))
    offset = 0
    for f, (ids, size, pooling) in enumerate(zip(inputs, layer.vocabulary_sizes, layer.poolings)):
        for b in range(ids.shape[0]):
            if pooling is None:
                out[b, f] = table[offset + ids[b]]
            else:
                tokens = [t for t in ids[b] if t >= 0]
                total = sum((table[offset + t] for t in tokens), np.zeros(table.shape[1]))
                out[b, f] = total / max(len(tokens), 1) if pooling == "mean" else total
        offset += size
    return out


def test_field_embedding_single_and_pooled_fields():
    inputs = [
        tf.constant([0, 3, 4], tf.int32),
        tf.constant([[1, 2, -1], [-1, -1, -1], [0, 0, 2]], tf.int32),
        tf.constant([5, 0, 1], tf.int32),
        tf.constant([[2, -1], [1, 1], [-1, -1]], tf.int32),
    ]
    check_layer(
        FieldEmbedding,
        dict(vocabulary_sizes=[5, 3, 6, 4], embedding_dim=3, poolings=[None, "mean", None, "sum"],
             embeddings_initializer=tf.keras.initializers.RandomNormal(seed=1)),
        inputs,
        numpy_reference=_reference,
        weight_shapes={"embeddings": (18, 3)},
        invalid_kwargs=[{"embedding_dim": 0}, {"poolings": ["max", None, None, None]}, {"poolings": [None]},
                        {"vocabulary_sizes": []}],
    )


def test_field_embedding_golden_values_with_ones():
    layer = FieldEmbedding([2, 2], 2, embeddings_initializer="ones")
    out = layer([tf.constant([0, 1]), tf.constant([1, 0])])
    np.testing.assert_array_equal(out.numpy(), np.ones((2, 2, 2)))


def test_gather_with_dense_gradient_matches_numpy():
    rng = np.random.default_rng(0)
    table = tf.constant(rng.normal(size=(7, 3)), tf.float32)
    ids = tf.constant([[0, 6, 6], [2, 0, 6]], tf.int32)  # repeated ids must accumulate
    upstream = rng.normal(size=(2, 3, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(table)
        rows = gather_with_dense_gradient(table, ids)
        loss = tf.reduce_sum(rows * upstream)
    grad = tape.gradient(loss, table)
    np.testing.assert_array_equal(rows.numpy(), table.numpy()[ids.numpy()])
    expected = np.zeros((7, 3), np.float32)
    for b in range(2):
        for t in range(3):
            expected[ids.numpy()[b, t]] += upstream[b, t]
    assert isinstance(grad, tf.Tensor)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-6)


def _adam_steps(dense_gradients, steps=3):
    layer = FieldEmbedding([4, 6], 3, poolings=[None, "mean"], dense_gradients=dense_gradients,
                           embeddings_initializer=tf.keras.initializers.RandomNormal(seed=3))
    ids = [tf.constant([1, 1, 3]), tf.constant([[0, 5, -1], [5, 5, 2], [-1, -1, -1]])]
    layer(ids)
    optimizer = tf.keras.optimizers.Adam(0.1)
    target = tf.random.stateless_normal([3, 2, 3], seed=[1, 2])
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(ids) - target))
        (grad,) = tape.gradient(loss, layer.trainable_weights)
        optimizer.apply_gradients([(grad, layer.embeddings)])
    return grad, layer.embeddings.numpy()


def test_dense_and_sparse_embedding_gradients_give_the_same_adam_updates():
    dense_grad, dense_table = _adam_steps(True)
    sparse_grad, sparse_table = _adam_steps(False)
    assert isinstance(dense_grad, tf.Tensor) and isinstance(sparse_grad, tf.IndexedSlices)
    np.testing.assert_allclose(dense_table, sparse_table, rtol=1e-5, atol=1e-6)


def test_dense_gradients_are_chosen_for_small_tables_only():
    def gradient_type(vocabulary_sizes, dim, **kwargs):
        layer = FieldEmbedding(vocabulary_sizes, dim, **kwargs)
        with tf.GradientTape() as tape:
            out = layer([tf.constant([0, 1])])
        return "sparse" if isinstance(tape.gradient(out, layer.embeddings), tf.IndexedSlices) else "dense"

    assert gradient_type([1000], 16) == "dense"
    assert gradient_type([DENSE_GRADIENT_MAX_ELEMENTS // 16 + 1], 16) == "sparse"
    assert gradient_type([1000], 16, dense_gradients=False) == "sparse"
    assert FieldEmbedding.from_config(FieldEmbedding([3], 2, dense_gradients=False).get_config())._dense is False


def test_dense_block_stacks_features():
    check_layer(DenseBlock, {}, [tf.constant([1.0, 2.0]), tf.constant([3.0, 4.0])],
                expected_output=[[1.0, 3.0], [2.0, 4.0]], weight_shapes={})


def test_rows_l2_penalises_the_distinct_rows_the_batch_uses():
    """λ Σ_j ||T_j||² over the distinct rows looked up (repeats once, padding never, unused rows not at all)."""
    layer = FieldEmbedding([5, 4, 3], 2, poolings=[None, "sum", None], rows_l2=0.1,
                           embeddings_initializer=tf.keras.initializers.RandomNormal(seed=2))
    inputs = [tf.constant([1, 1, 4]), tf.constant([[0, 2, -1], [2, -1, -1], [-1, -1, -1]]), tf.constant([0, 0, 0])]
    layer(inputs)
    table = layer.embeddings.numpy()
    rows = {1, 4} | {5 + 0, 5 + 2} | {9 + 0}  # field offsets 0, 5, 9
    expected = 0.1 * sum(float(np.sum(table[j] ** 2)) for j in rows)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-6)
    # the gradient of the penalty reaches only those rows
    with tf.GradientTape() as tape:
        layer(inputs)
        penalty = layer.losses[0]
    grad = tf.convert_to_tensor(tape.gradient(penalty, layer.embeddings)).numpy()
    touched = {int(j) for j in np.nonzero(np.abs(grad).sum(axis=1))[0]}
    assert touched == rows
    np.testing.assert_allclose(grad[sorted(rows)], 0.2 * table[sorted(rows)], rtol=1e-5)


def test_rows_l2_is_validated_and_off_by_default():
    assert FieldEmbedding([3], 2).rows_l2 == 0.0
    with pytest.raises(ValueError, match="rows_l2"):
        FieldEmbedding([3], 2, rows_l2=-1.0)
    layer = FieldEmbedding([3], 2)
    layer([tf.constant([0, 1])])
    assert layer.losses == []
