"""AdaEnsemble's interaction experts on the slot interface (METHODS.md §4.2).

Every expert maps ``(X_{l-1}, X_0)``, both ``[B, N, c]`` (see ``tfctr.layers.slots``), to a tensor of the shape
of ``X_{l-1}``, with no internal skip connection (the mixture layer adds its own residual), so experts can be
swapped, stacked and mixed.
"""

import tensorflow as tf

from tfctr.layers.attention import FieldSelfAttention, InstanceNormalization
from tfctr.layers.pin import PolynomialInteraction
from tfctr.layers.slots import SlotDense, SubspaceSplit
from tfctr.layers.validation import pair_shapes, positive_int

# the fewest slots ConvExpert's default Conv1D (kernel 4, valid padding) and max-pool (2) can run on
CONV_MIN_SLOTS = 5


class _Expert(tf.keras.layers.Layer):
    """Base of the experts: ``(x0, x)`` in (x0 first, as every tfctr layer that takes the pair), the shape of x
    out; kernel initialiser/regulariser handling."""

    def __init__(self, kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def _kernel_args(self):
        return {"kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": self.kernel_regularizer}

    def compute_output_shape(self, input_shape):
        return pair_shapes(type(self).__name__, input_shape, pair_only=True)[1]

    def get_config(self):
        config = super().get_config()
        config.update(kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
                      kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer))
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class CrossExpert(_Expert):
    """DCN-V2 cross on slots without the skip: ``X_l = X_0 ⊙ (W X_{l-1} + b)``, W ∈ R^{N×N}, b ∈ R^N.

    Example:
        >>> x = tf.ones([2, 6, 1]); CrossExpert()((x, x)).shape
        TensorShape([2, 6, 1])
    """

    def build(self, input_shape):
        _, x_shape = pair_shapes(type(self).__name__, input_shape, pair_only=True)
        self.dense = SlotDense(int(x_shape[1]), name="cross", **self._kernel_args())
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs
        return x0 * self.dense(x)


