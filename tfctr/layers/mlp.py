"""The deep part: a stack of fully connected layers."""

import tensorflow as tf

from tfctr.layers._validation import positive_int_list, rate


@tf.keras.utils.register_keras_serializable(package="tfctr")
class MLP(tf.keras.layers.Layer):
    """Fully connected stack ``h_l = dropout(act(BN(h_{l-1} W_l + b_l)))`` for l = 1..len(units).

    Input ``[B, d_in]``, output ``[B, units[-1]]``.

    Args:
        units: widths of the hidden layers.
        activation: activation of every layer (default ``"relu"``).
        dropout: dropout rate after every layer (default 0).
        batch_norm: batch normalisation before the activation (default False).
        kernel_initializer: initialiser of every kernel (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of every kernel.

    Example:
        >>> MLP([8, 4])(tf.ones([2, 3])).shape
        TensorShape([2, 4])
    """

    def __init__(self, units, activation="relu", dropout=0.0, batch_norm=False,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int_list("MLP", "units", units)
        self.activation = tf.keras.activations.get(activation)
        self.dropout = rate("MLP", "dropout", dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
        self.dense_layers = [
            tf.keras.layers.Dense(u, kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
                                  kernel_regularizer=self.kernel_regularizer, name=f"dense_{i}")
            for i, u in enumerate(self.units)
        ]
        self.norm_layers = [tf.keras.layers.BatchNormalization(name=f"batch_norm_{i}")
                            for i in range(len(self.units))] if self.batch_norm else []
        self.dropout_layer = tf.keras.layers.Dropout(self.dropout) if self.dropout else None

    def call(self, inputs, training=None):
        x = inputs
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.batch_norm:
                x = self.norm_layers[i](x, training=training)
            x = self.activation(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units[-1]])

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=tf.keras.activations.serialize(self.activation),
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
