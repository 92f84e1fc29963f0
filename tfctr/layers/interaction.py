"""Pairwise interactions of field embeddings: FM, PNN's inner product, FiBiNET's SENet and bilinear layers."""

import numpy as np
import tensorflow as tf

from tfctr.layers.validation import choice, fresh, positive_int


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


def _pairs(fields: int):
    """Row and column indices of the F(F-1)/2 field pairs i < j, in row-major order."""
    rows, cols = np.triu_indices(fields, k=1)
    return rows.tolist(), cols.tolist()


@tf.keras.utils.register_keras_serializable(package="tfctr")
class InnerProduct(tf.keras.layers.Layer):
    """Pairwise inner products of field embeddings (PNN's product layer, Qu et al. 2016, IPNN):
    ``p_ij = <e_i, e_j>`` for i < j in row-major order.

    Input ``[B, F, D]``, output ``[B, F(F-1)/2]``.

    Example:
        >>> InnerProduct()(tf.ones([2, 4, 3])).shape
        TensorShape([2, 6])
    """

    def call(self, inputs):
        fields = inputs.shape[1]
        rows, cols = _pairs(fields)
        # all inner products at once as the Gram matrix E E^T [B, F, F], then its upper triangle
        gram = tf.reshape(tf.matmul(inputs, inputs, transpose_b=True), [-1, fields * fields])
        return tf.gather(gram, [i * fields + j for i, j in zip(rows, cols)], axis=1)

    def compute_output_shape(self, input_shape):
        fields = int(input_shape[1])
        return tf.TensorShape([input_shape[0], fields * (fields - 1) // 2])


@tf.keras.utils.register_keras_serializable(package="tfctr")
class SENet(tf.keras.layers.Layer):
    """FiBiNET's squeeze-excitation over fields (Huang et al. 2019, eqs. 3-5):
    ``z_f = mean_d E[:, f, d]``, ``a = ReLU(W_2 ReLU(W_1 z))``, output ``E[:, f, :] · a_f``.

    Input and output ``[B, F, D]``.

    Args:
        reduction_ratio: W_1 maps F to max(1, F // r) (default 3).
        kernel_initializer: initialiser of W_1, W_2 (default ``"glorot_uniform"``).
    """

    def __init__(self, reduction_ratio=3, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = positive_int("SENet", "reduction_ratio", reduction_ratio)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        fields = int(input_shape[1])
        hidden = max(1, fields // self.reduction_ratio)
        self.squeeze = self.add_weight(name="squeeze", shape=(fields, hidden),
                                       initializer=fresh(self.kernel_initializer))
        self.excite = self.add_weight(name="excite", shape=(hidden, fields), initializer=fresh(self.kernel_initializer))
        super().build(input_shape)

    def call(self, inputs):
        z = tf.reduce_mean(inputs, axis=-1)
        weights = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(z, self.squeeze)), self.excite))
        return inputs * weights[:, :, None]

    def get_config(self):
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio,
                      kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer))
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class BilinearInteraction(tf.keras.layers.Layer):
    """FiBiNET's bilinear interaction (Huang et al. 2019, eqs. 6-8): ``p_ij = (e_i W) ⊙ e_j`` for i < j, with one
    W ∈ R^{D×D} shared by all pairs (``"field_all"``), one per field i (``"field_each"``) or one per pair
    (``"field_interaction"``).

    Input ``[B, F, D]``, output ``[B, F(F-1)/2, D]``.

    Args:
        bilinear_type: ``"field_all"`` (default), ``"field_each"`` or ``"field_interaction"``.
        kernel_initializer: initialiser of the W (default ``"glorot_uniform"``).
    """

    def __init__(self, bilinear_type="field_all", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.bilinear_type = choice("BilinearInteraction", "bilinear_type", bilinear_type,
                                    {"field_all", "field_each", "field_interaction"})
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        fields, dim = int(input_shape[1]), int(input_shape[2])
        count = {"field_all": 1, "field_each": fields, "field_interaction": fields * (fields - 1) // 2}
        self.kernel = self.add_weight(name="kernel", shape=(count[self.bilinear_type], dim, dim),
                                      initializer=fresh(self.kernel_initializer))
        super().build(input_shape)

    def call(self, inputs):
        fields, dim = inputs.shape[1], inputs.shape[2]
        # pairs (i, j > i) are contiguous per i: part i = (e_i W_i·) ⊙ [e_{i+1}, ..., e_{F-1}] with e_i times all
        # its pairs' kernels in one matmul. The right factors are stacked from the unstacked fields: cheaper in
        # the backward pass than one gather of all pairs (a transpose, a segment sum and a transpose back).
        counts = [fields - 1 - i for i in range(fields - 1)]
        columns = tf.unstack(inputs, axis=1)
        if self.bilinear_type == "field_all":
            lefts = [e[:, None, :] for e in tf.unstack(tf.tensordot(inputs, self.kernel[0], axes=1), axis=1)[:-1]]
        elif self.bilinear_type == "field_each":
            lefts = [tf.matmul(e, w)[:, None, :] for e, w in zip(columns[:-1], tf.unstack(self.kernel)[:-1])]
        else:
            kernels = tf.split(self.kernel, counts, axis=0)  # [count, D, D] each
            lefts = [tf.reshape(tf.matmul(e, tf.reshape(tf.transpose(w, [1, 0, 2]), [dim, -1])), [-1, n, dim])
                     for e, w, n in zip(columns[:-1], kernels, counts)]
        parts = [left * tf.stack(columns[i + 1:], axis=1) for i, left in enumerate(lefts)]
        return tf.concat(parts, axis=1)

    def compute_output_shape(self, input_shape):
        fields = int(input_shape[1])
        return tf.TensorShape([input_shape[0], fields * (fields - 1) // 2, input_shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update(bilinear_type=self.bilinear_type,
                      kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer))
        return config
