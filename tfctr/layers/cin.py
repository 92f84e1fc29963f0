"""xDeepFM's compressed interaction network (CIN)."""

import tensorflow as tf

from tfctr.layers.validation import fresh, positive_int_list

# maps of the previous layer processed together by the memory-light contraction (rows·chunk·m floats at a time)
_CHUNK = 16


@tf.custom_gradient
def outer_product_matmul(x, x0, kernel):
    """``y[r, n] = Σ_{i,j} x[r, i] · x0[r, j] · kernel[i·m + j, n]`` without ever holding the outer product
    ``[R, H·m]`` of all rows: it is built and consumed ``_CHUNK`` maps at a time, forward and backward.

    x ``[R, H]``, x0 ``[R, m]``, kernel ``[H·m, N]`` -> ``[R, N]``. Same FLOPs as the plain matmul on the outer
    product; peak memory ``R·_CHUNK·m`` instead of ``R·H·m`` (plus its gradient) per CIN layer.
    """
    maps, fields = x.shape[1], x0.shape[1]
    chunks = [(lo, min(lo + _CHUNK, maps)) for lo in range(0, maps, _CHUNK)]

    def outer(lo, hi):
        return tf.reshape(x[:, lo:hi, None] * x0[:, None, :], [-1, (hi - lo) * fields])

    y = tf.add_n([tf.matmul(outer(lo, hi), kernel[lo * fields:hi * fields]) for lo, hi in chunks])

    def grad(dy):
        dx, dkernel, dx0 = [], [], tf.zeros_like(x0)
        for lo, hi in chunks:
            dkernel.append(tf.matmul(outer(lo, hi), dy, transpose_a=True))
            douter = tf.reshape(tf.matmul(dy, kernel[lo * fields:hi * fields], transpose_b=True),
                                [-1, hi - lo, fields])
            dx.append(tf.reduce_sum(douter * x0[:, None, :], axis=2))
            dx0 += tf.reduce_sum(douter * x[:, lo:hi, None], axis=1)
        return tf.concat(dx, axis=1), dx0, tf.concat(dkernel, axis=0)

    return y, grad


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
        """Width of the output: the summed feature maps of every layer that feeds the output."""
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
        dim = inputs.shape[2]
        x0 = tf.reshape(tf.transpose(inputs, [0, 2, 1]), [-1, fields])  # rows (b, d): [B·D, m]
        x = x0
        pooled = []
        for k, kernel in enumerate(self.kernels):
            # outer products of the maps and the fields per row (b, d), through the 1x1 convolution
            # the kernel's value, not the variable: a distributed or autocast variable passed into the custom
            # gradient is not recognised as its input and makes eager calls fail
            product = outer_product_matmul(x, x0, tf.convert_to_tensor(kernel))
            maps = self.activation(tf.reshape(product, [-1, dim, kernel.shape[1]]))
            forward, _ = self._next_and_output(k, self.layer_sizes[k])
            if self.split_half and k < len(self.kernels) - 1:
                x, out = maps[:, :, :forward], maps[:, :, forward:]
            else:
                x, out = maps, maps
            x = tf.reshape(x, [-1, x.shape[2]])
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
