"""Folding for inference: the hook through which layers give the exporter their serving form.

A layer that computes something cheaper at inference than in training (APG's over-parameterised U = U^l·U^r
precomputed, a DAGFM student without its masks, a derived OptFusion graph) implements

    def serving_form(self) -> tf.keras.layers.Layer

returning a *built* layer, with its weights already set, that takes the same inputs and returns the same outputs
at inference (``training=False``). A layer whose cheaper form depends on its configuration also defines a
``needs_folding`` property (False: leave it as it is). ``fold_for_serving(model)`` rebuilds a functional model
with every such layer replaced by its serving form, recursively through nested functional models, and copies the
weights of every other layer unchanged. Models without foldable layers come back as they are.
"""

from __future__ import annotations

import tensorflow as tf


def _is_functional(layer) -> bool:
    return isinstance(layer, tf.keras.Model) and getattr(layer, "_is_graph_network", False)


def _folds(layer) -> bool:
    return callable(getattr(layer, "serving_form", None)) and getattr(layer, "needs_folding", True)


def has_serving_form(layer) -> bool:
    """True when the layer, or a layer of a nested functional model, has a serving form to fold."""
    if _folds(layer):
        return True
    return _is_functional(layer) and any(has_serving_form(inner) for inner in layer.layers)


def fold_for_serving(model: tf.keras.Model) -> tf.keras.Model:
    """A functional model equal to ``model`` at inference, each foldable layer replaced by its serving form."""
    if not has_serving_form(model):
        return model
    if not _is_functional(model):
        raise TypeError(f"fold_for_serving needs a functional model, got {type(model).__name__}")
    copied = []

    def clone(layer):
        if _folds(layer):
            return layer.serving_form()
        if _is_functional(layer):
            return fold_for_serving(layer) if has_serving_form(layer) else layer
        new = layer.__class__.from_config(layer.get_config())
        copied.append((layer, new))
        return new

    folded = tf.keras.models.clone_model(model, clone_function=clone)
    for original, new in copied:
        new.set_weights(original.get_weights())
    return folded
