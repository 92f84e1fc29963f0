import numpy as np
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import DenseBlock, FieldEmbedding


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


def test_dense_block_stacks_features():
    check_layer(DenseBlock, {}, [tf.constant([1.0, 2.0]), tf.constant([3.0, 4.0])],
                expected_output=[[1.0, 3.0], [2.0, 4.0]], weight_shapes={})
