"""tf.Examples from the JSON of TF Serving's REST classify and regress APIs.

Each example is an object ``{feature: value}``; a value is a scalar or a list of scalars of one kind, as TF
Serving reads them: a JSON integer is an ``int64_list``, a number with a fraction or exponent a ``float_list``, a
string (or ``{"b64": "..."}`` for binary data) a ``bytes_list``. The optional ``context`` object holds features
common to every example (an example's own value wins).
"""

from __future__ import annotations

import base64
import binascii

import grpc
import tensorflow as tf

from tfctr.serving.requests import RequestError, shown


def _bad(where: str, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{where}: {message}")


def _scalar(where: str, value):
    """A JSON scalar as (kind, value) with kind in ``int64``/``float``/``bytes``."""
    if isinstance(value, bool):
        raise _bad(where, "booleans are not tf.Example values (use 0/1)")
    if isinstance(value, int):
        if not -2 ** 63 <= value < 2 ** 63:
            raise _bad(where, f"the integer {shown(value)} is outside int64")
        return "int64", value
    if isinstance(value, float):
        return "float", value
    if isinstance(value, str):
        return "bytes", value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return "bytes", base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise _bad(where, "the \"b64\" value is not base64") from None
    raise _bad(where, f"expected a number, a string or {{\"b64\": ...}}, got {type(value).__name__}")


def _feature(where: str, value) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    kinds_values = [_scalar(f"{where}[{i}]" if isinstance(value, list) else where, v) for i, v in enumerate(values)]
    kinds = {kind for kind, _ in kinds_values}
    if kinds == {"int64", "float"}:  # [1, 2.5]: numbers of one list are floats
        kinds = {"float"}
    if len(kinds) > 1:
        raise _bad(where, "a list mixes strings and numbers")
    kind = kinds.pop() if kinds else "float"
    plain = [v for _, v in kinds_values]
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=plain))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in plain]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=plain))


def _features(where: str, obj) -> dict:
    if not isinstance(obj, dict):
        raise _bad(where, f"expected an object of features, got {type(obj).__name__}")
    return {name: _feature(f"{where} feature {shown(name)}", value) for name, value in obj.items()}


def examples_from_json(body) -> list[bytes]:
    """The serialized tf.Examples of a REST classify/regress body (``examples`` and optional ``context``)."""
    if not isinstance(body, dict) or "examples" not in body:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, 'the body must be a JSON object with "examples"')
    examples = body["examples"]
    if not isinstance(examples, list):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, '"examples" must be a list of objects')
    context = _features("context", body.get("context") or {})
    serialized = []
    for i, example in enumerate(examples):
        features = dict(context, **_features(f"example {i}", example))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return serialized
