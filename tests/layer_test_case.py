"""The shared layer test harness: every tfctr layer test goes through ``check_layer``.

``check_layer`` builds the layer, then checks, in order:

1. every ``__init__`` parameter appears in ``get_config()`` and is an attribute of the same name (automatic,
   from the signature: attribute = argument = config key);
2. the weight names and shapes, when given;
3. the output against golden values (deterministic initialisers) and/or a slow NumPy reference that reads the
   layer's weights;
4. ``from_config`` rebuilds a layer that, given the same weights, returns identical outputs;
5. a functional model around the layer survives SavedModel (TF format) and ``.keras`` round trips with
   identical outputs;
6. each invalid argument set raises ``ValueError`` (or ``TypeError``);
7. every trainable weight receives a non-zero gradient from a random projection of the output.
"""

from __future__ import annotations

import inspect
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf


def _numpy(x):
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t), x)


def init_parameters(layer_cls) -> list[str]:
    """Named ``__init__`` parameters a layer class adds (without self, *args, **kwargs and those of the base
    ``tf.keras.layers.Layer``, which Keras serialises itself)."""
    base = set(inspect.signature(tf.keras.layers.Layer.__init__).parameters)
    params = inspect.signature(layer_cls.__init__).parameters.values()
    return [p.name for p in params
            if p.name not in base and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _assert_equal(actual, expected, **tolerance):
    check = np.testing.assert_allclose if tolerance else np.testing.assert_array_equal
    if not isinstance(actual, dict):  # one tensor (expected values may be given as nested lists)
        return check(actual, np.asarray(expected), **tolerance)
    assert actual.keys() == expected.keys(), (sorted(actual), sorted(expected))
    for key in actual:
        check(actual[key], expected[key], err_msg=key, **tolerance)


def _functional(layer, inputs):
    """A functional model around ``layer`` whose inputs are the leaves of ``inputs`` (any nesting), in
    ``tf.nest.flatten`` order (a dict keeps its keys as input names)."""
    if isinstance(inputs, dict):
        keras_inputs = {k: tf.keras.Input(shape=t.shape[1:], dtype=t.dtype, name=k) for k, t in inputs.items()}
        return tf.keras.Model(keras_inputs, layer(keras_inputs))
    structure = tf.nest.map_structure(lambda t: tf.keras.Input(shape=t.shape[1:], dtype=t.dtype), inputs)
    return tf.keras.Model(tf.nest.flatten(structure), layer(structure))


def _model_inputs(inputs):
    return inputs if isinstance(inputs, dict) else tf.nest.flatten(inputs)


def check_layer(
    layer_cls,
    init_kwargs: dict,
    inputs,
    *,
    expected_output=None,
    numpy_reference=None,
    weight_shapes: dict | None = None,
    invalid_kwargs=(),
    atol: float = 1e-5,
    rtol: float = 1e-5,
    call_kwargs: dict | None = None,
):
    """Runs the harness on ``layer_cls(**init_kwargs)(inputs)``; returns the layer and its output (NumPy).

    Args:
        numpy_reference: ``fn(layer, numpy_inputs) -> numpy output`` computed the slow, obvious way from the
            layer's weights.
        weight_shapes: ``{weight name relative to the layer: shape}`` of every weight.
        invalid_kwargs: constructor argument sets that must raise ValueError/TypeError.
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    output = _numpy(layer(inputs, **call_kwargs))

    if not isinstance(output, (list, tuple, dict)):  # the declared shape is the real one
        shapes = tf.nest.map_structure(lambda t: tf.TensorShape(t.shape), inputs)
        declared = tf.TensorShape(layer.compute_output_shape(shapes))
        assert declared.as_list() == list(output.shape), \
            f"{layer_cls.__name__}.compute_output_shape({shapes}) = {declared}, output {output.shape}"
        if isinstance(shapes, tf.TensorShape):  # Keras also passes a single shape as a plain tuple
            as_tuple = tf.TensorShape(layer.compute_output_shape(tuple(shapes.as_list())))
            assert as_tuple.as_list() == list(output.shape), f"{layer_cls.__name__}: {as_tuple} from a tuple"

    config = layer.get_config()
    missing = [name for name in init_parameters(layer_cls) if name not in config]
    assert not missing, f"{layer_cls.__name__}.get_config() lacks __init__ parameters {missing}"
    unstored = [name for name in init_parameters(layer_cls) if not hasattr(layer, name)]
    assert not unstored, f"{layer_cls.__name__} stores __init__ parameters {unstored} under other names"

    if weight_shapes is not None:
        prefix = layer.name + "/"
        actual = {w.name.split(":")[0].removeprefix(prefix): tuple(w.shape) for w in layer.weights}
        assert actual == {k: tuple(v) for k, v in weight_shapes.items()}, f"weights {actual}"

    if expected_output is not None:
        _assert_equal(output, expected_output, atol=atol, rtol=rtol)
    if numpy_reference is not None:
        reference = numpy_reference(layer, _numpy(inputs))
        _assert_equal(output, reference, atol=atol, rtol=rtol)

    clone = layer_cls.from_config(config)
    clone(inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    _assert_equal(_numpy(clone(inputs, **call_kwargs)), output)

    model = _functional(layer_cls.from_config(config), inputs)
    model.get_layer(index=-1).set_weights(layer.get_weights())
    expected = _numpy(model(_model_inputs(inputs)))
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved_model")
        model.save(saved, save_format="tf")
        _assert_equal(_numpy(tf.keras.models.load_model(saved)(_model_inputs(inputs))), expected)
        keras_file = os.path.join(tmp, "model.keras")
        model.save(keras_file)
        _assert_equal(_numpy(tf.keras.models.load_model(keras_file)(_model_inputs(inputs))), expected)

    for bad in invalid_kwargs:
        with pytest.raises((ValueError, TypeError)):
            layer_cls(**{**init_kwargs, **bad})
    _check_gradients(layer, inputs, call_kwargs)
    return layer, output


def _check_gradients(layer, inputs, call_kwargs):
    with tf.GradientTape() as tape:
        outputs = layer(inputs, training=True, **call_kwargs) if "training" in inspect.signature(
            layer.call).parameters else layer(inputs, **call_kwargs)
        leaves = [t for t in tf.nest.flatten(outputs) if t.dtype.is_floating]
        loss = sum(tf.reduce_sum(t * tf.random.stateless_normal(tf.shape(t), seed=[1, i]))
                   for i, t in enumerate(leaves))
    if not layer.trainable_weights:
        return
    gradients = tape.gradient(loss, layer.trainable_weights)
    for weight, gradient in zip(layer.trainable_weights, gradients):
        assert gradient is not None, f"{weight.name} receives no gradient"
        values = tf.convert_to_tensor(gradient)
        assert float(tf.reduce_max(tf.abs(values))) > 0, f"{weight.name} receives a zero gradient"
