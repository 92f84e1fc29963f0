"""The slot interface shared by mixture experts: the subspace split of field embeddings and slot-axis dense.

xDeepInt's subspace split cuts each field embedding e_f ∈ R^D into h chunks of c = D/h values and stacks the
chunks along the field axis: ``E ∈ R^{B×F×D} -> X ∈ R^{B×N×c}`` with N = F·h and slot ``n = k·F + f`` holding
chunk k of field f. h = D is the bit-wise layout (N = F·D, c = 1, AdaEnsemble's default), h = 1 the vector-wise
one (N = F, c = D). Experts map ``(X_{l-1}, X_0) -> X_l`` of the same shape, so they can be swapped, stacked and
connected residually; the inverse split turns the result back into ``[B, F, D]``.
"""

import tensorflow as tf

from tfctr.layers.validation import positive_int


@tf.keras.utils.register_keras_serializable(package="tfctr")
class SubspaceSplit(tf.keras.layers.Layer):
    """Subspace split ``[B, F, D] -> [B, F·h, D/h]``, or with ``inverse=True`` its inverse ``[B, F·h, D/h] ->
    [B, F, D]``: ``X[b, k·F + f, j] = E[b, f, k·c + j]`` with c = D/h.

    Args:
        num_subspaces: h; must divide D.
        inverse: merge slots back into fields instead of splitting.

    Example:
        >>> SubspaceSplit(2)(tf.ones([3, 5, 4])).shape
        TensorShape([3, 10, 2])
    """

    def __init__(self, num_subspaces, inverse=False, **kwargs):
        super().__init__(**kwargs)
        self.num_subspaces = positive_int("SubspaceSplit", "num_subspaces", num_subspaces)
        self.inverse = bool(inverse)

    def _dims(self, shape):
        h = self.num_subspaces
        if self.inverse:
            slots, chunk = int(shape[1]), int(shape[2])
            if slots % h:
                raise ValueError(f"SubspaceSplit(inverse): {slots} slots are not a multiple of h={h}")
            return slots // h, chunk * h
        fields, dim = int(shape[1]), int(shape[2])
        if dim % h:
            raise ValueError(f"SubspaceSplit: embedding dim {dim} is not divisible by h={h}")
        return fields, dim

    def call(self, inputs):
        fields, dim = self._dims(inputs.shape)
        h, c = self.num_subspaces, dim // self.num_subspaces
        if self.inverse:
            chunks = tf.reshape(inputs, [-1, h, fields, c])
            return tf.reshape(tf.transpose(chunks, [0, 2, 1, 3]), [-1, fields, dim])
        chunks = tf.reshape(inputs, [-1, fields, h, c])
        return tf.reshape(tf.transpose(chunks, [0, 2, 1, 3]), [-1, h * fields, c])

    def compute_output_shape(self, input_shape):
        fields, dim = self._dims(input_shape)
        if self.inverse:
            return tf.TensorShape([input_shape[0], fields, dim])
        return tf.TensorShape([input_shape[0], fields * self.num_subspaces, dim // self.num_subspaces])

    def get_config(self):
        config = super().get_config()
        config.update(num_subspaces=self.num_subspaces, inverse=self.inverse)
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class SlotDense(tf.keras.layers.Layer):
    """Dense over the slot axis, shared by the c channels: ``Y[b, m, j] = act(Σ_n X[b, n, j] W[n, m] + b[m])``.

    It is the "W · X" of the papers' field-axis equations (xDeepInt, AdaEnsemble). Input ``[B, N, c]``, output
    ``[B, units, c]``.

    Args:
        units: N', the number of output slots.
        activation: activation (default none).
        use_bias: add a bias per output slot (default True).
        kernel_initializer: initialiser of W (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of W.

    Example:
        >>> SlotDense(3)(tf.ones([2, 5, 4])).shape
        TensorShape([2, 3, 4])
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int("SlotDense", "units", units)
        self.activation = tf.keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[1]), self.units),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None
        super().build(input_shape)

    def call(self, inputs):
        # [B, N, c] -> [B·c, N] @ [N, N'] -> [B, N', c]: one plain 2-D matmul with the channels folded into the
        # batch (a broadcast batch-matmul would make its kernel gradient materialise [B, N, N'])
        slots, channels = inputs.shape[1], inputs.shape[2]
        rows = tf.reshape(tf.transpose(inputs, [0, 2, 1]), [-1, slots])
        outputs = tf.transpose(tf.reshape(tf.matmul(rows, self.kernel), [-1, channels, self.units]), [0, 2, 1])
        if self.use_bias:
            outputs = outputs + self.bias[:, None]
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.units, input_shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=tf.keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
