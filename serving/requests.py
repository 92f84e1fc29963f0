"""Request handling shared by the gRPC and REST front ends: model/signature resolution and Predict."""

from __future__ import annotations

import grpc
import numpy as np
import tensorflow as tf

from tfctr.serving.memory import note_rows
from tfctr.serving.repository import LoadedVersion, ModelRepository

# echoed request strings (model, signature, input names) are cut to this many characters: a client's metadata
# limit must hold the whole error message
ECHO_LIMIT = 100
# rows one request may carry unless the server is told otherwise
DEFAULT_MAX_ROWS = 65_536


def shown(text) -> str:
    """A request-supplied string quoted for an error message, cut to ``ECHO_LIMIT`` characters."""
    text = str(text)
    return repr(text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + f"… ({len(text)} characters)")


class RequestError(Exception):
    """A request the server refuses, with the gRPC status code to answer (REST maps it to an HTTP status)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def graph_error(message: str) -> str:
    """The informative part of a TensorFlow op error (e.g. which tf.Example key has which wrong type)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "[[", "<"))]
    text = useful[0] if useful else (lines[0] if lines else "invalid argument")
    return text.split("}} ", 1)[-1]  # drop the "{{function_node ...}}" prefix


def resolve(repository: ModelRepository, model: str, version: int | None, signature: str,
            default_signature: str, label: str | None = None) -> tuple[LoadedVersion, str]:
    """The loaded version (by number, by version ``label``, or the newest served) and the signature name a
    request addresses, or NOT_FOUND naming what is served."""
    served = repository.names
    if model not in served:
        raise RequestError(grpc.StatusCode.NOT_FOUND,
                           f"model {shown(model)} is not served here; served models are {served}")
    if label:
        labels = repository.labels(model)
        if label not in labels:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"model {shown(model)} has no version label "
                               f"{shown(label)}; its labels are {sorted(labels)}")
        version = labels[label]
    try:
        loaded = repository.get(model, version)
    except KeyError:
        via = f" (label {shown(label)})" if label else ""
        raise RequestError(grpc.StatusCode.NOT_FOUND, f"version {version}{via} of model {shown(model)} is not "
                           f"loaded; the served versions are {repository.served_versions(model)}") from None
    name = signature or default_signature
    if name not in loaded.signature_defs:
        raise RequestError(grpc.StatusCode.NOT_FOUND, f"signature {shown(name)} not found in model {shown(model)}; "
                           f"it has {sorted(loaded.signature_defs)}")
    return loaded, name


def check_method(loaded: LoadedVersion, signature: str, method: str) -> None:
    """Classify and Regress need a signature of their kind (TF Serving's check): INVALID_ARGUMENT otherwise."""
    actual = loaded.signature_defs[signature].method_name
    if actual != f"tensorflow/serving/{method}":
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"signature {shown(signature)} is a {actual or 'signature without method'}; "
                           f"{method} needs one with method_name tensorflow/serving/{method}")


def check_known_inputs(names, signature: str, expected) -> None:
    """INVALID_ARGUMENT naming (at most ten of) the ``names`` the signature does not take, before any value of
    them is converted."""
    unknown = sorted(set(names) - set(expected))
    if unknown:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"unknown inputs [{', '.join(shown(k) for k in unknown[:10])}]"
                           f"{' and more' if len(unknown) > 10 else ''}; signature {shown(signature)} takes "
                           f"{sorted(expected)}")


def check_inputs(loaded: LoadedVersion, signature: str, arrays: dict, max_rows: int = DEFAULT_MAX_ROWS) -> int:
    """Checks input names, shapes and the row limit against the signature; returns the batch size."""
    expected = set(loaded.signature_defs[signature].inputs)
    given = set(arrays)
    if expected - given:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"missing inputs {sorted(expected - given)} for signature {shown(signature)}")
    check_known_inputs(given, signature, expected)
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
    if common > max_rows:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the request has {common} rows; this server takes at most {max_rows} rows per request")
    return common


