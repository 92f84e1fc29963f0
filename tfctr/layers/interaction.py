"""Pairwise interactions of field embeddings."""

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfctr")
class FMInteraction(tf.keras.layers.Layer):
    """Factorization-machine second-order term ``Σ_{i<j} <e_i, e_j>`` (Rendle 2010, eq. 1), in O(F·D) as

        0.5 · Σ_d [ (Σ_f E[:, f, d])^2 − Σ_f E[:, f, d]^2 ].

    Input ``[B, F, D]``, output ``[B, 1]``.

    Example:
        >>> FMInteraction()(tf.ones([2, 3, 4])).numpy().ravel().tolist()
        [12.0, 12.0]
    """

    def call(self, inputs):
        square_of_sum = tf.square(tf.reduce_sum(inputs, axis=1))
        sum_of_squares = tf.reduce_sum(tf.square(inputs), axis=1)
        return 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], 1])
