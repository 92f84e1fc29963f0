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
from tfctr.training.steps import StepModel, bce_per_example, global_average


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


class BilevelTraining(StepModel):
    """Wraps a model with routers for bi-level training.

    Args:
        network: a tfctr model (probability output, ``"logit"`` layer) whose routers are ``NoisyCosineGate``s.
        router_optimizer: optimizer of α (default Adam(1e-3)).
        router_every: update α on every ``router_every``-th training step (default 1: every step). Above 1 it
            runs on one replica only: TensorFlow cannot apply an optimizer inside a conditional under a
            multi-replica ``tf.distribute`` strategy.

    ``compile(optimizer=...)`` sets the optimizer of W; ``fit(BilevelTraining.pair(train, valid), ...)``
    trains. Metrics: ``loss`` (training BCE), ``val_batch_loss`` (BCE of the validation batches α was updated
    on; 0 in ``evaluate``, which has none), ``logloss``, ``auc``; ``evaluate``/``validation_data`` take plain
    ``(features, label)`` batches.
    """

    @staticmethod
    def pair(train_data: tf.data.Dataset, validation_data: tf.data.Dataset) -> tf.data.Dataset:
        """``((x, y), (x_val, y_val))`` elements: every training batch with the next validation batch (the
        validation data repeats). Both should have the same batch size."""
        return tf.data.Dataset.zip((train_data, validation_data.repeat()))

    def __init__(self, network: tf.keras.Model, router_optimizer=None, router_every: int = 1, **kwargs):
        super().__init__(network, means=("val_batch_loss",), **kwargs)
        if int(router_every) < 1:
            raise ValueError(f"BilevelTraining: router_every must be a positive number of steps, got {router_every}")
        self.router_every = int(router_every)
        self.routers = router_variables(network)
        if not self.routers:
            raise ValueError("BilevelTraining: the model has no NoisyCosineGate router to train on validation data")
        routed = {id(v) for v in self.routers}
        self.weights_w = [v for v in network.trainable_variables if id(v) not in routed]
        self.router_optimizer = router_optimizer or tf.keras.optimizers.Adam(1e-3)

    def _loss(self, x, y):
        logit = self.logit(x, training=True)
        labels, per_example = bce_per_example(y, logit)
        return global_average(per_example, self.logit_model.losses), labels, logit, per_example

    def _router_step(self, x_val, y_val):
        with tf.GradientTape() as tape:
            val_loss, _, _, val_per_example = self._loss(x_val, y_val)
        self.router_optimizer.apply_gradients(zip(tape.gradient(val_loss, self.routers), self.routers))
        self.tracker("val_batch_loss").update_state(val_per_example)
        return tf.constant(0)

    def train_step(self, data):
        (x, y), (x_val, y_val) = data
        if self.router_every == 1:
            self._router_step(x_val, y_val)
        else:
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            if replicas > 1:
                raise ValueError(f"BilevelTraining: router_every={self.router_every} needs one replica; this "
                                 f"strategy has {replicas} (use router_every=1)")
            tf.cond(self.optimizer.iterations % self.router_every == 0,
                    lambda: self._router_step(x_val, y_val), lambda: tf.constant(0))
        with tf.GradientTape() as tape:
            loss, labels, logit, per_example = self._loss(x, y)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.weights_w), self.weights_w))
        return self.record(labels, logit, loss=per_example)


ROUTINGS = ("joint", "bilevel")


def routing_trainer(network: tf.keras.Model, routing: str, router_learning_rate: float = 1e-3,
                    router_every: int = 1) -> tf.keras.Model:
    """The model ``fit`` trains for a routing mode: ``network`` itself for ``"joint"`` (routers and weights
    learn together on the training loss), a ``BilevelTraining`` around it for ``"bilevel"``."""
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    if routing == "joint":
        return network
    return BilevelTraining(network, tf.keras.optimizers.Adam(router_learning_rate), router_every)
