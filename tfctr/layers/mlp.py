"""The deep part: a stack of fully connected layers."""

import tensorflow as tf

from tfctr.layers.apg import APGDense, zeros_of
from tfctr.layers.noise import Dropout
from tfctr.layers.validation import as_shape_list, positive_int_list, rate


@tf.keras.utils.register_keras_serializable(package="tfctr")
class MLP(tf.keras.layers.Layer):
    """Fully connected stack ``h_l = dropout(act(BN(h_{l-1} W_l + b_l)))`` for l = 1..len(units).

    Input ``[B, d_in]``, output ``[B, units[-1]]``.

    Args:
        units: widths of the hidden layers.
        activation: activation of every layer (default ``"relu"``).
        dropout: dropout rate after every layer (default 0).
        batch_norm: batch normalisation before the activation (default False).
        batch_norm_momentum: momentum of the moving mean/variance used at inference (default 0.9, PyTorch's
            0.1 in Keras' convention). Keras' own 0.99 lags badly when an epoch is a few dozen steps: the
            statistics used at evaluation are then mostly those of the first batches.
        batch_norm_epsilon: variance epsilon of batch normalisation (default 1e-5, as PyTorch).
        kernel_initializer: initialiser of every kernel (default ``"glorot_uniform"``).
        kernel_regularizer: optional regulariser of every kernel (plain dense layers).
        apg: ``None`` (plain dense layers, default) or a dict of ``APGDense`` arguments (``rank``, ``version``,
            ``overparam_dim``, ``generator_units``, ``generate_bias``, ``aggregation``): every hidden layer becomes
            adaptive (APG), with the MLP's ``kernel_regularizer``. ``rank`` may be a list, one K per layer.
            Self-wise by default; call ``mlp((x, condition))`` or ``mlp((x, [z_1, ..., z_k]))`` for
            group-/mix-wise conditions shared by all layers.

    Example:
        >>> MLP([8, 4])(tf.ones([2, 3])).shape
        TensorShape([2, 4])
    """

    def __init__(self, units, activation="relu", dropout=0.0, batch_norm=False, batch_norm_momentum=0.9,
                 batch_norm_epsilon=1e-5, kernel_initializer="glorot_uniform", kernel_regularizer=None, apg=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int_list("MLP", "units", units)
        self.activation = tf.keras.activations.get(activation)
        self.dropout = rate("MLP", "dropout", dropout)
        self.batch_norm = bool(batch_norm)
        self.batch_norm_momentum = rate("MLP", "batch_norm_momentum", batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)
        if not self.batch_norm_epsilon > 0:
            raise ValueError(f"MLP: batch_norm_epsilon must be > 0, got {batch_norm_epsilon!r}")
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
        self.apg = None if apg is None else dict(apg)
        initializer = tf.keras.initializers.serialize(self.kernel_initializer)
        if self.apg is None:
            self.dense_layers = [tf.keras.layers.Dense(u, kernel_initializer=initializer,
                                                       kernel_regularizer=self.kernel_regularizer, name=f"dense_{i}")
                                 for i, u in enumerate(self.units)]
        else:
            ranks = self.apg.get("rank", 4)
            ranks = list(ranks) if isinstance(ranks, (list, tuple)) else [ranks] * len(self.units)
            if len(ranks) != len(self.units):
                raise ValueError(f"MLP: apg rank lists {len(ranks)} ranks for {len(self.units)} layers {self.units}")
            self.dense_layers = [APGDense(u, name=f"apg_{i}", **{**self.apg, "rank": k},
                                          kernel_regularizer=self.kernel_regularizer)
                                 for i, (u, k) in enumerate(zip(self.units, ranks))]
        self.norm_layers = [tf.keras.layers.BatchNormalization(momentum=self.batch_norm_momentum,
                                                               epsilon=self.batch_norm_epsilon, name=f"batch_norm_{i}")
                            for i in range(len(self.units))] if self.batch_norm else []
        self.dropout_layer = Dropout(self.dropout, name="dropout") if self.dropout else None

    def call(self, inputs, training=None):
        x, conditions = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        for i, dense in enumerate(self.dense_layers):
            x = dense(x) if conditions is None else dense((x, conditions))
            if self.batch_norm:
                x = self.norm_layers[i](x, training=training)
            x = self.activation(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(as_shape_list(input_shape)[0])[:-1].concatenate([self.units[-1]])

    @property
    def needs_folding(self) -> bool:
        """True when an APG layer has a cheaper serving form (v5)."""
        return any(getattr(layer, "needs_folding", False) for layer in self.dense_layers)

    def serving_form(self):
        """The same MLP with every APG layer replaced by its serving form (v5 -> v4, products precomputed)."""
        config = self.get_config()
        config["apg"] = {**self.apg, "version": "v4"} if self.apg.get("version", "v5") == "v5" else self.apg
        folded = MLP.from_config(config)
        folded(zeros_of(self.dense_layers[0].input_shapes))
        for old, new in zip(self.dense_layers, folded.dense_layers):
            new.set_weights(old.serving_form().get_weights())
        for old, new in zip(self.norm_layers, folded.norm_layers):
            new.set_weights(old.get_weights())
        return folded

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=tf.keras.activations.serialize(self.activation),
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            batch_norm_momentum=self.batch_norm_momentum,
            batch_norm_epsilon=self.batch_norm_epsilon,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
            apg=self.apg,
        )
        return config
