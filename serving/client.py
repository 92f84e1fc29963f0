"""A gRPC client for TF Serving's PredictionService and ModelService, for ``tfctr serve`` and real TF Serving.

It uses only the public API: request dtypes come from the served signature (GetModelMetadata), so the same
client talks to both servers unchanged. Calls have a deadline and are retried on UNAVAILABLE with backoff.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfctr.serving.options import GRPC_OPTIONS
from tfctr.serving.tensors import fill_vector_proto

_STRING = types_pb2.DT_STRING


def _columns(rows) -> dict:
    """Rows as columns: a dict of sequences, a list of dicts, a pandas DataFrame or an Arrow table/batch."""
    if isinstance(rows, dict):
        return {k: list(v) if not isinstance(v, np.ndarray) else v for k, v in rows.items()}
    if hasattr(rows, "column_names") and hasattr(rows, "column"):  # pyarrow Table / RecordBatch
        return {name: rows.column(name).to_pylist() for name in rows.column_names}
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        return {name: rows[name].tolist() for name in rows.columns}
    rows = list(rows)
    return {key: [row.get(key) for row in rows] for key in (rows[0] if rows else {})}


def _as_dtype(values, dtype: tf.DType, name: str, separator: str) -> np.ndarray:
    """One column in the served dtype; None is the missing value ('' for strings, NaN for floats)."""
    if dtype.as_datatype_enum == _STRING:
        out = []
        for v in values:
            if v is None:
                v = ""
            elif isinstance(v, (list, tuple, np.ndarray)):  # a list feature: tokens joined
                v = separator.join(str(t) for t in v)
            out.append(v.encode() if isinstance(v, str) else bytes(v))
        return np.array(out, dtype=object)
    if dtype.is_floating:
        return np.array([np.nan if v is None else v for v in values], dtype=dtype.as_numpy_dtype)
    if any(v is None for v in values):
        raise ValueError(f"column '{name}' has missing values but the server expects {dtype.name}")
    return np.asarray(values, dtype=dtype.as_numpy_dtype)


def _example(row: dict) -> tf.train.Example:
    features = {}
    for key, value in row.items():
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
        if all(isinstance(v, (bytes, str)) for v in values):
            features[key] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[v.encode() if isinstance(v, str) else v for v in values]))
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            features[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        else:
            features[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=features))


class Client:
    """``Client(host, port, model_name)``: ``predict``, ``classify``, ``regress``, ``metadata``, ``status``.

    Args:
        host, port: the server (``tfctr serve`` or TF Serving's gRPC port).
        model_name: the served model.
        timeout: deadline of each call in seconds.
        retries: extra attempts on UNAVAILABLE (exponential backoff from 0.1 s).
        list_separator: separator used to join list values into the string a list feature is served as.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8500, model_name: str = "model", timeout: float = 10.0,
                 retries: int = 3, list_separator: str = "|"):
        self.model_name = model_name
        self.timeout = timeout
        self.retries = retries
        self.list_separator = list_separator
        self.channel = grpc.insecure_channel(f"{host}:{port}", options=GRPC_OPTIONS)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._signatures = None

    def _call(self, method, request):
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(0.1 * 2**attempt)

    def _spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        return model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)

    def metadata(self) -> dict:
        """``{signature: {"method": ..., "inputs": {name: tf.DType}, "outputs": {name: tf.DType}}}``."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=self._spec(),
                                                                  metadata_field=["signature_def"])
        response = self._call(self._predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {name: {"method": sig.method_name,
                       "inputs": {k: tf.dtypes.as_dtype(v.dtype) for k, v in sig.inputs.items()},
                       "outputs": {k: tf.dtypes.as_dtype(v.dtype) for k, v in sig.outputs.items()}}
                for name, sig in signature_map.signature_def.items() if not name.startswith("__")}

    def wait_until_available(self, timeout: float = 120.0, process=None) -> list[tuple[int, str]]:
        """Polls GetModelStatus until the model answers (returns its status) or ``timeout`` seconds pass; stops
        early with RuntimeError when ``process`` (a server ``subprocess.Popen``) has exited."""
        deadline = time.time() + timeout
        while True:
            try:
                return self.status()
            except grpc.RpcError as err:
                if time.time() > deadline or (process is not None and process.poll() is not None):
                    raise RuntimeError(f"model '{self.model_name}' did not become available: {err.code()}") from None
                time.sleep(0.5)

    def status(self) -> list[tuple[int, str]]:
        """``[(version, state name)]`` of the served versions."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._spec())
        response = self._call(self._models.GetModelStatus, request)
        return [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
                for s in response.model_version_status]

    def predict(self, rows, signature_name: str = "serving_default") -> dict[str, np.ndarray]:
        """Predictions for rows (dict of columns, list of dicts, DataFrame, Arrow): ``{output name: array}``."""
        if self._signatures is None:
            self._signatures = self.metadata()
        if signature_name not in self._signatures:
            raise KeyError(f"model '{self.model_name}' has no signature '{signature_name}'")
        columns = _columns(rows)
        request = predict_pb2.PredictRequest(model_spec=self._spec(signature_name))
        for name, dtype in self._signatures[signature_name]["inputs"].items():
            if name not in columns:
                raise KeyError(f"rows lack the served input '{name}'")
            values = _as_dtype(columns[name], dtype, name, self.list_separator)
            fill_vector_proto(request.inputs[name], values, dtype)
        response = self._call(self._predictions.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def _input(self, examples) -> input_pb2.Input:
        protos = [e if isinstance(e, tf.train.Example) else _example(e) for e in examples]
        return input_pb2.Input(example_list=input_pb2.ExampleList(examples=protos))

    def classify(self, examples) -> np.ndarray:
        """Scores ``[B, n_classes]`` (classes in the server's order, here P(0), P(1)) for tf.Example protos or
        dict rows. Dict rows become Examples by Python type: str/bytes -> bytes_list, int -> int64_list,
        float -> float_list (so numeric features must be floats), None -> absent (missing)."""
        request = classification_pb2.ClassificationRequest(model_spec=self._spec("classify"),
                                                           input=self._input(examples))
        response = self._call(self._predictions.Classify, request)
        return np.array([[c.score for c in result.classes] for result in response.result.classifications])

    def regress(self, examples) -> np.ndarray:
        """Regression outputs ``[B]`` (the click probability) for tf.Example protos or dict rows."""
        request = regression_pb2.RegressionRequest(model_spec=self._spec("regress"), input=self._input(examples))
        response = self._call(self._predictions.Regress, request)
        return np.array([r.value for r in response.result.regressions])

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
