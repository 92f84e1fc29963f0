"""What each method is doing, as scalars added to the epoch logs (so ``History`` and TensorBoard record them).

Per epoch, for the models that have them:

* every model: ``learning_rate``, the optimizer's rate at the end of the epoch (after any reduction);
* OptFusion's search (a ``FusionSupernet``): ``fusion_alpha/<node>/<source>``, each connection's strength α
  (the connection is on while α > 0), and ``fusion_beta/<node>/<operation>``, softmax(β) of each fused node;
* AdaEnsemble (``MoE`` layers with a ``NoisyCosineGate``): ``gate_temperature/layer_<l>``, and on a validation
  batch ``expert_load/layer_<l>/<j>_<expert>`` (share of the examples reaching layer l that its gate sends to
  expert j) and ``exit_depth/<d>`` (share of the examples the depth controller stops at depth d);
* KD-DAGFM's ``Distiller``: ``kd_loss_share``, the part of the distillation loss that is the logit matching,
  β·MSE / (α·BCE + β·MSE), from the epoch's ``kd_mse`` and ``loss``;
* APG (``APGDense`` layers): ``apg_generated_norm/<layer>``, the mean L2 norm over a validation batch of the
  parameters each example's condition generates.

``MethodSignals`` is the Keras callback; ``tfctr.training.train`` (and ``distill``, ``search_fusion``) put it
before TensorBoard, so the tags land next to the loss and metrics. ``StepScalars`` writes the training loss and
metrics every N steps (``--log-every``), ``write_exact_metrics`` the exact metrics of ``metrics.json``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfctr.layers import AdaEnsembleNetwork
from tfctr.layers.apg import APGDense
from tfctr.layers.fusion import OPERATIONS, FusionSupernet
from tfctr.layers.moe import NoisyCosineGate


def _layers_of(model: tf.keras.Model, kind) -> list:
    return [m for m in model.submodules if isinstance(m, kind)]


def fusion_signals(model: tf.keras.Model) -> dict[str, float]:
    """α of every candidate connection and softmax(β) of every fused node of the model's ``FusionSupernet``."""
    signals = {}
    for supernet in _layers_of(model, FusionSupernet):
        alpha, beta = supernet.alpha.numpy(), tf.nn.softmax(supernet.beta, axis=1).numpy()
        for j, node in enumerate(supernet.names[1:], start=1):
            for i, source in enumerate(supernet.names[:j]):
                signals[f"fusion_alpha/{node}/{source}"] = float(alpha[j, i])
        for j, node in enumerate(supernet.names[2:]):
            for o, operation in enumerate(OPERATIONS):
                signals[f"fusion_beta/{node}/{operation}"] = float(beta[j, o])
    return signals


def gate_signals(model: tf.keras.Model, features=None) -> dict[str, float]:
    """Gate temperatures of the AdaEnsemble layers and, given a batch of ``features``, expert loads and exit
    depths on it (``routing_statistics``)."""
    from tfctr.training.routing import routing_statistics

    signals = {}
    networks = _layers_of(model, AdaEnsembleNetwork)
    for network in networks:
        for layer, moe in enumerate(network.moes, start=1):
            signals[f"gate_temperature/layer_{layer}"] = float(moe.gate.temperature().numpy())
    if networks and features is not None:
        stats = routing_statistics(model, [features])
        for layer, loads in enumerate(stats["expert_loads"], start=1):
            for expert, share in loads.items():
                signals[f"expert_load/layer_{layer}/{expert}"] = share
        for depth, share in enumerate(stats["exit_depths"] or [], start=1):
            signals[f"exit_depth/{depth}"] = share
    elif not networks:  # gates outside an AdaEnsemble network (e.g. a bare MoE layer): temperatures only
        for i, gate in enumerate(_layers_of(model, NoisyCosineGate), start=1):
            signals[f"gate_temperature/gate_{i}"] = float(gate.temperature().numpy())
    return signals


