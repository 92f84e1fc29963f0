"""TF Serving's REST API for the embedded server (predict and model status), on the standard library.

* ``POST /v1/models/NAME[/versions/N]:predict`` with ``{"signature_name"?, "instances": [{feature: value}]}``
  (row form; answer ``{"predictions": [{output: value}]}``) or ``{"inputs": {feature: [values]}}`` (columnar;
  answer ``{"outputs": {output: [values]}}``).
* ``GET /v1/models/NAME[/versions/N]``: ``{"model_version_status": [{"version", "state", "status"}]}``.

Errors answer ``{"error": message}`` with 400 (invalid argument) or 404 (unknown model, version, signature or
path). Bodies larger than ``MAX_MESSAGE_BYTES`` are refused with 413; JSON is the only thing parsed.
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
from tfctr.serving.requests import RequestError, input_dtypes, resolve, run_predict

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
    except (TypeError, ValueError, AttributeError) as err:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input '{name}' cannot be read as {dtype.name}: {err}") from None


def _jsonable(value: np.ndarray):
    return value.tolist() if value.dtype != object else [v.decode() for v in value]


def predict_json(repository: ModelRepository, model: str, version: int | None, body: dict, batcher=None) -> dict:
    """Answers one REST predict body (row or columnar form)."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           'the body must be a JSON object with exactly one of "instances" or "inputs"')
    loaded, signature = resolve(repository, model, version, body.get("signature_name", ""), "serving_default")
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
    arrays = {name: _typed(name, values if isinstance(values, list) else [values], dtypes[name])
              if name in dtypes else np.asarray(values) for name, values in columns.items()}
    outputs = {k: _jsonable(v) for k, v in run_predict(loaded, signature, arrays, batcher=batcher).items()}
    if "inputs" in body:
        return {"outputs": outputs}
    return {"predictions": [dict(zip(outputs, values)) for values in zip(*outputs.values())]}


def status_json(repository: ModelRepository, model: str, version: int | None) -> dict:
    loaded, _ = resolve(repository, model, version, "", "serving_default")
    return {"model_version_status": [{"version": str(loaded.version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def make_rest_server(repository: ModelRepository, port: int, host: str = "127.0.0.1",
                     batcher=None) -> ThreadingHTTPServer:
    """A started (background thread) HTTP server with TF Serving's REST predict and status endpoints."""

    class Handler(BaseHTTPRequestHandler):
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
            except RequestError as err:
                self._answer(_HTTP.get(err.code, HTTPStatus.BAD_REQUEST), {"error": str(err)})
            except tf.errors.InvalidArgumentError as err:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": err.message.splitlines()[0]})

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._handle(lambda: status_json(repository, *self._route(want_predict=False)))

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_MESSAGE_BYTES:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_MESSAGE_BYTES} bytes"})
                return

            def work():
                model, version = self._route(want_predict=True)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except json.JSONDecodeError as err:
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not JSON: {err}") from None
                return predict_json(repository, model, version, body, batcher)

            self._handle(work)

        def log_message(self, *args):  # requests are not logged to stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
