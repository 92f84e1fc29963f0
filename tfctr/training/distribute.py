"""``tf.distribute`` strategies by name, and the mixed-precision policy of the machine.

Global batch semantics: ``batch_size`` is always the global batch of one optimizer step; MirroredStrategy splits
each batch over the local replicas. Losses of tfctr's custom ``train_step``s are averaged over the global batch
(``tf.nn.compute_average_loss``) and layer losses scaled once per replica (``scale_regularization_loss``), so a
step under a strategy equals the same step on one device.
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("default", "mirrored")


def strategy(name: str = "default") -> tf.distribute.Strategy:
    """``"default"`` (no distribution) or ``"mirrored"`` (synchronous data parallelism over every local GPU, or
    the CPU devices)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy()


def mixed_precision_policy() -> str:
    """``mixed_float16`` on GPUs, ``mixed_bfloat16`` on CPUs (no loss scaling needed there)."""
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
