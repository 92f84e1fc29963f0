"""Calling a loaded SavedModel signature with many ``[batch]`` inputs at a cost that does not grow with their
number.

A tfctr signature takes one ``[B]`` tensor per raw feature (39 for a Criteo-like spec). Called the plain way,
every input costs twice in Python: its NumPy array becomes an eager tensor (≈ 18 µs each), and the call binds it
by keyword (≈ 14 µs each), 1.2 ms in all at 39 inputs, more than the model and its feature encoding together at
batch 1. ``PackedSignature`` wraps the signature once, when a version is loaded, in a traced function whose
arguments are one ``[K, B]`` tensor per input dtype (the ``K`` inputs of that dtype in a fixed order): a call
stacks the arrays of each dtype, converts each stack once (two conversions for strings and floats), passes them
positionally to the wrapper's flat form, and the wrapper splits them again inside the graph and calls the
signature there. The outputs are the signature's own; the tests compare them with the keyword call.

The flat form is TensorFlow's private ``ConcreteFunction._call_flat`` (TensorFlow is pinned to 2.21 here), which
skips the public call's argument binding; where a concrete function lacks it, the public call is used.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def packable(signature_def) -> bool:
    """Whether a signature's inputs are all ``[batch]`` vectors, the only inputs ``PackedSignature`` takes."""
    return all(not v.tensor_shape.unknown_rank and [d.size for d in v.tensor_shape.dim] == [-1]
               for v in signature_def.inputs.values())


class PackedSignature:
    """``PackedSignature(function, dtypes)(arrays)`` = ``function(**{k: tf.constant(arrays[k], dtypes[k])})``.

    Args:
        function: a loaded signature (its ``module`` must stay alive as long as this object is used).
        dtypes: ``{input name: tf.DType}``, every input of the signature; each is a ``[batch]`` vector.
    """

    def __init__(self, function, dtypes: dict[str, tf.DType]):
        groups: dict[tf.DType, list[str]] = {}
        for key, dtype in dtypes.items():
            groups.setdefault(dtype, []).append(key)
        self.groups = list(groups.items())

        def split_and_call(*stacks):
            inputs = {}
            for (_, keys), stack in zip(self.groups, stacks):
                inputs.update(zip(keys, tf.unstack(stack, len(keys))))
            return function(**inputs)

        specs = [tf.TensorSpec([len(keys), None], dtype) for dtype, keys in self.groups]
        self._function = tf.function(split_and_call, input_signature=specs).get_concrete_function()
        call_flat = getattr(self._function, "_call_flat", None)
        captured = self._function.captured_inputs
        self._call = (lambda stacks: call_flat(stacks, captured)) if call_flat else \
            (lambda stacks: self._function(*stacks))

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        """The signature's outputs for ``arrays``: every input, 1-D, of one batch size, in its dtype."""
        stacks = [tf.constant(np.stack([arrays[k] for k in keys]), dtype=dtype) for dtype, keys in self.groups]
        return self._call(stacks)
