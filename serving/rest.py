"""TF Serving's REST API for the embedded server, on the standard library.

Every endpoint addresses ``/v1/models/NAME``, optionally ``/versions/N`` or ``/labels/LABEL`` (default: the
newest served version):

* ``GET  .../``: model status, ``{"model_version_status": [{"version", "state", "status"}]}`` (every served
  version when none is named);
* ``GET  .../metadata``: ``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}``;
* ``POST ...:predict`` with ``{"signature_name"?, "instances": [{feature: value}]}`` (row form; answer
  ``{"predictions": [{output: value}]}``) or ``{"inputs": {feature: [values]}}`` (columnar; answer
  ``{"outputs": {output: [values]}}``);
* ``POST ...:classify`` / ``:regress`` with ``{"signature_name"?, "context"?, "examples": [{feature: value}]}``
  (``serving.json_examples``); answers ``{"result": [[[class, score], ...], ...]}`` / ``{"result": [value, ...]}``.

Errors answer ``{"error": message}`` with 400 (invalid argument, including a body that is not UTF-8 JSON or is
nested too deep, or a ``Content-Length`` that is not a non-negative integer; errors raised inside the graph keep
their message), 404 (unknown model, version, label, signature or path), 408 (a body shorter than its
``Content-Length``: the read times out after ``READ_TIMEOUT_SECONDS``), 411 (no ``Content-Length``), 413 (over
``MAX_MESSAGE_BYTES``) or 500 (a server fault, named). Every request gets an answer; none closes the connection
without one. JSON is the only thing parsed.
"""

from __future__ import annotations

import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from tfctr.serving.json_examples import examples_from_json
from tfctr.serving.options import MAX_MESSAGE_BYTES
from tfctr.serving.repository import ModelRepository
from tfctr.serving.requests import (
    DEFAULT_MAX_ROWS,
    RequestError,
    check_examples,
    check_known_inputs,
    check_method,
    resolve,
    run_classify,
    run_predict,
    run_regress,
    shown,
    status_of,
)

READ_TIMEOUT_SECONDS = 10.0
_PATH = re.compile(r"^/v1/models/(?P<model>[A-Za-z0-9_.-]+)"
                   r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[A-Za-z0-9_.-]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<method>predict|classify|regress))?$")
_HTTP = {grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
         grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR}


def _typed(name: str, values, dtype: tf.DType) -> np.ndarray:
    """A JSON column in the signature's dtype (null = missing: '' for strings, NaN for floats)."""
    try:
        if dtype == tf.string:
            return np.array([(v if v is not None else "").encode() if not isinstance(v, bytes) else v
                             for v in values], dtype=object)
        if dtype.is_floating:
            return np.array([np.nan if v is None else v for v in values], dtype=dtype.as_numpy_dtype)
        return np.array(values, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError, AttributeError, OverflowError) as err:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input {shown(name)} cannot be read as {dtype.name}: "
                           f"{str(err)[:200]}") from None


def _jsonable(value: np.ndarray):
    """An output as JSON values: bytes (e.g. a classify signature's ``classes``, of any rank) as text."""
    if value.dtype != object:
        return value.tolist()
    return np.vectorize(lambda v: v.decode(errors="replace") if isinstance(v, bytes) else v,
                        otypes=[object])(value).tolist()


def predict_json(repository: ModelRepository, model: str, version: int | None, body: dict, batcher=None,
                 max_rows: int = DEFAULT_MAX_ROWS, label: str | None = None) -> dict:
    """Answers one REST predict body (row or columnar form)."""
    signature_name = _signature_name(body)
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           'the body must be a JSON object with exactly one of "instances" or "inputs"')
    loaded, signature = resolve(repository, model, version, signature_name, "serving_default", label)
    dtypes = loaded.input_dtypes[signature]
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, '"instances" must be a non-empty list of objects')
        names = set().union(*rows)
        columns = {name: [row.get(name) for row in rows] for name in names}
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, '"inputs" must be an object of columns')
    check_known_inputs(columns, signature, dtypes)
    arrays = {name: _typed(name, values if isinstance(values, list) else [values], dtypes[name])
              for name, values in columns.items()}
    outputs = {k: _jsonable(v) for k, v in run_predict(loaded, signature, arrays, batcher=batcher,
                                                       max_rows=max_rows).items()}
    if "inputs" in body:
        return {"outputs": outputs}
    return {"predictions": [dict(zip(outputs, values)) for values in zip(*outputs.values())]}


def _signature_name(body) -> str:
    if not isinstance(body, dict):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the body must be a JSON object")
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'"signature_name" must be a string, got {type(name).__name__}')
    return name


