"""Small helpers shared across tfctr: seeding, the global Keras precision policy, free ports."""

import contextlib
import os
import random

import numpy as np
import tensorflow as tf


def set_seed(seed: int, deterministic_ops: bool = False) -> None:
    """Seeds Python, NumPy and TensorFlow so that the same seed gives the same model.

    Args:
        seed: the seed for all three generators.
        deterministic_ops: also ask TensorFlow for deterministic kernels (slower; needed for bit-identical
            training runs on multi-threaded CPUs and GPUs).
    """
    random.seed(seed)
    np.random.seed(seed)
    # Keras' own seed generator too: once tf.keras.utils.set_random_seed has been called anywhere in the
    # process, unseeded initialisers draw their seeds from it, so it must be reset as well
    tf.keras.utils.set_random_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def global_policy(name):
    """Layers built inside use the Keras mixed-precision policy ``name`` (``"mixed_bfloat16"``, …; None keeps
    the current one); the previous global policy is restored on exit."""
    previous = tf.keras.mixed_precision.global_policy()
    if name:
        tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (for local servers and cluster tasks)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
