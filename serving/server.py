"""An embedded, TF-Serving-compatible gRPC server: ``PredictionService`` (Predict, Classify, Regress,
GetModelMetadata) and ``ModelService`` (GetModelStatus), on the stubs generated in ``tensorflow-serving-api``,
optionally with TF Serving's REST predict API beside it (``tfctr.serving.rest``).

It serves the SavedModels that ``tfctr export`` writes (and real TF Serving loads unchanged): the latest version
of each configured name, picking up new versions as they appear. Requests are validated against the signature
(names, dtypes, declared shapes against the values carried, a row limit, the signature's method) before any value
is decoded, and answered with INVALID_ARGUMENT or NOT_FOUND naming the problem; any other failure is INTERNAL
with its cause, never UNKNOWN. It binds
127.0.0.1 unless told otherwise and limits gRPC messages to ``MAX_MESSAGE_BYTES`` both ways.
"""

from __future__ import annotations

import signal
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfctr.serving.options import GRPC_OPTIONS
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
    status_of,
)
from tfctr.serving.tensors import decode_input, fill_vector_proto

# the longest error message sent back (gRPC clients refuse metadata beyond a few kB)
MAX_ERROR_CHARS = 2000


def _version_of(model_spec) -> tuple[int | None, str | None]:
    """The version number or the version label a ModelSpec asks for (neither: the newest served)."""
    choice = model_spec.WhichOneof("version_choice")
    if choice == "version":
        return model_spec.version.value, None
    if choice == "version_label":
        return None, model_spec.version_label
    return None, None


class _Handler:
    def __init__(self, repository: ModelRepository):
        self.repository = repository

    def resolve(self, model_spec, default_signature: str):
        version, label = _version_of(model_spec)
        return resolve(self.repository, model_spec.name, version, model_spec.signature_name, default_signature,
                       label)

    def spec_of(self, loaded, version_spec: model_pb2.ModelSpec, name: str) -> model_pb2.ModelSpec:
        return model_pb2.ModelSpec(name=version_spec.name, signature_name=name,
                                   version={"value": loaded.version})