def call_signature(loaded: LoadedVersion, signature: str, arrays: dict) -> dict[str, np.ndarray]:
    """Runs a signature on checked inputs (already in the signature's dtypes); every output as NumPy. A signature
    of ``[batch]`` inputs is called packed (``tfctr.serving.packed_call``), any other with keywords."""
    packed = loaded.packed.get(signature)
    if packed is not None:
        outputs = packed(arrays)
    else:
        dtypes = loaded.input_dtypes[signature]
        outputs = loaded.signatures[signature](**{k: tf.constant(v, dtype=dtypes[k]) for k, v in arrays.items()})
    note_rows(len(next(iter(arrays.values()))))
    return {key: value.numpy() for key, value in outputs.items()}


def select_outputs(outputs: dict, output_filter=()) -> dict:
    wanted = list(output_filter) or list(outputs)
    unknown = [o for o in wanted if o not in outputs]
    if unknown:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"output_filter names unknown outputs [{', '.join(shown(o) for o in unknown[:10])}]; "
                           f"the outputs are {sorted(outputs)}")
    return {key: outputs[key] for key in wanted}


def run_predict(loaded: LoadedVersion, signature: str, arrays: dict, output_filter=(), batcher=None,
                max_rows: int = DEFAULT_MAX_ROWS) -> dict:
    """Checks the inputs, runs the signature (through ``batcher`` when given, merged with concurrent requests)
    and returns the wanted outputs. ``arrays`` must already have the signature's dtypes."""
    check_inputs(loaded, signature, arrays, max_rows)
    outputs = batcher.call(loaded, signature, arrays) if batcher is not None else \
        call_signature(loaded, signature, arrays)
    return select_outputs(outputs, output_filter)


def check_examples(count: int, max_rows: int = DEFAULT_MAX_ROWS) -> None:
    """A Classify/Regress request carries between 1 and ``max_rows`` examples."""
    if count == 0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the request carries no examples")
    if count > max_rows:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the request has {count} examples; this server takes at most {max_rows} rows per request")


def run_classify(loaded: LoadedVersion, signature: str, examples: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[B, C]`` and class labels ``[B, C]`` (bytes) of serialized tf.Examples, on a classify signature
    (``check_method`` first)."""
    outputs = loaded.signatures[signature](inputs=tf.constant(examples, dtype=tf.string))
    note_rows(len(examples))
    return outputs["scores"].numpy(), outputs["classes"].numpy()


def run_regress(loaded: LoadedVersion, signature: str, examples: list[bytes]) -> np.ndarray:
    """One value per serialized tf.Example ``[B]``, on a regress signature (``check_method`` first)."""
    outputs = loaded.signatures[signature](inputs=tf.constant(examples, dtype=tf.string))
    note_rows(len(examples))
    return np.asarray(outputs["outputs"].numpy()).reshape(-1)


def status_of(err: Exception) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message that answer an exception raised while handling a request (REST maps the
    status to HTTP): the request's own faults are INVALID_ARGUMENT or NOT_FOUND; anything else is INTERNAL with
    its type named (never UNKNOWN)."""
    if isinstance(err, RequestError):
        return err.code, str(err)
    if isinstance(err, tf.errors.InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT, graph_error(err.message)
    if isinstance(err, UnicodeDecodeError):  # a graph error quoting request bytes that are not UTF-8
        return grpc.StatusCode.INVALID_ARGUMENT, ("the request holds bytes that are not valid UTF-8 where the model "
                                                  "reads text (e.g. a serialized tf.Example that does not parse)")
    if isinstance(err, tf.errors.OpError):
        return grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {graph_error(err.message)}"
    tf.get_logger().exception("request failed")
    return grpc.StatusCode.INTERNAL, f"internal error ({type(err).__name__}): {err}"
