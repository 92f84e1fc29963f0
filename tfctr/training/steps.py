"""What tfctr's custom ``train_step`` models share: the logit of a model, the per-example BCE, the loss averaged
over the global batch, and the metric trackers.

Every such model (``Distiller``, ``FusionSearch``, ``BilevelTraining``) wraps a tfctr model (``network``),
returns its probability from ``call`` and reports ``loss``, ``logloss`` and ``auc`` (plus its own means).
"""

from __future__ import annotations

import tensorflow as tf

from tfctr.models import logit_model


def logit_of(model: tf.keras.Model) -> tf.keras.Model:
    """The logit ``[B, 1]`` of a model: its layer ``"logit"`` for tfctr models; any other Keras model is taken
    to return logits already."""
    try:
        model.get_layer("logit")
    except ValueError:
        return model
    return logit_model(model)


def bce_per_example(y, logit):
    """Labels as ``[B, 1]`` float32 and the per-example binary cross-entropy ``[B]`` of float32 logits."""
    labels = tf.reshape(tf.cast(y, tf.float32), [-1, 1])
    return labels, tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logit)[:, 0]


def global_average(per_example, layer_losses=()):
    """The step's loss: the per-example losses averaged over the global batch (divided by it under a
    ``tf.distribute`` strategy, whose replicas' gradients are then summed), plus the layer losses scaled once
    per replica."""
    loss = tf.nn.compute_average_loss(per_example)
    if layer_losses:
        loss += tf.nn.scale_regularization_loss(tf.add_n(layer_losses))
    return loss


class StepModel(tf.keras.Model):
    """Base of the custom-step models: wraps ``network`` and tracks ``loss``, the names in ``means`` (each the
    mean of a value passed to ``record``), ``logloss`` and ``auc``."""

    def __init__(self, network: tf.keras.Model, means=(), **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.logit_model = logit_of(network)
        # no weights of its own: built when the network is (BackupAndRestore only restores a built model)
        self.built = network.built
        self.trackers = [tf.keras.metrics.Mean(name=name) for name in ("loss",) + tuple(means)]
        self.logloss = tf.keras.metrics.BinaryCrossentropy(name="logloss", from_logits=True)
        self.auc = tf.keras.metrics.AUC(name="auc", from_logits=True)

    @property
    def metrics(self):
        return self.trackers + [self.logloss, self.auc]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def logit(self, x, training):
        return tf.cast(self.logit_model(x, training=training), tf.float32)

    def tracker(self, name: str) -> tf.keras.metrics.Mean:
        return next(t for t in self.trackers if t.name == name)

    def test_step(self, data):
        """Evaluation on the labels alone: the network's logit (inference mode), its BCE as ``loss``."""
        x, y = data[:2]
        logit = self.logit(x, training=False)
        labels, per_example = bce_per_example(y, logit)
        return self.record(labels, logit, loss=per_example)

    def record(self, labels, logit, **means):
        """Updates the trackers named in ``means`` and returns every metric's result."""
        for name, value in means.items():
            self.tracker(name).update_state(value)
        self.logloss.update_state(labels, logit)
        self.auc.update_state(labels, logit)
        return {m.name: m.result() for m in self.metrics}
