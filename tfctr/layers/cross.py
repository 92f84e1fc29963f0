"""Explicit bounded-degree feature crosses of DCN (vector cross) and DCN-V2 (matrix cross, via TFRS)."""

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfctr.layers.validation import as_shape_list, choice, fresh, pair_shapes, positive_int

# rank r of DCN-Mix's low-rank experts when none is given (``CrossNetwork(kind="mix")``, ``MixtureCross``)
MIXTURE_PROJECTION_DIM = 32


@tf.keras.utils.register_keras_serializable(package="tfctr")
class VectorCross(tf.keras.layers.Layer):
    """One DCN cross layer (Wang et al. 2017, eq. 3): ``x_{l+1} = x_0 · (x_l w) + b + x_l``.

    ``x_l w`` is one scalar per example (w ∈ R^d), so the layer adds only 2d parameters.

    Input: ``(x0, x)`` or ``x0`` alone (then x = x0), each ``[B, d]``. Output ``[B, d]``.

    Args:
        kernel_initializer: initialiser of w (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of w.

    Example:
        >>> VectorCross()(tf.ones([2, 3])).shape
        TensorShape([2, 3])
    """

    def __init__(self, kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        x0_shape = pair_shapes(type(self).__name__, input_shape)[0]
        dim = int(tf.TensorShape(x0_shape)[-1])
        self.kernel = self.add_weight(name="kernel", shape=(dim, 1), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs if isinstance(inputs, (list, tuple)) else (inputs, inputs)
        return x0 * tf.matmul(x, self.kernel) + self.bias + x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(as_shape_list(input_shape)[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class MixtureCross(tf.keras.layers.Layer):
    """One DCN-Mix layer (Wang et al. 2021, eq. 3): a gated mixture of K low-rank cross experts,

        x_{l+1} = Σ_i G_i(x_l) · x_0 ⊙ (U_i g(C_i g(V_i^T x_l)) + b) + x_l,

    with V_i ∈ R^{d×r}, C_i ∈ R^{r×r}, U_i ∈ R^{r×d}, a shared bias b, g = ``activation`` and gates
    ``G = softmax_i(x_l · w_i)``.

    Input: ``(x0, x)`` or ``x0`` alone, each ``[B, d]``. Output ``[B, d]``.

    Args:
        num_experts: K (default 4).
        projection_dim: r (default 32).
        activation: g (default ``"tanh"``).
        kernel_initializer: initialiser of U, C, V and the gates (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of U, C, V.
    """

    def __init__(self, num_experts=4, projection_dim=MIXTURE_PROJECTION_DIM, activation="tanh",
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = positive_int("MixtureCross", "num_experts", num_experts)
        self.projection_dim = positive_int("MixtureCross", "projection_dim", projection_dim)
        self.activation = tf.keras.activations.get(activation)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        x0_shape = pair_shapes(type(self).__name__, input_shape)[0]
        d, k, r = int(tf.TensorShape(x0_shape)[-1]), self.num_experts, self.projection_dim
        self.v = self.add_weight(name="v", shape=(k, d, r), initializer=fresh(self.kernel_initializer),
                                 regularizer=self.kernel_regularizer)
        self.c = self.add_weight(name="c", shape=(k, r, r), initializer=fresh(self.kernel_initializer),
                                 regularizer=self.kernel_regularizer)
        self.u = self.add_weight(name="u", shape=(k, r, d), initializer=fresh(self.kernel_initializer),
                                 regularizer=self.kernel_regularizer)
        self.gate = self.add_weight(name="gate", shape=(d, k), initializer=fresh(self.kernel_initializer))
        self.bias = self.add_weight(name="bias", shape=(d,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs if isinstance(inputs, (list, tuple)) else (inputs, inputs)
        k, d, r = self.num_experts, x.shape[-1], self.projection_dim
        # all experts' V_i^T x in one matmul [B, d] @ [d, K·r], then per expert (batch axis K) C_i and U_i
        low = tf.reshape(tf.matmul(x, tf.reshape(tf.transpose(self.v, [1, 0, 2]), [d, k * r])), [-1, k, r])
        low = self.activation(tf.transpose(low, [1, 0, 2]))  # [K, B, r]
        low = self.activation(tf.matmul(low, self.c))
        experts = x0[None] * (tf.matmul(low, self.u) + self.bias)  # [K, B, d]
        gates = tf.nn.softmax(tf.matmul(x, self.gate), axis=-1)  # [B, K]
        return tf.reduce_sum(tf.transpose(gates)[:, :, None] * experts, axis=0) + x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(as_shape_list(input_shape)[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_experts=self.num_experts, projection_dim=self.projection_dim,
            activation=tf.keras.activations.serialize(self.activation),
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


class PolicyCross(tfrs.layers.dcn.Cross):
    """``tfrs.layers.dcn.Cross`` (DCN-V2's ``x_0 ⊙ (W x_l + b) + x_l``) whose dense sublayers compute in this
    layer's dtype policy.

    TFRS builds them with ``dtype=self.dtype``, the policy's *variable* dtype: under mixed precision the
    ``[B, d] × [d, d]`` matmul, the bulk of DCN-V2's FLOPs, then runs in float32 between two casts while the rest
    of the model computes in bfloat16 / float16. Here the sublayers take the whole policy (float32 variables,
    reduced-precision compute), the same policy every other tfctr layer has. Outside mixed precision nothing
    changes. Shapes as ``Cross``: ``x_0, x_l`` ``[B, d]`` → ``[B, d]``.
    """

    def build(self, input_shape):
        super().build(input_shape)
        for name in ("_dense", "_dense_u", "_dense_v"):
            dense = getattr(self, name, None)
            if dense is not None:  # not built yet: its variables and casts follow the policy set here
                dense._set_dtype_policy(self.dtype_policy)


@tf.keras.utils.register_keras_serializable(package="tfctr")
class CrossNetwork(tf.keras.layers.Layer):
    """A stack of ``num_layers`` cross layers over ``x0``: ``x_{l+1} = cross(x_0, x_l)``, returning ``x_L``.

    ``kind="vector"`` is DCN's ``VectorCross``; ``kind="matrix"`` is DCN-V2 (Wang et al. 2021, eq. 1)
    ``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l`` from ``tfrs.layers.dcn.Cross`` (``PolicyCross``), full rank, or low rank
    ``W_l = U_l V_l`` with ``projection_dim`` = r; ``kind="mix"`` is DCN-Mix (``MixtureCross``, ``num_experts``
    low-rank experts of rank ``projection_dim``, default 32).

    Input ``[B, d]``, output ``[B, d]``.

    Args:
        num_layers: number of cross layers (default 3).
        kind: ``"matrix"`` (default), ``"vector"`` or ``"mix"``.
        projection_dim: rank r of a low-rank matrix cross (``None`` = full rank) or of the mixture experts.
        num_experts: experts per layer of ``kind="mix"`` (default 4).
        kernel_initializer: initialiser of the cross kernels (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of the cross kernels.
        diag_scale, use_bias, preactivation: ``tfrs.layers.dcn.Cross``'s options, ``kind="matrix"`` only: a layer
            computes ``x_0 ⊙ (g(W x_l + b) + diag_scale · x_l) + x_l`` with g = ``preactivation`` (default none)
            and b only with ``use_bias`` (default True); ``diag_scale`` (default 0) adds a scaled identity to W.

    Example:
        >>> CrossNetwork(2, kind="matrix", projection_dim=2)(tf.ones([4, 6])).shape
        TensorShape([4, 6])
    """

    def __init__(self, num_layers=3, kind="matrix", projection_dim=None, num_experts=4,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, diag_scale=0.0, use_bias=True,
                 preactivation=None, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = positive_int("CrossNetwork", "num_layers", num_layers)
        self.kind = choice("CrossNetwork", "kind", kind, {"matrix", "vector", "mix"})
        self.num_experts = positive_int("CrossNetwork", "num_experts", num_experts)
        if projection_dim is not None:
            positive_int("CrossNetwork", "projection_dim", projection_dim)
            if kind == "vector":
                raise ValueError("CrossNetwork: projection_dim applies to kind='matrix' or 'mix'")
        self.projection_dim = projection_dim
        self.diag_scale, self.use_bias = float(diag_scale), bool(use_bias)
        self.preactivation = tf.keras.activations.get(preactivation) if preactivation is not None else None
        if self.kind != "matrix" and (self.diag_scale or not self.use_bias or self.preactivation is not None):
            raise ValueError("CrossNetwork: diag_scale, use_bias and preactivation apply to kind='matrix'")
        if self.diag_scale < 0:
            raise ValueError(f"CrossNetwork: diag_scale must be >= 0, got {diag_scale}")
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
        initializer = tf.keras.initializers.serialize(self.kernel_initializer)
        if self.kind == "vector":
            self.cross_layers = [VectorCross(initializer, self.kernel_regularizer, name=f"cross_{i}")
                                 for i in range(self.num_layers)]
        elif self.kind == "mix":
            rank = projection_dim or MIXTURE_PROJECTION_DIM
            self.cross_layers = [MixtureCross(self.num_experts, rank, kernel_initializer=initializer,
                                              kernel_regularizer=self.kernel_regularizer, name=f"cross_{i}")
                                 for i in range(self.num_layers)]
        else:
            self.cross_layers = [
                PolicyCross(projection_dim=projection_dim, diag_scale=self.diag_scale, use_bias=self.use_bias,
                            preactivation=self.preactivation, kernel_initializer=initializer,
                            kernel_regularizer=self.kernel_regularizer, name=f"cross_{i}")
                for i in range(self.num_layers)
            ]

    def call(self, inputs):
        x = inputs
        for layer in self.cross_layers:
            x = layer(inputs, x) if self.kind == "matrix" else layer((inputs, x))
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            kind=self.kind,
            projection_dim=self.projection_dim,
            num_experts=self.num_experts,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
            diag_scale=self.diag_scale,
            use_bias=self.use_bias,
            preactivation=tf.keras.activations.serialize(self.preactivation) if self.preactivation else None,
        )
        return config
