"""TF Serving's REST API for the embedded server (predict and model status), on the standard library.

* ``POST /v1/models/NAME[/versions/N]:predict`` with ``{"signature_name"?, "instances": [{feature: value}]}``
  (row form; answer ``{"predictions": [{output: value}]}``) or ``{"inputs": {feature: [values]}}`` (columnar;
  answer ``{"outputs": {output: [values]}}``).
* ``GET /v1/models/NAME[/versions/N]``: ``{"model_version_status": [{"version", "state", "status"}]}``.

Errors answer ``{"error": message}`` with 400 (invalid argument, including a body that is not UTF-8 JSON or is
nested too deep, or a ``Content-Length`` that is not a non-negative integer), 404 (unknown model, version,
signature or path), 408 (a body shorter than its ``Content-Length``: the read times out after
``READ_TIMEOUT_SECONDS``), 411 (no ``Content-Length``), 413 (over ``MAX_MESSAGE_BYTES``) or 500 (a server fault,
named). Every request gets an answer; none closes the connection without one. JSON is the only thing parsed.
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

from tfctr.serving.options import MAX_MESSAGE_BYTES
from tfctr.serving.repository import ModelRepository
from tfctr.serving.requests import (
    DEFAULT_MAX_ROWS,
    RequestError,
    check_known_inputs,
    graph_error,
    input_dtypes,
    resolve,
    run_predict,
    shown,
)

READ_TIMEOUT_SECONDS = 10.0
_PATH = re.compile(r"^/v1/models/([A-Za-z0-9_.-]+)(?:/versions/(\d+))?(:predict)?$")
_HTTP = {grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST}


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
                 max_rows: int = DEFAULT_MAX_ROWS) -> dict:
    """Answers one REST predict body (row or columnar form)."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           'the body must be a JSON object with exactly one of "instances" or "inputs"')
    signature_name = body.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'"signature_name" must be a string, got {type(signature_name).__name__}')
    loaded, signature = resolve(repository, model, version, signature_name, "serving_default")
    dtypes = input_dtypes(loaded, signature)
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


def status_json(repository: ModelRepository, model: str, version: int | None) -> dict:
    loaded, _ = resolve(repository, model, version, "", "serving_default")
    return {"model_version_status": [{"version": str(loaded.version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


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

        def _route(self, want_predict: bool):
            match = _PATH.match(self.path)
            if not match or bool(match.group(3)) != want_predict:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"no endpoint {self.command} {self.path}")
            return match.group(1), (int(match.group(2)) if match.group(2) else None)

        def _handle(self, work):
            try:
                self._answer(HTTPStatus.OK, work())
            except _HTTPError as err:
                self._answer(err.status, {"error": str(err)})
            except RequestError as err:
                self._answer(_HTTP.get(err.code, HTTPStatus.BAD_REQUEST), {"error": str(err)})
            except tf.errors.InvalidArgumentError as err:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": graph_error(err.message)})
            except Exception as err:  # a server fault still gets an answer, with its cause
                tf.get_logger().exception("REST request failed")
                self._answer(HTTPStatus.INTERNAL_SERVER_ERROR,
                             {"error": f"internal error ({type(err).__name__}): {str(err)[:500]}"})

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._handle(lambda: status_json(repository, *self._route(want_predict=False)))

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
                model, version = self._route(want_predict=True)
                return predict_json(repository, model, version, _parse_body(data), batcher, max_rows)

            self._handle(work)

        def log_message(self, *args):  # requests are not logged to stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