@tf.keras.utils.register_keras_serializable(package="tfctr")
class PINExpert(PolynomialInteraction):
    """xDeepInt's PIN layer without the skip: ``X_l = X_{l-1} ⊙ (W X_0)``, W ∈ R^{N×N}, no bias.

    It is ``PolynomialInteraction(num_layers=1, residual=False)`` on ``(x0, x)``.

    Args:
        kernel_initializer: initialiser of W (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of W.
    """

    def __init__(self, kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        kwargs.pop("num_layers", None)
        kwargs.pop("residual", None)
        super().__init__(num_layers=1, residual=False, kernel_initializer=kernel_initializer,
                         kernel_regularizer=kernel_regularizer, **kwargs)

    def compute_output_shape(self, input_shape):
        return pair_shapes(type(self).__name__, input_shape, pair_only=True)[1]


@tf.keras.utils.register_keras_serializable(package="tfctr")
class GatedDenseExpert(_Expert):
    """Dense expert: ``X_l = ReLU(W X_{l-1} + b) ⊙ 2σ(g(X_0))`` with a per-slot gate
    ``g = Dense_N(ReLU(Dense_{N·c/r}(flatten X_0)))`` (paper eq. 2 is the first factor; the gate is the authors'
    code).

    Args:
        reduction_ratio: r of the gate's bottleneck (default 16).
        gated: apply the gate (default True); False gives the paper's plain eq. 2.
    """

    def __init__(self, reduction_ratio=16, gated=True, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(kernel_initializer, kernel_regularizer, **kwargs)
        self.reduction_ratio = positive_int("GatedDenseExpert", "reduction_ratio", reduction_ratio)
        self.gated = bool(gated)

    def build(self, input_shape):
        x0_shape, x_shape = pair_shapes(type(self).__name__, input_shape, pair_only=True)
        slots = int(x_shape[1])
        self.dense = SlotDense(slots, activation="relu", name="dense", **self._kernel_args())
        if self.gated:
            width = max(1, int(x0_shape[1]) * int(x0_shape[2]) // self.reduction_ratio)
            self.gate_hidden = tf.keras.layers.Dense(width, activation="relu", name="gate_hidden",
                                                     **self._kernel_args())
            self.gate_out = tf.keras.layers.Dense(slots, activation="sigmoid", name="gate_out",
                                                  **self._kernel_args())
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs
        out = self.dense(x)
        if not self.gated:
            return out
        flat = tf.reshape(x0, [-1, x0.shape[1] * x0.shape[2]])
        return out * (2.0 * self.gate_out(self.gate_hidden(flat)))[:, :, None]

    def get_config(self):
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio, gated=self.gated)
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class ConvExpert(_Expert):
    """CNN expert on ``X_{l-1}``: slot dense N → R (no activation) → Conv1D over the R slots (``filters``,
    ``kernel_size``, valid) → MaxPool1D(``pool_size``) → flatten → Dense(N·c) → reshape ``[B, N, c]``.

    Args:
        reduced_slots: R (default ⌊N/2⌋; AdaEnsemble's code uses ⌊F/2⌋, which ``SparseMoE`` passes, raised to
            ``CONV_MIN_SLOTS`` when F < 10 so that the convolution has room).
        filters: Conv1D filters (default 16).
        kernel_size: Conv1D width (default 4).
        pool_size: max-pool width (default 2).
    """

    def __init__(self, reduced_slots=None, filters=16, kernel_size=4, pool_size=2,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(kernel_initializer, kernel_regularizer, **kwargs)
        self.reduced_slots = None if reduced_slots is None else positive_int("ConvExpert", "reduced_slots",
                                                                              reduced_slots)
        self.filters = positive_int("ConvExpert", "filters", filters)
        self.kernel_size = positive_int("ConvExpert", "kernel_size", kernel_size)
        self.pool_size = positive_int("ConvExpert", "pool_size", pool_size)

    def build(self, input_shape):
        _, x_shape = pair_shapes(type(self).__name__, input_shape, pair_only=True)
        slots, channels = int(x_shape[1]), int(x_shape[2])
        reduced = self.reduced_slots or max(1, slots // 2)
        if reduced - self.kernel_size + 1 < self.pool_size:
            raise ValueError(f"ConvExpert: {reduced} reduced slots are too few for kernel_size={self.kernel_size} "
                             f"and pool_size={self.pool_size}")
        self.reduce = SlotDense(reduced, name="reduce", **self._kernel_args())
        self.conv = tf.keras.layers.Conv1D(self.filters, self.kernel_size, name="conv", **self._kernel_args())
        self.pool = tf.keras.layers.MaxPool1D(self.pool_size)
        self.project = tf.keras.layers.Dense(slots * channels, name="project", **self._kernel_args())
        super().build(input_shape)

    def call(self, inputs):
        _, x = inputs
        pooled = self.pool(self.conv(self.reduce(x)))
        flat = tf.reshape(pooled, [-1, pooled.shape[1] * pooled.shape[2]])
        return tf.reshape(self.project(flat), [-1, x.shape[1], x.shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update(reduced_slots=self.reduced_slots, filters=self.filters, kernel_size=self.kernel_size,
                      pool_size=self.pool_size)
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class SelfAttentionExpert(_Expert):
    """MHSA expert on ``X_{l-1}``: slots merged back to fields ``[B, F, D]`` → multi-head self-attention with GELU
    Q/K/V projections and scaled dot products (``FieldSelfAttention``) → GELU output projection → instance norm
    over fields → flatten → Dense(F·D) → reshape and split to ``[B, N, c]``.

    Args:
        num_subspaces: h of the slot layout (to recover fields; default 1 = vector-wise slots).
        num_heads: heads (default 4).
        head_dim: dims per head (default 2: hidden size 8 over 4 heads, as the authors' code).
    """

    def __init__(self, num_subspaces=1, num_heads=4, head_dim=2, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(kernel_initializer, kernel_regularizer, **kwargs)
        self.num_subspaces = positive_int("SelfAttentionExpert", "num_subspaces", num_subspaces)
        self.num_heads = positive_int("SelfAttentionExpert", "num_heads", num_heads)
        self.head_dim = positive_int("SelfAttentionExpert", "head_dim", head_dim)
        self.merge = SubspaceSplit(self.num_subspaces, inverse=True, name="merge")
        self.split = SubspaceSplit(self.num_subspaces, name="split")

    def build(self, input_shape):
        _, x_shape = pair_shapes(type(self).__name__, input_shape, pair_only=True)
        self.attention = FieldSelfAttention(self.num_heads, self.head_dim, residual=False, scaled=True,
                                            projection_activation="gelu",
                                            kernel_initializer=self._kernel_args()["kernel_initializer"],
                                            name="attention")
        self.attention_output = tf.keras.layers.Dense(self.num_heads * self.head_dim, activation="gelu",
                                                      name="attention_output", **self._kernel_args())
        self.norm = InstanceNormalization(name="instance_norm")
        self.project = tf.keras.layers.Dense(int(x_shape[1]) * int(x_shape[2]), name="project",
                                             **self._kernel_args())
        super().build(input_shape)

    def call(self, inputs):
        _, x = inputs
        fields = self.merge(x)
        attended = self.norm(self.attention_output(self.attention(fields)))
        flat = tf.reshape(attended, [-1, attended.shape[1] * attended.shape[2]])
        return self.split(tf.reshape(self.project(flat), [-1, fields.shape[1], fields.shape[2]]))

    def get_config(self):
        config = super().get_config()
        config.update(num_subspaces=self.num_subspaces, num_heads=self.num_heads, head_dim=self.head_dim)
        return config
