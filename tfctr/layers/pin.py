"""xDeepInt's polynomial interaction network (PIN) on the slot tensor."""

import tensorflow as tf

from tfctr.layers.slots import SlotDense
from tfctr.layers.validation import as_shape_list, pair_shapes, positive_int


@tf.keras.utils.register_keras_serializable(package="tfctr")
class PolynomialInteraction(tf.keras.layers.Layer):
    """PIN (Yan & Li, xDeepInt 2020): ``X_l = X_{l-1} ⊙ (W_l X_0)``, plus ``X_{l-1}`` when ``residual``.

    W_l ∈ R^{N×N} acts on the slot axis (``SlotDense`` without bias), so on the subspace-split tensor
    (``SubspaceSplit``) h = 1 gives vector-wise and h = D bit-wise interactions. Layer l reaches polynomial
    order l + 1 in the embeddings.

    Input: ``X_0`` ``[B, N, c]``, or ``(X_0, X)`` to start the recursion from X instead of X_0 (the mixture-expert
    interface; X_0 first, as in every tfctr layer that takes the pair; both of one shape). Output: ``X_L``
    ``[B, N, c]`` with ``residual=True``; without residual the concatenation of every layer's output along the
    slot axis, ``[B, L·N, c]`` (as the xDeepInt code does).

    Args:
        num_layers: L (default 3).
        residual: add ``X_{l-1}`` to every layer's output (default True).
        kernel_initializer: initialiser of the W_l (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of the W_l.

    Example:
        >>> PolynomialInteraction(2)(tf.ones([2, 6, 1])).shape
        TensorShape([2, 6, 1])
    """

    def __init__(self, num_layers=3, residual=True, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_layers = positive_int(type(self).__name__, "num_layers", num_layers)
        self.residual = bool(residual)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        x0_shape = pair_shapes(type(self).__name__, input_shape)[0]  # (x0, x), or x0 alone
        initializer = tf.keras.initializers.serialize(self.kernel_initializer)
        self.kernels = [SlotDense(int(x0_shape[1]), use_bias=False, kernel_initializer=initializer,
                                  kernel_regularizer=self.kernel_regularizer, name=f"pin_{i}")
                        for i in range(self.num_layers)]
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs if isinstance(inputs, (list, tuple)) else (inputs, inputs)
        outputs = []
        for kernel in self.kernels:
            x = x * kernel(x0) + (x if self.residual else 0.0)
            outputs.append(x)
        return x if self.residual else tf.concat(outputs, axis=1)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(as_shape_list(input_shape)[0])
        return shape if self.residual else tf.TensorShape([shape[0], shape[1] * self.num_layers, shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            residual=self.residual,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