def examples_json(repository: ModelRepository, model: str, version: int | None, label: str | None, body,
                  method: str, max_rows: int = DEFAULT_MAX_ROWS) -> dict:
    """Answers one REST classify or regress body: ``{"result": ...}`` as TF Serving's."""
    loaded, signature = resolve(repository, model, version, _signature_name(body), method, label)
    check_method(loaded, signature, method)
    examples = examples_from_json(body)
    check_examples(len(examples), max_rows)
    if method == "regress":
        return {"result": run_regress(loaded, signature, examples).tolist()}
    scores, classes = run_classify(loaded, signature, examples)
    return {"result": [[[c.decode(errors="replace"), float(score)] for c, score in zip(row_classes, row_scores)]
                       for row_classes, row_scores in zip(classes, scores)]}


def status_json(repository: ModelRepository, model: str, version: int | None, label: str | None = None) -> dict:
    """The asked version's status, or every served version's."""
    loaded, _ = resolve(repository, model, version, "", "serving_default", label)
    versions = [loaded.version] if version is not None or label else repository.served_versions(model)
    return {"model_version_status": [{"version": str(v), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}
                                     for v in sorted(versions, reverse=True)]}


def metadata_json(repository: ModelRepository, model: str, version: int | None, label: str | None = None) -> dict:
    """The model's signature definitions, as TF Serving's REST metadata answer."""
    loaded, _ = resolve(repository, model, version, "", "serving_default", label)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in loaded.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(value)
    return {"model_spec": {"name": model, "signature_name": "", "version": str(loaded.version)},
            "metadata": {"signature_def": json_format.MessageToDict(signature_map,
                                                                     preserving_proto_field_name=True)}}


def _content_length(header: str | None) -> int:
    """The body length a request declares: 411 without one, 400 unless a non-negative integer, 413 when over
    ``MAX_MESSAGE_BYTES``."""
    if header is None:
        raise _HTTPError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length header")
    if not header.strip().isdigit():
        raise _HTTPError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a non-negative integer, got {shown(header)}")
    length = int(header)
    if length > MAX_MESSAGE_BYTES:
        raise _HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_MESSAGE_BYTES} bytes")
    return length


class _HTTPError(Exception):
    """A request refused at the HTTP level, with its status."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _parse_body(data: bytes):
    try:
        return json.loads(data or b"null")
    except RecursionError:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the body is JSON nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not UTF-8 JSON: {str(err)[:200]}") from None


def make_rest_server(repository: ModelRepository, port: int, host: str = "127.0.0.1", batcher=None,
                     max_rows: int = DEFAULT_MAX_ROWS, read_timeout: float = READ_TIMEOUT_SECONDS
                     ) -> ThreadingHTTPServer:
    """A started (background thread) HTTP server with TF Serving's REST predict and status endpoints; a
    connection that sends nothing for ``read_timeout`` seconds is answered (408) and closed."""

    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout  # a body shorter than its Content-Length cannot hold a thread forever

        def _answer(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, post: bool) -> tuple[str, int | None, str | None, str]:
            """(model, version, label, endpoint) of the path; endpoint is status/metadata (GET) or
            predict/classify/regress (POST)."""
            match = _PATH.match(self.path)
            endpoint = match and (match["method"] or ("metadata" if match["metadata"] else "status"))
            if not match or (endpoint in ("predict", "classify", "regress")) != post:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"no endpoint {self.command} {shown(self.path)}")
            return match["model"], int(match["version"]) if match["version"] else None, match["label"], endpoint

        def _handle(self, work):
            try:
                self._answer(HTTPStatus.OK, work())
            except _HTTPError as err:
                self._answer(err.status, {"error": str(err)})
            except Exception as err:  # every failure gets an answer with its cause (server faults: 500)
                code, message = status_of(err)
                self._answer(_HTTP.get(code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": message})

        def do_GET(self):  # noqa: N802 (http.server's naming)
            def work():
                model, version, label, endpoint = self._route(post=False)
                answer = metadata_json if endpoint == "metadata" else status_json
                return answer(repository, model, version, label)

            self._handle(work)

        def _read_body(self) -> bytes:
            length = _content_length(self.headers.get("Content-Length"))
            try:
                data = self.rfile.read(length)
            except TimeoutError:
                data = b""
            if len(data) < length:
                self.close_connection = True
                raise _HTTPError(HTTPStatus.REQUEST_TIMEOUT,
                                 f"the body ended after {len(data)} of its {length} bytes (Content-Length)")
            return data

        def do_POST(self):  # noqa: N802
            def work():
                data = self._read_body()
                model, version, label, endpoint = self._route(post=True)
                body = _parse_body(data)
                if endpoint == "predict":
                    return predict_json(repository, model, version, body, batcher, max_rows, label)
                return examples_json(repository, model, version, label, body, endpoint, max_rows)

            self._handle(work)

        def log_message(self, *args):  # requests are not logged to stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
