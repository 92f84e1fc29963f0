"""The wide (linear) part of a CTR model."""

import tensorflow as tf

from tfctr.layers.embedding import FieldEmbedding
from tfctr.layers.validation import as_shape_list, as_tensor_list


@tf.keras.utils.register_keras_serializable(package="tfctr")
class LinearLogit(tf.keras.layers.Layer):
    """First-order logit ``y = b + Σ_f w_f[id_f] + x_dense · v``, the "wide" part of WDL/DeepFM and LR.

    Per-id weights are a one-dimensional ``FieldEmbedding`` (so lists are pooled the same way).

    Input: the F id tensors of ``FieldEmbedding``, followed by the dense block ``[B, num_dense]`` when
    ``num_dense > 0``. Output ``[B, 1]``.

    Args:
        vocabulary_sizes: rows per field.
        poolings: per field ``None``/``"mean"``/``"sum"`` as in ``FieldEmbedding``.
        num_dense: width of the dense block (0 = none).
        kernel_regularizer: optional regulariser of the whole id-weight table and the dense weights (Keras'
            meaning: every row, every step).
        rows_l2: λ of the L2 penalty on the id weights the batch uses (``FieldEmbedding(rows_l2=)``), what CTR
            libraries mean by embedding regularisation (default 0).

    Example:
        >>> LinearLogit([10, 5])([tf.constant([1, 2]), tf.constant([0, 4])]).shape
        TensorShape([2, 1])
    """

    def __init__(self, vocabulary_sizes, poolings=None, num_dense=0, kernel_regularizer=None, rows_l2=0.0, **kwargs):
        super().__init__(**kwargs)
        if num_dense < 0:
            raise ValueError(f"LinearLogit: num_dense must be >= 0, got {num_dense}")
        self.num_dense = int(num_dense)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
        self.weights_by_id = FieldEmbedding(vocabulary_sizes, 1, poolings, embeddings_initializer="zeros",
                                            embeddings_regularizer=self.kernel_regularizer, rows_l2=rows_l2,
                                            name="id_weights")
        self.rows_l2 = self.weights_by_id.rows_l2
        # as the id-weight table validated them (one list each, per field)
        self.vocabulary_sizes, self.poolings = self.weights_by_id.vocabulary_sizes, self.weights_by_id.poolings
        self.dense_weights = tf.keras.layers.Dense(1, use_bias=False, kernel_regularizer=self.kernel_regularizer,
                                                   name="dense_weights") if self.num_dense else None

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        inputs = as_tensor_list(inputs)
        n_fields = len(self.vocabulary_sizes)
        expected = n_fields + (1 if self.num_dense else 0)
        if len(inputs) != expected:
            raise ValueError(f"LinearLogit expects {expected} tensors ({n_fields} id tensors"
                             + (" + the dense block" if self.num_dense else "") + f"), got {len(inputs)}")
        logit = tf.reduce_sum(self.weights_by_id(list(inputs[:n_fields])), axis=1) + self.bias
        if self.num_dense:
            logit = logit + self.dense_weights(inputs[n_fields])
        return logit

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([tf.TensorShape(as_shape_list(input_shape)[0])[0], 1])

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_sizes=self.vocabulary_sizes,
            poolings=self.poolings,
            num_dense=self.num_dense,
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
            rows_l2=self.rows_l2,
        )
        return config
