"""Where AdaEnsemble routes examples: expert loads per layer and the exit-depth distribution, at inference."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfctr.layers import AdaEnsembleNetwork


def _network_input(model: tf.keras.Model, network: AdaEnsembleNetwork):
    return tf.keras.Model(model.inputs, network.input)


def routing_statistics(model: tf.keras.Model, dataset) -> dict:
    """Fractions over the examples of ``dataset`` (batches of features, or ``(features, label)``) of

    * ``"exit_depths"``: examples the depth controller sends to depth 1..L (``None`` without controller);
    * ``"expert_loads"``: per layer, examples each expert of that layer's gate selects, counted over the
      examples that reach the layer (all of them without controller, as in training).

    Gates are evaluated at inference (no jitter) with the current top-k.
    """
    network = next(m for m in model.submodules if isinstance(m, AdaEnsembleNetwork))
    slots_of = _network_input(model, network)
    depth_counts = np.zeros(network.num_layers)
    expert_counts = [np.zeros(len(moe.expert_kinds)) for moe in network.moes]
    reached = np.zeros(network.num_layers)
    for batch in dataset:
        features = batch[0] if isinstance(batch, tuple) else batch
        x0 = slots_of(features, training=False)
        depths = network.exit_depths(x0).numpy() if network.controller else \
            np.full(int(x0.shape[0]), network.num_layers - 1)
        depth_counts += np.bincount(depths, minlength=network.num_layers)
        x = x0
        for d, moe in enumerate(network.moes):
            present = depths >= d
            gates, _ = moe.gate(x0, training=False)
            expert_counts[d] += (gates.numpy()[present] > 0).sum(axis=0)
            reached[d] += present.sum()
            x = moe((x0, x), training=False)
    stats = {"expert_loads": [
        {f"{j}_{kind}": float(c / max(r, 1)) for j, (kind, c) in enumerate(zip(moe.expert_kinds, counts))}
        for moe, counts, r in zip(network.moes, expert_counts, reached)]}
    stats["exit_depths"] = (depth_counts / depth_counts.sum()).tolist() if network.controller else None
    return stats


class RoutingMetrics(tf.keras.callbacks.Callback):
    """Adds ``routing_statistics`` on ``dataset`` to the epoch logs (so History and TensorBoard show them):
    ``exit_depth_<d>`` and ``layer_<l>_load_<j>_<expert>``."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        stats = routing_statistics(self.model, self.dataset)
        for d, fraction in enumerate(stats["exit_depths"] or []):
            logs[f"exit_depth_{d + 1}"] = fraction
        for layer, loads in enumerate(stats["expert_loads"]):
            for expert, fraction in loads.items():
                logs[f"layer_{layer + 1}_load_{expert}"] = fraction

