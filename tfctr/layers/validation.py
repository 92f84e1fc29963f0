"""Helpers shared by tfctr layers: argument checks that name the argument, input lists, initialisers."""

import warnings

import tensorflow as tf

_MISSING = object()


def positive_int(layer: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return value


def positive_int_list(layer: str, name: str, values) -> list[int]:
    values = list(values)
    if not values:
        raise ValueError(f"{layer}: {name} must not be empty")
    return [positive_int(layer, f"{name}[{i}]", v) for i, v in enumerate(values)]


def rate(layer: str, name: str, value) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{layer}: {name} must be in [0, 1), got {value!r}")
    return float(value)


def non_negative(layer: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value) >= 0.0:
        raise ValueError(f"{layer}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def choice(layer: str, name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{layer}: {name} must be one of {sorted(choices)}, got {value!r}")
    return value


def as_tensor_list(inputs) -> list:
    """Keras passes a one-element input list as the bare tensor; list-input layers take both."""
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def as_shape_list(input_shape) -> list:
    """The shape counterpart of ``as_tensor_list`` for ``build``/``compute_output_shape``: the list of the
    inputs' shapes, whether Keras passes one shape (``(None, 5)``, a TensorShape) or a list of them."""
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)) or \
            isinstance(input_shape, (list, tuple)) and input_shape and hasattr(input_shape[0], "rank"):
        return list(input_shape)
    return [input_shape]


def pair_shapes(layer: str, input_shape, pair_only: bool = False) -> tuple:
    """``(x0 shape, x shape)`` of a layer called on the pair ``(x0, x)`` (every tfctr layer that takes the raw
    input next to the running one takes it first, as TFRS's ``Cross``), or on x0 alone when ``pair_only`` is
    False (then x = x0). The two must have the same shape: ValueError naming the layer otherwise."""
    shapes = as_shape_list(input_shape)
    if len(shapes) == 1 and not pair_only:
        shapes = shapes * 2
    if len(shapes) != 2:
        raise ValueError(f"{layer}: expects (x0, x){'' if pair_only else ' or x0 alone'}, got {len(shapes)} inputs "
                         f"of shapes {shapes}")
    x0, x = (tf.TensorShape(s) for s in shapes)
    if x0[1:] != x[1:]:
        raise ValueError(f"{layer}: x0 {x0.as_list()} and x {x.as_list()} must have the same shape")
    return x0, x


def renamed_argument(layer: str, kwargs: dict, former: str, current: str, value, default=_MISSING):
    """``value`` of argument ``current``, or the value given under its deprecated ``former`` name (popped from
    ``kwargs``, with a DeprecationWarning): configs saved before a rename still load. A TypeError when both are
    given (``default``: ``current``'s default, which tells "not given" from "given")."""
    if former not in kwargs:
        return value
    if default is not _MISSING and value != default:
        raise TypeError(f"{layer}: give {current} or its former name {former}, not both")
    warnings.warn(f"{layer}({former}=) is deprecated; use {current}=", DeprecationWarning, stacklevel=3)
    return kwargs.pop(former)


def fresh(initializer):
    """A new instance of an initialiser, so that several weights drawn from it differ (Keras reuses the values
    of an unseeded initialiser instance that is called twice)."""
    return tf.keras.initializers.get(tf.keras.initializers.serialize(initializer))


def build_sublayer(layer, input_shape):
    """Builds a sublayer inside its parent's ``build`` with its weights named ``parent/sublayer/weight``."""
    with tf.name_scope(layer.name):
        layer.build(input_shape)
    return layer


def check_prior(layer, prior, n):
    """``prior`` as n positive floats summing to 1 (expected loads of n experts or depths), or None."""
    if prior is None:
        return None
    prior = [float(p) for p in prior]
    if len(prior) != n or min(prior) <= 0 or abs(sum(prior) - 1) > 1e-6:
        raise ValueError(f"{layer}: prior must be {n} positive fractions summing to 1, got {prior}")
    return prior