def _call(handler_fn):
    def method(self, request, context):
        try:
            return handler_fn(self, request)
        except Exception as err:  # every failure is answered with a status and a message
            code, message = status_of(err)
            context.abort(code, message[:MAX_ERROR_CHARS])
    return method


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService over a ModelRepository."""

    def __init__(self, repository: ModelRepository, batcher=None, max_rows: int = DEFAULT_MAX_ROWS):
        self.handler = _Handler(repository)
        self.batcher = batcher
        self.max_rows = max_rows

    @_call
    def Predict(self, request):
        loaded, name = self.handler.resolve(request.model_spec, "serving_default")
        dtypes = loaded.input_dtypes[name]
        check_known_inputs(request.inputs, name, dtypes)  # named before any value is decoded
        arrays = {key: decode_input(key, proto, dtypes[key], self.max_rows) for key, proto in request.inputs.items()}
        outputs = run_predict(loaded, name, arrays, request.output_filter, self.batcher, self.max_rows)
        response = predict_pb2.PredictResponse(model_spec=self.handler.spec_of(loaded, request.model_spec, name))
        for key, value in outputs.items():
            fill_vector_proto(response.outputs[key], value, tf.as_dtype(value.dtype))
        return response

    def _examples(self, request) -> list[bytes]:
        which = request.input.WhichOneof("kind")
        if which == "example_list":
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
        elif which == "example_list_with_context":
            context = request.input.example_list_with_context.context
            examples = []
            for e in request.input.example_list_with_context.examples:
                merged = tf.train.Example()
                merged.CopyFrom(context)
                merged.MergeFrom(e)
                examples.append(merged.SerializeToString())
        else:
            examples = []
        check_examples(len(examples), self.max_rows)
        return examples

    @_call
    def Classify(self, request):
        loaded, name = self.handler.resolve(request.model_spec, "classify")
        check_method(loaded, name, "classify")
        scores, classes = run_classify(loaded, name, self._examples(request))
        response = classification_pb2.ClassificationResponse(
            model_spec=self.handler.spec_of(loaded, request.model_spec, name))
        for row_scores, row_classes in zip(scores, classes):
            result = response.result.classifications.add()
            for label, score in zip(row_classes, row_scores):
                result.classes.add(label=label.decode(), score=float(score))
        return response

    @_call
    def Regress(self, request):
        loaded, name = self.handler.resolve(request.model_spec, "regress")
        check_method(loaded, name, "regress")
        values = run_regress(loaded, name, self._examples(request))
        response = regression_pb2.RegressionResponse(model_spec=self.handler.spec_of(loaded, request.model_spec, name))
        for value in values:
            response.result.regressions.add(value=float(value))
        return response

    @_call
    def GetModelMetadata(self, request):
        fields = list(request.metadata_field) or ["signature_def"]
        if fields != ["signature_def"]:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"metadata_field must be ['signature_def'], got {fields}")
        loaded, _ = self.handler.resolve(request.model_spec, "serving_default")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in loaded.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model_pb2.ModelSpec(name=request.model_spec.name, version={"value": loaded.version}))
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's ModelService: the status of the served version."""

    def __init__(self, repository: ModelRepository):
        self.handler = _Handler(repository)

    @_call
    def GetModelStatus(self, request):
        """The asked version's status, or (no version or label asked) every served version's."""
        loaded, _ = self.handler.resolve(request.model_spec, "serving_default")
        asked = _version_of(request.model_spec) != (None, None)
        versions = [loaded.version] if asked else self.handler.repository.served_versions(request.model_spec.name)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add(version=version,
                                                       state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            status.status.error_code = 0
        return response


def make_server(repository: ModelRepository, port: int, host: str = "127.0.0.1", workers: int = 32,
                batcher=None, max_rows: int = DEFAULT_MAX_ROWS) -> grpc.Server:
    """A started gRPC server on ``host:port`` serving ``repository`` (Predict through ``batcher`` when given;
    at most ``max_rows`` rows per request)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=GRPC_OPTIONS)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(repository, batcher, max_rows), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    return server


def serve(model_base_path=None, model_names=(), port: int = 8500, host: str = "127.0.0.1",
          poll_seconds: float = 1.0, rest_port: int = 0, enable_batching: bool = False, max_batch_size: int = 256,
          batch_timeout_ms: float = 2.0, max_rows: int = DEFAULT_MAX_ROWS, model_config_file=None):
    """Serves gRPC on ``port`` (and TF Serving's REST API on ``rest_port`` unless 0) until SIGTERM or SIGINT, then
    stops cleanly (requests in flight get 5 seconds to finish). The models: the latest version of each of
    ``model_names`` under ``model_base_path``, or those of a TF Serving ``model_config_file`` (version policies
    and labels, ``serving.model_config``). With ``enable_batching`` concurrent Predict requests are merged
    (``tfctr.serving.batching``). A request of more than ``max_rows`` rows is refused (INVALID_ARGUMENT) before
    its values are decoded."""
    from tfctr.serving.batching import Batcher
    from tfctr.serving.memory import release_freed_memory, start_trimming
    from tfctr.serving.model_config import read_model_config_file
    from tfctr.serving.rest import make_rest_server

    if (model_config_file is None) == (model_base_path is None or not model_names):
        raise ValueError("serve: give --model-config-file, or --model-base-path with --model-name (not both)")
    configs = read_model_config_file(model_config_file) if model_config_file else None
    if not release_freed_memory() or start_trimming() is None:
        print("tfctr serve: not glibc; freed request memory stays with the C library's allocator", flush=True)
    repository = ModelRepository(model_base_path, model_names, poll_seconds, configs=configs)
    model_names = repository.names
    batcher = Batcher(max_batch_size, batch_timeout_ms) if enable_batching else None
    server = make_server(repository, port, host, batcher=batcher, max_rows=max_rows)
    rest = make_rest_server(repository, rest_port, host, batcher, max_rows) if rest_port else None
    stopped = threading.Event()

    def stop(*_):
        if rest is not None:
            rest.shutdown()
        server.stop(grace=5).wait()
        repository.close()
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = f"{host}:{port}" + (f", REST on {host}:{rest_port}" if rest else "")
    print(f"tfctr serve: {model_names} from {model_config_file or model_base_path} on {where}", flush=True)
    stopped.wait()
