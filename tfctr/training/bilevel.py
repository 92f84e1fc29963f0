"""First-order bi-level training (AdaEnsemble's Algorithm 2, the DARTS form with ξ = 0).

The routers (every ``NoisyCosineGate``: the experts' gates and the depth controller) are the upper-level
parameters α, everything else (experts, estimators, embeddings) the lower-level W. Each ``train_step`` first
updates α with ``router_optimizer`` on the gradient of the loss of one *validation* batch, then W with the
model optimizer on the training batch, so the architecture is chosen for how it generalises. Joint training
(plain ``model.fit``) is the simple alternative and the default of ``tfctr train``.

The training input pairs each training batch with a validation batch (``BilevelTraining.pair``), so that under
a ``tf.distribute`` strategy every replica gets its share of both.
"""

from __future__ import annotations

import tensorflow as tf

from tfctr.layers.moe import NoisyCosineGate


def router_variables(model: tf.keras.Model) -> list:
    """The trainable variables of every ``NoisyCosineGate`` in the model."""
    seen, variables = set(), []
    for module in model.submodules:
        if isinstance(module, NoisyCosineGate):
            for v in module.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    variables.append(v)
    return variables


class BilevelTraining(tf.keras.Model):
    """Wraps a model with routers for bi-level training.

    Args:
        network: a tfctr model (probability output, ``"logit"`` layer) whose routers are ``NoisyCosineGate``s.
        router_optimizer: optimizer of α (default Adam(1e-3)).

    ``compile(optimizer=...)`` sets the optimizer of W; ``fit(BilevelTraining.pair(train, valid), ...)``
    trains. Metrics: ``loss`` (training BCE + layer losses), ``val_batch_loss`` (the validation batches' loss
    α was updated on), ``logloss``, ``auc``; ``evaluate``/``validation_data`` take plain ``(features, label)``
    batches.
    """

    @staticmethod
    def pair(train_data: tf.data.Dataset, validation_data: tf.data.Dataset) -> tf.data.Dataset:
        """``((x, y), (x_val, y_val))`` elements: every training batch with the next validation batch (the
        validation data repeats). Both should have the same batch size."""
        return tf.data.Dataset.zip((train_data, validation_data.repeat()))

    def __init__(self, network: tf.keras.Model, router_optimizer=None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.logit_model = tf.keras.Model(network.inputs, network.get_layer("logit").output)
        self.routers = router_variables(network)
        if not self.routers:
            raise ValueError("BilevelTraining: the model has no NoisyCosineGate router to train on validation data")
        routed = {id(v) for v in self.routers}
        self.weights_w = [v for v in network.trainable_variables if id(v) not in routed]
        self.router_optimizer = router_optimizer or tf.keras.optimizers.Adam(1e-3)
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.val_tracker = tf.keras.metrics.Mean(name="val_batch_loss")
        self.logloss = tf.keras.metrics.BinaryCrossentropy(name="logloss", from_logits=True)
        self.auc = tf.keras.metrics.AUC(name="auc", from_logits=True)

    @property
    def metrics(self):
        return [self.loss_tracker, self.val_tracker, self.logloss, self.auc]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def _loss(self, x, y):
        labels = tf.reshape(tf.cast(y, tf.float32), [-1, 1])
        logit = tf.cast(self.logit_model(x, training=True), tf.float32)
        per_example = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logit)[:, 0]
        loss = tf.nn.compute_average_loss(per_example)
        if self.logit_model.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.logit_model.losses))
        return loss, labels, logit

    def train_step(self, data):
        (x, y), (x_val, y_val) = data
        with tf.GradientTape() as tape:
            val_loss, _, _ = self._loss(x_val, y_val)
        self.router_optimizer.apply_gradients(zip(tape.gradient(val_loss, self.routers), self.routers))
        with tf.GradientTape() as tape:
            loss, labels, logit = self._loss(x, y)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.weights_w), self.weights_w))
        self.loss_tracker.update_state(loss)
        self.val_tracker.update_state(val_loss)
        self.logloss.update_state(labels, logit)
        self.auc.update_state(labels, logit)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[:2]
        labels = tf.reshape(tf.cast(y, tf.float32), [-1, 1])
        logit = tf.cast(self.logit_model(x, training=False), tf.float32)
        self.loss_tracker.update_state(
            tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logit)))
        self.logloss.update_state(labels, logit)
        self.auc.update_state(labels, logit)
        return {m.name: m.result() for m in self.metrics}
