"""Net regularisation: an L2 penalty on a model's network weights, the embeddings left to ``l2_embedding``."""

import tensorflow as tf

from tfctr.layers import FieldEmbedding


def network_weights(model: tf.keras.Model) -> list:
    """The trainable weights of rank ≥ 2 (kernels, cross and attention matrices, CIN filters, ...) that are not
    an embedding table (``FieldEmbedding``, including the per-id weights of the linear part)."""
    tables = {id(layer.embeddings) for layer in model.submodules if isinstance(layer, FieldEmbedding) and layer.built}
    return [w for w in model.trainable_weights if len(w.shape) >= 2 and id(w) not in tables]


def add_network_l2(model: tf.keras.Model, l2: float) -> None:
    """Adds ``l2 · Σ_W ‖W‖²`` over ``network_weights(model)`` to the model's losses (FuxiCTR's
    ``net_regularizer``). The penalty is not saved with the model: it only shapes training."""
    if l2 < 0:
        raise ValueError(f"l2_net must be >= 0, got {l2}")
    if not l2:
        return
    weights = network_weights(model)
    if weights:
        model.add_loss(lambda: l2 * tf.add_n([tf.reduce_sum(tf.square(tf.cast(w, tf.float32))) for w in weights]))