def apg_signals(model: tf.keras.Model, features) -> dict[str, float]:
    """Mean L2 norm of the per-example generated parameters of every ``APGDense`` layer, on ``features``.

    The model is run once eagerly with each layer's generator wrapped so that its output is recorded."""
    layers = _layers_of(model, APGDense)
    if not layers or features is None:
        return {}
    norms = {}

    def recorder(layer):
        generate = layer._generate

        def recording(conditions):
            params = generate(conditions)
            norms[layer.name] = float(tf.reduce_mean(tf.norm(tf.cast(params, tf.float32), axis=1)).numpy())
            return params
        return recording

    for layer in layers:
        layer._generate = recorder(layer)
    try:
        model(features, training=False)
    finally:
        for layer in layers:
            del layer._generate  # back to the class's method
    return {f"apg_generated_norm/{name}": value for name, value in norms.items()}


def distillation_share(logs: dict, alpha: float, beta: float) -> float | None:
    """β·MSE / (α·BCE + β·MSE) of an epoch of ``Distiller`` from its ``loss`` and ``kd_mse`` logs."""
    if "kd_mse" not in logs or not logs.get("loss"):
        return None
    return float(beta * logs["kd_mse"] / logs["loss"])


class MethodSignals(tf.keras.callbacks.Callback):
    """Adds the module's scalars to each epoch's logs.

    Args:
        features: a batch of model inputs for the signals that need data (expert loads, exit depths, APG norms);
            None leaves those out (e.g. under a cluster strategy, whose input is built on the workers).
    """

    def __init__(self, features=None):
        super().__init__()
        self.features = features

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        learning_rate = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate)
        network = getattr(self.model, "network", self.model)  # the model inside a custom-step trainer
        logs.update(fusion_signals(network))
        logs.update(gate_signals(network, self.features))
        logs.update(apg_signals(network, self.features))
        if hasattr(self.model, "teacher_logit"):  # a Distiller
            share = distillation_share(logs, self.model.alpha, self.model.beta)
            if share is not None:
                logs["kd_loss_share"] = share


class StepScalars(tf.keras.callbacks.Callback):
    """Writes the training loss and metrics every ``every`` steps as ``batch_<name>`` scalars (step = the
    optimizer's iteration) to ``log_dir`` (a run's ``logs/train``). Keras' own TensorBoard writes batch-level
    scalars only while profiling, hence this callback."""

    def __init__(self, log_dir, every: int):
        super().__init__()
        if every < 1:
            raise ValueError(f"log_every must be a positive number of steps, got {every}")
        self.log_dir, self.every = str(log_dir), int(every)
        self._supports_tf_logs = True  # the logs stay tensors except on the steps that are written
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if logs is None or step % self.every:
            return
        with self._writer.as_default():
            for name, value in logs.items():
                tf.summary.scalar(f"batch_{name}", float(value), step=step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def first_features(dataset, rows: int = 1024):
    """The features of the first batch of a ``tf.data`` dataset of ``(features, label)``, at most ``rows``
    rows; None for inputs that are not datasets (cluster strategies)."""
    if not isinstance(dataset, tf.data.Dataset):
        return None
    features = next(iter(dataset.take(1)))[0]
    return {k: v[:rows] for k, v in features.items()} if isinstance(features, dict) else features[:rows]


def write_exact_metrics(log_dir, metrics: dict, step: int) -> None:
    """Writes the exact AUC/logloss of ``metrics.json`` (``valid`` and ``test``, the model's and the
    Bayes-optimal reference when present) as ``exact/<split>_<metric>`` scalars at ``step`` (the selected
    epoch) in ``log_dir/exact``."""
    writer = tf.summary.create_file_writer(str(log_dir / "exact"))
    with writer.as_default():
        for split in ("valid", "test"):
            for source, values in metrics.get(split, {}).items():
                prefix = f"exact/{split}" + ("" if source == "model" else f"_{source}")
                for name in ("auc", "logloss"):
                    if name in values:
                        tf.summary.scalar(f"{prefix}_{name}", np.float32(values[name]), step=step)
    writer.flush()
    writer.close()
