"""Training-time noise whose random state is saved with the model (dropout, the gate's uniform jitter).

Keras' ``Dropout`` and ``tf.random.uniform`` draw from TensorFlow's per-op random state, which no checkpoint
holds: a run killed and resumed from its backup draws other masks than the uninterrupted run, and ends with
another model. Here each layer that needs noise owns a ``tf.random.Generator`` (Philox; its state, key and
counter, is one ``int64[3]`` variable). A tracked attribute of the layer, that variable is written with the
model's checkpoints (``BackupAndRestore``) and restored with them, so a resumed run draws exactly the masks
the uninterrupted run would have drawn. Created under a ``tf.distribute`` strategy's scope, the generator gives
every replica its own stream. Keras leaves the state out of ``get_weights`` (its variable is named
``StateVar``), so weight lists are those of the layer without noise.
"""

import random

import tensorflow as tf

from tfctr.layers.validation import rate as checked_rate


def random_generator(seed=None) -> tf.random.Generator:
    """A Philox generator seeded with ``seed``, or with a draw from Python's ``random`` (which
    ``tfctr.utils.set_seed`` seeds, so a seeded run gets the same noise)."""
    return tf.random.Generator.from_seed(seed if seed is not None else random.randint(1, 2**31 - 1))


@tf.keras.utils.register_keras_serializable(package="tfctr")
class Dropout(tf.keras.layers.Layer):
    """Inverted dropout, ``y = x ⊙ m / (1 − p)`` with ``m_i ~ Bernoulli(1 − p)`` in training and ``y = x`` at
    inference; any shape in, the same shape out. Equal in distribution to ``tf.keras.layers.Dropout``; the masks
    come from the layer's own checkpointed generator (module docstring).

    Args:
        rate: p, in [0, 1).
        seed: the generator's seed (default: drawn from Python's ``random``).
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = checked_rate("Dropout", "rate", rate)
        self.seed = seed

    def build(self, input_shape):
        self.generator = random_generator(self.seed)
        super().build(input_shape)

    def call(self, x, training=None):
        if not training or self.rate == 0:
            return x
        keep = self.generator.uniform(tf.shape(x)) >= self.rate
        return tf.where(keep, x / tf.cast(1.0 - self.rate, x.dtype), tf.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
