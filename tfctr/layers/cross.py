"""Explicit bounded-degree feature crosses of DCN (vector cross) and DCN-V2 (matrix cross, via TFRS)."""

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfctr.layers._validation import choice, positive_int


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
        x0_shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple, tf.TensorShape)) else input_shape
        dim = int(tf.TensorShape(x0_shape)[-1])
        self.kernel = self.add_weight(name="kernel", shape=(dim, 1), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs if isinstance(inputs, (list, tuple)) else (inputs, inputs)
        return x0 * tf.matmul(x, self.kernel) + self.bias + x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0] if isinstance(input_shape, (list, tuple)) else input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class CrossNetwork(tf.keras.layers.Layer):
    """A stack of ``num_layers`` cross layers over ``x0``: ``x_{l+1} = cross(x_0, x_l)``, returning ``x_L``.

    ``kind="vector"`` is DCN's ``VectorCross``; ``kind="matrix"`` is DCN-V2 (Wang et al. 2021, eq. 1)
    ``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l`` from ``tfrs.layers.dcn.Cross``, full rank, or low rank
    ``W_l = U_l V_l`` with ``projection_dim`` = r.

    Input ``[B, d]``, output ``[B, d]``.

    Args:
        num_layers: number of cross layers (default 3).
        kind: ``"matrix"`` (default) or ``"vector"``.
        projection_dim: rank r of a low-rank matrix cross (``None`` = full rank; matrix only).
        kernel_initializer: initialiser of the cross kernels (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of the cross kernels.

    Example:
        >>> CrossNetwork(2, kind="matrix", projection_dim=2)(tf.ones([4, 6])).shape
        TensorShape([4, 6])
    """

    def __init__(self, num_layers=3, kind="matrix", projection_dim=None, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = positive_int("CrossNetwork", "num_layers", num_layers)
        self.kind = choice("CrossNetwork", "kind", kind, {"matrix", "vector"})
        if projection_dim is not None:
            positive_int("CrossNetwork", "projection_dim", projection_dim)
            if kind == "vector":
                raise ValueError("CrossNetwork: projection_dim applies to kind='matrix' only")
        self.projection_dim = projection_dim
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
        if self.kind == "vector":
            initializer = tf.keras.initializers.serialize(self.kernel_initializer)
            self.cross_layers = [VectorCross(initializer, self.kernel_regularizer, name=f"cross_{i}")
                                 for i in range(self.num_layers)]
        else:
            self.cross_layers = [
                tfrs.layers.dcn.Cross(projection_dim=projection_dim,
                                      kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
                                      kernel_regularizer=self.kernel_regularizer, name=f"cross_{i}")
                for i in range(self.num_layers)
            ]

    def call(self, inputs):
        x = inputs
        for layer in self.cross_layers:
            x = layer((inputs, x)) if self.kind == "vector" else layer(inputs, x)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            kind=self.kind,
            projection_dim=self.projection_dim,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
