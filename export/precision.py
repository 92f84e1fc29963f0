"""Serving in bfloat16: the exported graph computes in bfloat16 where that is as accurate as float32.

``bfloat16_copy(model, card, spec)`` rebuilds the model from its registry name and hyper-parameters (the model
card) under Keras' ``mixed_bfloat16`` policy and copies the weights into it: variables stay float32, every
layer computes in bfloat16 (8 bits of mantissa, float32's exponent range), and the head (``logit``,
``probability``) stays float32 as in mixed-precision training. It is the model a ``--mixed-precision`` run
builds, so the same layers run in the same dtypes as in training.

``probability_difference(reference, candidate, spec, data)`` measures what that costs on real rows:
max and mean |p_bf16 − p_f32| over the first ``rows`` rows of a Parquet split. The exporter refuses a
bfloat16 export whose max |Δp| exceeds its tolerance, and writes the measurement into the model card.

On CPUs with AMX / AVX512-BF16 the bfloat16 matmuls are the fast path; on CPUs without them (AVX2 only)
TensorFlow emulates bfloat16 and serving is slower than float32 (``bench/serving_precision.py`` measures both).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfctr.data.parquet import parquet_dataset
from tfctr.defaults import DEFAULT_PROBABILITY_TOLERANCE, SERVING_PRECISIONS  # noqa: F401 (re-exported here)
from tfctr.export.folding import fold_for_serving
from tfctr.features import FeatureSpec
from tfctr.utils import global_policy

CHECK_ROWS = 4096


def bfloat16_copy(model: tf.keras.Model, card: dict, spec: FeatureSpec) -> tf.keras.Model:
    """``model`` rebuilt to compute in bfloat16 with the same (float32) weights, folded for serving.

    ``card``: ``{"model": registry name, "hyper_parameters": {...}}`` as ``tfctr.models.build`` and the run
    directories record it."""
    from tfctr.models import available, build

    name = card.get("model")
    if name not in available():
        raise ValueError(f"a bfloat16 export rebuilds the model from its registry name and hyper-parameters; "
                         f"this model's card names {name!r}, which is not a registered model")
    with global_policy("mixed_bfloat16"):
        copy = build(name, spec, **card.get("hyper_parameters", {}))
        if len(copy.weights) != len(model.weights):
            raise ValueError(f"the rebuilt '{name}' has {len(copy.weights)} weights, the model {len(model.weights)}:"
                             " the card's hyper-parameters do not describe this model")
        copy.set_weights(model.get_weights())
        return fold_for_serving(copy)


def compute_dtype(model: tf.keras.Model) -> str:
    """The dtype ``model``'s layers compute in: a mixed policy's compute dtype if any layer has one (a
    ``--mixed-precision`` run), else ``"float32"``."""
    for layer in model.submodules:
        policy = getattr(layer, "dtype_policy", None)
        if policy is not None and policy.name.startswith("mixed_"):
            return policy.compute_dtype
    return "float32"


def probability_difference(reference: tf.keras.Model, candidate: tf.keras.Model, spec: FeatureSpec, data,
                           rows: int = CHECK_ROWS) -> dict:
    """``{"rows", "max_abs", "mean_abs"}`` of the two models' click probabilities on the first ``rows`` rows of
    the Parquet file(s) ``data`` (inference mode)."""
    batch = next(iter(parquet_dataset(data, spec, batch_size=rows, with_label=False)))
    p_reference = reference(batch, training=False).numpy().reshape(-1).astype(np.float64)
    p_candidate = tf.cast(candidate(batch, training=False), tf.float32).numpy().reshape(-1).astype(np.float64)
    difference = np.abs(p_candidate - p_reference)
    return {"rows": int(difference.size), "max_abs": float(difference.max()), "mean_abs": float(difference.mean())}
