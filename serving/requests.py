"""Request handling shared by the gRPC and REST front ends: model/signature resolution and Predict."""

from __future__ import annotations

import grpc
import numpy as np
import tensorflow as tf

from tfctr.serving.repository import LoadedVersion, ModelRepository


class RequestError(Exception):
    """A request the server refuses, with the gRPC status code to answer (REST maps it to an HTTP status)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def resolve(repository: ModelRepository, model: str, version: int | None, signature: str,
            default_signature: str) -> tuple[LoadedVersion, str]:
    """The loaded version and signature name a request addresses, or NOT_FOUND naming what is served."""
    try:
        loaded = repository.get(model, version)
    except KeyError as err:
        raise RequestError(grpc.StatusCode.NOT_FOUND, str(err.args[0])) from None
    name = signature or default_signature
    if name not in loaded.signature_defs:
        raise RequestError(grpc.StatusCode.NOT_FOUND,
                           f"signature '{name}' not found in model '{model}'; it has {sorted(loaded.signature_defs)}")
    return loaded, name


def input_dtypes(loaded: LoadedVersion, signature: str) -> dict[str, tf.DType]:
    return {k: tf.dtypes.as_dtype(v.dtype) for k, v in loaded.signature_defs[signature].inputs.items()}


def check_inputs(loaded: LoadedVersion, signature: str, arrays: dict) -> int:
    """Checks input names and shapes against the signature; returns the batch size."""
    expected = set(loaded.signature_defs[signature].inputs)
    given = set(arrays)
    if expected - given:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"missing inputs {sorted(expected - given)} for signature '{signature}'")
    if given - expected:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"unknown inputs {sorted(given - expected)}; signature '{signature}' takes "
                           f"{sorted(expected)}")
    for key, value in arrays.items():
        if value.ndim != 1:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{key}' has shape {list(value.shape)}, expected [batch]")
    sizes = {key: int(value.shape[0]) for key, value in arrays.items()}
    common = max(set(sizes.values()), key=list(sizes.values()).count)
    odd = sorted(key for key, size in sizes.items() if size != common)
    if odd:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"inputs {odd} have batch size {sorted({sizes[k] for k in odd})}, the others {common}")
    return common


def call_signature(loaded: LoadedVersion, signature: str, arrays: dict) -> dict[str, np.ndarray]:
    """Runs a signature on checked inputs (already in the signature's dtypes); every output as NumPy."""
    dtypes = input_dtypes(loaded, signature)
    outputs = loaded.signatures[signature](**{k: tf.constant(v, dtype=dtypes[k]) for k, v in arrays.items()})
    return {key: value.numpy() for key, value in outputs.items()}


def select_outputs(outputs: dict, output_filter=()) -> dict:
    wanted = list(output_filter) or list(outputs)
    unknown = [o for o in wanted if o not in outputs]
    if unknown:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
    return {key: outputs[key] for key in wanted}


def run_predict(loaded: LoadedVersion, signature: str, arrays: dict, output_filter=(), batcher=None) -> dict:
    """Checks the inputs, runs the signature (through ``batcher`` when given, merged with concurrent requests)
    and returns the wanted outputs. ``arrays`` must already have the signature's dtypes."""
    check_inputs(loaded, signature, arrays)
    outputs = batcher.call(loaded, signature, arrays) if batcher is not None else \
        call_signature(loaded, signature, arrays)
    return select_outputs(outputs, output_filter)
