"""Multi-head self-attention over fields (AutoInt) and instance normalisation."""

import tensorflow as tf

from tfctr.layers.validation import fresh, positive_int


@tf.keras.utils.register_keras_serializable(package="tfctr")
class FieldSelfAttention(tf.keras.layers.Layer):
    """One AutoInt interacting layer (Song et al. 2019, eqs. 5-8): multi-head self-attention across fields.

    Per head h with projections W_Q^h, W_K^h, W_V^h ∈ R^{D×d'} (d' = ``head_dim``):
    ``α^h = softmax_j(<e_i W_Q^h, e_j W_K^h> / s)``, ``ẽ_i^h = Σ_j α^h_ij e_j W_V^h``, heads concatenated →
    ``[B, F, H·d']``; s = sqrt(d') with ``scaled=True``, else 1 (AutoInt's original). With ``residual``:
    ``ReLU(ẽ + E W_res)``. ``projection_activation`` is applied to the Q, K, V projections (AdaEnsemble's MHSA
    expert uses GELU); ``layer_norm`` normalises the output over its last axis.

    Input ``[B, F, D]``, output ``[B, F, H·d']``.

    Args:
        num_heads: H (default 2).
        head_dim: d' (default 8).
        residual: add the projected input and apply ReLU (default True).
        scaled: divide attention logits by sqrt(d') (default False, as AutoInt).
        layer_norm: layer normalisation of the output (default False).
        projection_activation: activation of the Q/K/V projections (default none).
        kernel_initializer: initialiser of the projections (default ``"glorot_uniform"``).

    Example:
        >>> FieldSelfAttention(2, 4)(tf.ones([3, 5, 6])).shape
        TensorShape([3, 5, 8])
    """

    def __init__(self, num_heads=2, head_dim=8, residual=True, scaled=False, layer_norm=False,
                 projection_activation=None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = positive_int("FieldSelfAttention", "num_heads", num_heads)
        self.head_dim = positive_int("FieldSelfAttention", "head_dim", head_dim)
        self.residual = bool(residual)
        self.scaled = bool(scaled)
        self.layer_norm = bool(layer_norm)
        self.projection_activation = tf.keras.activations.get(projection_activation)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.norm = tf.keras.layers.LayerNormalization(name="layer_norm") if self.layer_norm else None

    def build(self, input_shape):
        dim, width = int(input_shape[-1]), self.num_heads * self.head_dim
        self.query = self.add_weight(name="query", shape=(dim, width), initializer=fresh(self.kernel_initializer))
        self.key = self.add_weight(name="key", shape=(dim, width), initializer=fresh(self.kernel_initializer))
        self.value = self.add_weight(name="value", shape=(dim, width), initializer=fresh(self.kernel_initializer))
        self.res = self.add_weight(name="residual", shape=(dim, width), initializer=fresh(self.kernel_initializer)) \
            if self.residual else None
        super().build(input_shape)

    def _split_heads(self, projected, fields):
        # [B·F, H·d'] -> [B, H, F, d']
        heads = tf.reshape(self.projection_activation(projected), [-1, fields, self.num_heads, self.head_dim])
        return tf.transpose(heads, [0, 2, 1, 3])

    def call(self, inputs):
        fields, dim, width = inputs.shape[1], inputs.shape[2], self.num_heads * self.head_dim
        kernels = [self.query, self.key, self.value] + ([self.res] if self.residual else [])
        # every projection in one 2-D matmul: [B·F, D] @ [D, 3 or 4 · H·d']
        projected = tf.split(tf.matmul(tf.reshape(inputs, [-1, dim]), tf.concat(kernels, axis=1)), len(kernels),
                             axis=1)
        q, k, v = (self._split_heads(p, fields) for p in projected[:3])
        logits = tf.matmul(q, k, transpose_b=True)
        if self.scaled:
            logits = logits / tf.sqrt(tf.cast(self.head_dim, logits.dtype))
        attended = tf.matmul(tf.nn.softmax(logits, axis=-1), v)  # [B, H, F, d']
        outputs = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [-1, fields, width])
        if self.residual:
            outputs = tf.nn.relu(outputs + tf.reshape(projected[3], [-1, fields, width]))
        if self.norm is not None:
            outputs = self.norm(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], input_shape[1], self.num_heads * self.head_dim])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, head_dim=self.head_dim, residual=self.residual, scaled=self.scaled,
            layer_norm=self.layer_norm,
            projection_activation=tf.keras.activations.serialize(self.projection_activation),
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class InstanceNormalization(tf.keras.layers.Layer):
    """Normalises every channel of every example over the field axis: ``(x - μ_bc) / sqrt(σ²_bc + ε) · γ_c + β_c``
    with μ, σ² over axis 1. Input and output ``[B, F, C]``.

    Args:
        epsilon: variance floor (default 1e-3).
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=(int(input_shape[-1]),), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(int(input_shape[-1]),), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        mean, variance = tf.nn.moments(inputs, axes=[1], keepdims=True)
        return (inputs - mean) * tf.math.rsqrt(variance + self.epsilon) * self.gamma + self.beta

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config
