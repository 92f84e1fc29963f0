"""Tensor operations shared by layers of different families."""

import tensorflow as tf


def straight_through(forward, surrogate):
    """``forward`` in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    return surrogate + tf.stop_gradient(forward - surrogate)
