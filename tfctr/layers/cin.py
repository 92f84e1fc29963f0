"""xDeepFM's compressed interaction network (CIN)."""

import tensorflow as tf

from tfctr.layers._validation import fresh, positive_int_list


@tf.keras.utils.register_keras_serializable(package="tfctr")
class CompressedInteraction(tf.keras.layers.Layer):
    """CIN (Lian et al. 2018, eqs. 6-8). With X^0 = E (m = F fields) and X^{k-1} with H_{k-1} feature maps,

        X^k[b, n, d] = act( Σ_{i, j} W^k[i, j, n] · X^{k-1}[b, i, d] · X^0[b, j, d] ),   n = 1..H_k,

    i.e. a 1×1 convolution of the field-wise outer products. Each layer's maps are sum-pooled over d; with
    ``split_half`` every layer but the last passes half of its maps to the next layer and the other half to the
    output. The output concatenates the pooled maps: ``[B, Σ_k H_k']`` (H_k' = H_k/2 for split layers).

    Input ``[B, F, D]``, output ``[B, output_dim]`` (``output_dim`` attribute).

    Args:
        layer_sizes: H_1..H_K (default [128, 128]); with split_half every size but the last must be even.
        split_half: the xDeepFM split (default True).
        activation: activation of every map (default none, linear as in the paper's best setting).
        kernel_initializer: initialiser of the W^k (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of the W^k.

    Example:
        >>> CompressedInteraction([4, 2])(tf.ones([2, 3, 5])).shape
        TensorShape([2, 4])
    """

    def __init__(self, layer_sizes=(128, 128), split_half=True, activation=None,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.layer_sizes = positive_int_list("CompressedInteraction", "layer_sizes", layer_sizes)
        self.split_half = bool(split_half)
        if self.split_half and any(size % 2 for size in self.layer_sizes[:-1]):
            raise ValueError(f"CompressedInteraction: with split_half every layer size but the last must be even, "
                             f"got {self.layer_sizes}")
        self.activation = tf.keras.activations.get(activation)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def _next_and_output(self, k, size):
        """(maps fed to layer k+1, maps sent to the output) of layer k."""
        last = k == len(self.layer_sizes) - 1
        if self.split_half and not last:
            return size // 2, size // 2
        return size, size

    @property
    def output_dim(self) -> int:
        return sum(self._next_and_output(k, s)[1] for k, s in enumerate(self.layer_sizes))

    def build(self, input_shape):
        fields = int(input_shape[1])
        self.kernels = []
        previous = fields
        for k, size in enumerate(self.layer_sizes):
            self.kernels.append(self.add_weight(name=f"kernel_{k}", shape=(previous * fields, size),
                                                initializer=fresh(self.kernel_initializer),
                                                regularizer=self.kernel_regularizer))
            previous = self._next_and_output(k, size)[0]
        super().build(input_shape)

    def call(self, inputs):
        fields = inputs.shape[1]
        x0 = tf.transpose(inputs, [0, 2, 1])  # [B, D, m]
        x = x0
        pooled = []
        for k, kernel in enumerate(self.kernels):
            # outer products per embedding dim: [B, D, H, 1] * [B, D, 1, m] -> [B, D, H·m], then the 1x1 conv
            # (rows b·d, as one 2-D matmul so that the kernel gradient is a plain matmul too)
            outer = tf.reshape(x[:, :, :, None] * x0[:, :, None, :], [-1, x.shape[2] * fields])
            maps = self.activation(tf.reshape(tf.matmul(outer, kernel), [-1, x0.shape[1], kernel.shape[1]]))
            forward, _ = self._next_and_output(k, self.layer_sizes[k])
            if self.split_half and k < len(self.kernels) - 1:
                x, out = maps[:, :, :forward], maps[:, :, forward:]
            else:
                x, out = maps, maps
            pooled.append(tf.reduce_sum(out, axis=1))
        return tf.concat(pooled, axis=1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.output_dim])

    def get_config(self):
        config = super().get_config()
        config.update(
            layer_sizes=self.layer_sizes, split_half=self.split_half,
            activation=tf.keras.activations.serialize(self.activation),
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
