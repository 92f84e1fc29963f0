"""Turning a request's TensorProto into a NumPy input, checked before anything is allocated.

A Predict request states a dtype and a shape and then carries the values, and nothing forces the two to agree:
a few hundred bytes can declare half a million rows, or 200 million doubles. ``decode_input`` checks the
declaration (a known dtype, the signature's dtype, a 1-D shape ``[batch]`` of at most ``max_rows`` rows) and that
the content holds exactly that many values (or one, which TensorFlow repeats over the shape) before it converts
anything, and answers every mismatch with ``RequestError(INVALID_ARGUMENT)`` naming the input.
"""

from __future__ import annotations

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from tfctr.serving.requests import RequestError, shown

# the repeated field holding the values of each dtype when tensor_content is not used
_VALUE_FIELDS = {
    tf.float16: "half_val", tf.bfloat16: "half_val", tf.float32: "float_val", tf.float64: "double_val",
    tf.int8: "int_val", tf.int16: "int_val", tf.int32: "int_val", tf.uint8: "int_val", tf.uint16: "int_val",
    tf.int64: "int64_val", tf.uint32: "uint32_val", tf.uint64: "uint64_val", tf.bool: "bool_val",
    tf.string: "string_val",
}

# The tables below are keyed by the DataType enum (an int) a TensorProto carries: a request has one tensor per
# input (39 for a Criteo-like spec), and comparing or hashing ``tf.DType`` objects costs ≈ 2 µs each in Python.
_DTYPE_OF_ENUM = {}
for _enum in types_pb2.DataType.values():
    try:
        _DTYPE_OF_ENUM[_enum] = tf.dtypes.as_dtype(_enum)
    except (TypeError, ValueError):
        pass
_DTYPE_OF_ENUM.pop(types_pb2.DT_INVALID, None)
_FIELD_OF_ENUM = {dtype.as_datatype_enum: field for dtype, field in _VALUE_FIELDS.items()}
_STRING = types_pb2.DT_STRING
# dtypes whose 1-D tensors are read and written here directly, with the NumPy dtype of their values
# (make_tensor_proto and make_ndarray take ≈ 50 and ≈ 15 µs a tensor, ×39 inputs a request); any other dtype goes
# through TensorFlow's own conversion
_DIRECT = {dtype.as_datatype_enum: (object if dtype == tf.string else dtype.as_numpy_dtype)
           for dtype in (tf.string, tf.int64, tf.int32, tf.float32, tf.float64)}


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def declared_dtype(key: str, proto) -> tf.DType:
    """The TensorProto's dtype; INVALID_ARGUMENT when it is unset or not a TensorFlow dtype."""
    dtype = _DTYPE_OF_ENUM.get(proto.dtype)
    if dtype is None:
        if proto.dtype == types_pb2.DT_INVALID:
            raise _invalid(f"input {shown(key)}: dtype is unset (DT_INVALID)")
        raise _invalid(f"input {shown(key)}: dtype {proto.dtype} is not a TensorFlow dtype")
    return dtype


def declared_rows(key: str, proto, max_rows: int) -> int:
    """The batch size a 1-D ``[batch]`` TensorProto declares; INVALID_ARGUMENT for any other shape or beyond
    ``max_rows``."""
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise _invalid(f"input {shown(key)}: shape of unknown rank, expected [batch]")
    if len(shape.dim) != 1:
        raise _invalid(f"input {shown(key)} has shape {[d.size for d in shape.dim]}, expected [batch]")
    rows = shape.dim[0].size
    if rows < 0:
        raise _invalid(f"input {shown(key)} has a negative dimension {[rows]}")
    if rows > max_rows:
        raise _invalid(f"input {shown(key)} declares {rows} rows; this server takes at most {max_rows} rows per "
                       f"request (tfctr serve --max-rows-per-request): split the request")
    return rows


def check_content(key: str, proto, dtype: tf.DType, rows: int) -> None:
    """The values carried must fill the declared shape: ``tensor_content`` of exactly rows × itemsize bytes, or
    ``rows`` values in the dtype's repeated field (one value is repeated over the shape, as TensorFlow does)."""
    enum = dtype.as_datatype_enum
    content = len(proto.tensor_content)
    if content:
        if enum == _STRING:
            raise _invalid(f"input {shown(key)}: a string tensor cannot use tensor_content")
        expected = rows * dtype.size
        if content != expected:
            raise _invalid(f"input {shown(key)}: tensor_content has {content} bytes, but "
                           f"{rows} {dtype.name} values take {expected}")
        return
    field = _FIELD_OF_ENUM.get(enum)
    if field is None:
        raise _invalid(f"input {shown(key)}: dtype {dtype.name} is not supported in requests")
    count = len(getattr(proto, field))
    if count != rows and not (count == 1 and rows > 0) and not (count == 0 and rows == 0):
        raise _invalid(f"input {shown(key)}: {count} values in {field} for a shape of {rows} rows")


def decode_input(key: str, proto, expected: tf.DType | None, max_rows: int) -> np.ndarray:
    """The NumPy array of one request input, after every check above (``expected``: the signature's dtype, None
    for an input the signature does not have, which ``check_inputs`` reports)."""
    dtype = declared_dtype(key, proto)
    if expected is not None and dtype.as_datatype_enum != expected.as_datatype_enum:
        raise _invalid(f"input {shown(key)} has dtype {dtype.name}, expected {expected.name}")
    rows = declared_rows(key, proto, max_rows)
    check_content(key, proto, dtype, rows)
    try:
        return vector_values(proto, dtype, rows)
    except Exception as err:  # anything the checks above did not foresee is still the request's fault
        raise _invalid(f"input {shown(key)} could not be read as a {dtype.name} tensor of {rows} rows: "
                       f"{type(err).__name__}") from None


def vector_values(proto, dtype: tf.DType, rows: int) -> np.ndarray:
    """The ``[rows]`` values of a checked 1-D TensorProto (``check_content`` first), as ``tf.make_ndarray`` gives
    them: ``tensor_content`` read as the dtype, or the repeated field (one value repeated over the rows)."""
    enum = dtype.as_datatype_enum
    numpy_dtype = _DIRECT.get(enum)
    if numpy_dtype is None:
        return tf.make_ndarray(proto)
    if enum != _STRING and proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=numpy_dtype)
    values = np.array(getattr(proto, _FIELD_OF_ENUM[enum]), dtype=numpy_dtype)
    return np.repeat(values, rows) if len(values) == 1 and rows > 1 else values


def fill_vector_proto(proto, values: np.ndarray, dtype: tf.DType):
    """Writes the 1-D ``values`` in ``dtype`` into the empty TensorProto ``proto`` (e.g. ``request.inputs[name]``,
    in place, saving a copy) as ``tf.make_tensor_proto`` writes them: strings in ``string_val``, numbers as
    ``tensor_content`` (other dtypes and shapes: through it). Returns ``proto``."""
    values = np.asarray(values)
    enum = dtype.as_datatype_enum
    numpy_dtype = _DIRECT.get(enum)
    if numpy_dtype is None or values.ndim != 1:
        proto.CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
        return proto
    proto.dtype = enum
    proto.tensor_shape.dim.add(size=len(values))
    if enum == _STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in values)
    else:
        proto.tensor_content = np.ascontiguousarray(values, dtype=numpy_dtype).tobytes()
    return proto
