"""The server under malformed input: every bad gRPC or REST request gets a status and a message naming the
problem (never UNKNOWN, never a dropped connection or a hang), memory is bounded by the request, and the server
keeps answering valid requests. A real server on loopback (in this process), real sockets."""

import http.client
import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.export import export_saved_model
from tfctr.serving import ModelRepository, make_server
from tfctr.serving.rest import _jsonable, make_rest_server
from tfctr.utils import free_ports

MAX_ROWS = 1000


@pytest.fixture(scope="module")
def server(small_data, small_spec, tmp_path_factory):
    base = tmp_path_factory.mktemp("malformed")
    tf.random.set_seed(0)
    model = models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8])
    model.compile(tf.keras.optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(parquet_dataset(small_data["train"], small_spec, 1024), epochs=1, verbose=0)
    export_saved_model(model, small_spec, base, "ctr")
    repository = ModelRepository(base, ["ctr"], poll_seconds=0)
    port, rest_port = free_ports(2)
    grpc_server = make_server(repository, port, max_rows=MAX_ROWS)
    rest = make_rest_server(repository, rest_port, max_rows=MAX_ROWS, read_timeout=1.0)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield {"stub": prediction_service_pb2_grpc.PredictionServiceStub(channel), "channel": channel,
           "rest_port": rest_port, "spec": small_spec}
    channel.close()
    rest.shutdown()
    grpc_server.stop(0)
    repository.close()


def _valid_inputs(spec, rows=2):
    return {f.name: (np.array(["a"] * rows, dtype=object) if f.dtype == "string" or f.kind == "list"
                     else np.ones(rows) if f.kind == "numeric" else np.ones(rows, dtype=np.int64))
            for f in spec.features}


def _predict(spec, replace=None, name="ctr", signature=""):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
    for key, value in _valid_inputs(spec).items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    for key, proto in (replace or {}).items():
        request.inputs[key].CopyFrom(proto)
    return request


def _assert_alive(server):
    answer = server["stub"].Predict(_predict(server["spec"]), timeout=30).outputs["probability"]
    assert tf.make_ndarray(answer).shape == (2,)


def _refused(server, method, request):
    with pytest.raises(grpc.RpcError) as info:
        getattr(server["stub"], method)(request, timeout=30)
    return info.value.code(), info.value.details()


def _proto(dtype, dims, **values):
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


def _numeric(spec):
    return next(f.name for f in spec.features if f.kind == "numeric")


def _categorical_string(spec):
    return next(f.name for f in spec.features if f.dtype == "string" and f.kind != "list")


@pytest.mark.parametrize("case, message", [
    ("content_3_bytes", "tensor_content has 3 bytes, but 2 float64 values take 16"),
    ("more_strings_than_shape", "3 values in string_val for a shape of 2 rows"),
    ("dtype_unset", "dtype is unset (DT_INVALID)"),
    ("dtype_99", "dtype 99 is not a TensorFlow dtype"),
    ("dtype_1000", "dtype 1000 is not a TensorFlow dtype"),
    ("negative_dimension", "has a negative dimension [-5]"),
    ("two_dimensions", "has shape [1, 2], expected [batch]"),
    ("half_a_million_rows", "declares 500000 rows; this server takes at most 1000 rows per request"),
    ("200M_doubles", "declares 200000000 rows"),
])
def test_malformed_tensors_get_invalid_argument_naming_the_input(server, case, message):
    spec = server["spec"]
    numeric, text = _numeric(spec), _categorical_string(spec)
    bad = {
        "content_3_bytes": (numeric, _proto(types_pb2.DT_DOUBLE, [2], tensor_content=b"abc")),
        "more_strings_than_shape": (text, _proto(types_pb2.DT_STRING, [2], string_val=[b"a", b"b", b"c"])),
        "dtype_unset": (numeric, _proto(types_pb2.DT_INVALID, [2], double_val=[1.0, 2.0])),
        "dtype_99": (numeric, _proto(99, [2], double_val=[1.0, 2.0])),
        "dtype_1000": (numeric, _proto(1000, [2], double_val=[1.0, 2.0])),
        "negative_dimension": (numeric, _proto(types_pb2.DT_DOUBLE, [-5], double_val=[1.0])),
        "two_dimensions": (numeric, _proto(types_pb2.DT_DOUBLE, [1, 2], double_val=[1.0, 2.0])),
        "half_a_million_rows": (numeric, _proto(types_pb2.DT_DOUBLE, [500_000], double_val=[1.0])),
        "200M_doubles": (numeric, _proto(types_pb2.DT_DOUBLE, [200_000_000], double_val=[1.0])),
    }[case]
    start = time.perf_counter()
    code, details = _refused(server, "Predict", _predict(spec, dict([bad])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
    assert repr(bad[0]) in details  # the input is named
    assert time.perf_counter() - start < 5  # refused before anything of the declared size is allocated
    _assert_alive(server)


def _examples(*serialized):
    return {"input": {"example_list": {"examples": [tf.train.Example.FromString(s) for s in serialized]}}}


def test_signature_of_the_wrong_kind_is_refused_and_internal_ones_are_not_found(server):
    example = tf.train.Example().SerializeToString()
    for method, request_type, signature, expected in [
            ("Classify", classification_pb2.ClassificationRequest, "regress", "classify needs one"),
            ("Regress", regression_pb2.RegressionRequest, "classify", "regress needs one"),
            ("Classify", classification_pb2.ClassificationRequest, "serving_default", "classify needs one"),
            ("Regress", regression_pb2.RegressionRequest, "serving_default", "regress needs one")]:
        request = request_type(model_spec=model_pb2.ModelSpec(name="ctr", signature_name=signature),
                               **_examples(example))
        code, details = _refused(server, method, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in details, (method, signature, details)
    code, details = _refused(server, "Predict", _predict(server["spec"], signature="__saved_model_init_op"))
    assert code == grpc.StatusCode.NOT_FOUND and "signature '__saved_model_init_op' not found" in details
    _assert_alive(server)


def test_examples_with_bytes_that_are_not_utf8_are_invalid_argument(server):
    spec = server["spec"]
    example = tf.train.Example()
    example.features.feature[_numeric(spec)].bytes_list.value.append(b"\xff\xfe\x80 not utf-8")
    request = classification_pb2.ClassificationRequest(model_spec=model_pb2.ModelSpec(name="ctr"),
                                                       **_examples(example.SerializeToString()))
    code, details = _refused(server, "Classify", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    _assert_alive(server)


def test_long_names_are_cut_in_the_answer(server):
    code, details = _refused(server, "Predict", _predict(server["spec"], name="m" * 10_000))
    assert code == grpc.StatusCode.NOT_FOUND and "(10000 characters)" in details and len(details) < 400
    _assert_alive(server)


# ------------------------------------------------------------------------------------------------ REST
def _http(server, method, path, body=b"", headers=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", server["rest_port"], timeout=timeout)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload)


def _raw_http(server, data: bytes, timeout=10):
    """Sends raw bytes and returns the status line and JSON body of the answer (the server must answer)."""
    with socket.create_connection(("127.0.0.1", server["rest_port"]), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


PREDICT = "/v1/models/ctr:predict"


@pytest.mark.parametrize("body, status, message", [
    (b"\xff\xfe\x00garbage", 400, "not UTF-8 JSON"),
    (b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
    (json.dumps({"inputs": {"nope": [[1], [1, 2]]}}).encode(), 400, "unknown inputs ['nope']"),
    (None, 400, "cannot be read as float64"),  # an integer beyond any float
    (json.dumps({"signature_name": ["x"], "instances": [{}]}).encode(), 400, '"signature_name" must be a string'),
])
def test_rest_malformed_bodies_get_an_error_answer(server, body, status, message):
    if body is None:
        body = json.dumps({"inputs": {_numeric(server["spec"]): [10 ** 400, 1]}}).encode()
    got, payload = _http(server, "POST", PREDICT, body)
    assert got == status and message in payload["error"], payload


@pytest.mark.parametrize("length, status", [("abc", 400), ("1.5", 400), ("-1", 400), ("100", 408), (None, 411)])
def test_rest_bad_content_length_is_answered_in_bounded_time(server, length, status):
    header = f"Content-Length: {length}\r\n" if length is not None else ""
    start = time.perf_counter()
    got, payload = _raw_http(server, f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n{header}\r\n{{}}".encode())
    assert got == status and payload["error"]
    assert time.perf_counter() - start < 5


def test_rest_outputs_of_any_rank_are_json(server):
    classes = np.array([[b"0", b"1"], [b"0", b"1"]], dtype=object)  # the classify signature's 2-D classes
    assert _jsonable(classes) == [["0", "1"], ["0", "1"]]
    assert _jsonable(np.array([0.25, 0.5])) == [0.25, 0.5]


# ------------------------------------------------------------------------------------------------ fuzz
def _random_tensor(rng, spec):
    key = rng.choice([f.name for f in spec.features] + ["unknown", "x" * 300])
    dtype = int(rng.choice([0, 1, 2, 3, 7, 9, 10, 14, 23, 99, 1000, -1 & 0x7FFFFFFF]))
    dims = [int(d) for d in rng.integers(-3, 3_000_000, size=rng.integers(0, 3))]
    proto = _proto(dtype, dims)
    field = rng.choice(["double_val", "int64_val", "string_val", "float_val", "tensor_content", "none"])
    count = int(rng.integers(0, 5))
    if field == "tensor_content":
        proto.tensor_content = rng.bytes(count * 3)
    elif field == "string_val":
        proto.string_val.extend([rng.bytes(4) for _ in range(count)])
    elif field != "none":
        getattr(proto, field).extend([1] * count)
    return key, proto


def test_fuzzed_requests_never_get_unknown_and_never_kill_the_server(server):
    rng = np.random.default_rng(0)
    spec, stub = server["spec"], server["stub"]
    raw = server["channel"].unary_unary("/tensorflow.serving.PredictionService/Predict",
                                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    codes, start = {}, time.perf_counter()
    for i in range(1000):
        kind = i % 10
        try:
            if kind == 9:  # bytes that are (usually) not a protobuf at all
                raw(rng.bytes(int(rng.integers(1, 200))), timeout=10)
            else:
                request = _predict(spec, dict(_random_tensor(rng, spec) for _ in range(rng.integers(1, 3))),
                                   name="ctr" if rng.random() < 0.85 else str(rng.choice(["other", "é" * 500])),
                                   signature="" if rng.random() < 0.85 else
                                   str(rng.choice(["classify", "__saved_model_init_op", "x"])))
                stub.Predict(request, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as err:
            code = err.code()
            assert code != grpc.StatusCode.UNKNOWN, err.details()
            assert code != grpc.StatusCode.INTERNAL or kind == 9, err.details()
            assert err.details(), code
        codes[code] = codes.get(code, 0) + 1
    names = [f.name for f in spec.features] + ["z"]
    values = [1, "a", None, 1.5, [1], {"a": 1}, 10 ** 20, 10 ** 400, "é"]
    for i in range(300):  # REST: random bytes and random JSON
        body = rng.bytes(int(rng.integers(0, 300))) if i % 2 else json.dumps(
            {"inputs": {names[rng.integers(len(names))]: [values[rng.integers(len(values))]] * int(rng.integers(0, 4))}}
        ).encode()
        got, payload = _http(server, "POST", PREDICT, body)
        assert 400 <= got < 500 and payload["error"], (got, payload)
    assert time.perf_counter() - start < 120
    assert codes.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 500, codes
    _assert_alive(server)


def test_a_bad_request_in_a_batch_fails_alone(small_data, small_spec, tmp_path):
    """Server-side batching: a Predict on the classify signature with an example that does not parse is merged
    with valid ones; only it fails, and the valid ones get their own answers."""
    import threading

    import pyarrow.parquet as pq

    from tfctr.serving.batching import Batcher
    from tfctr.serving.client import _example
    from tfctr.serving.requests import call_signature

    tf.random.set_seed(0)
    model = models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8])
    export_saved_model(model, small_spec, tmp_path, "ctr")
    repository = ModelRepository(tmp_path, ["ctr"], poll_seconds=0)
    loaded = repository.get("ctr")
    rows = pq.read_table(small_data["valid"]).slice(0, 12).to_pylist()
    kinds = {f.name: f.kind for f in small_spec.features}
    good = [np.array([_example({k: float(v) if kinds[k] == "numeric" else v for k, v in row.items()
                                if k in kinds and v is not None}).SerializeToString()], dtype=object)
            for row in rows]
    expected = [call_signature(loaded, "classify", {"inputs": g})["scores"] for g in good]
    batcher = Batcher(max_batch_size=64, timeout_ms=200)
    answers, failures = {}, {}

    def ask(i, values):
        try:
            answers[i] = batcher.call(loaded, "classify", {"inputs": values})["scores"]
        except Exception as err:
            failures[i] = err

    garbage = np.array([b"\xff\xfe this is not a tf.Example \x80"], dtype=object)
    threads = [threading.Thread(target=ask, args=(i, g)) for i, g in enumerate(good)]
    threads.append(threading.Thread(target=ask, args=("bad", garbage)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    repository.close()
    assert list(failures) == ["bad"] and len(answers) == len(good)
    for i, scores in answers.items():
        np.testing.assert_allclose(scores, expected[i], atol=1e-6)
    assert batcher.requests == len(good) + 1


def test_versions_half_copied_removed_or_beyond_int64(small_spec, tmp_path):
    """A half-copied version is retried until it loads; a removed served version gives way to the newest
    remaining one; a version number beyond int64 is ignored."""
    import shutil

    model = models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8])
    staging = tmp_path / "staging"
    export_saved_model(model, small_spec, staging, "ctr", version=2)
    export_saved_model(model, small_spec, tmp_path / "base", "ctr", version=1)
    base = tmp_path / "base" / "ctr"
    repository = ModelRepository(tmp_path / "base", ["ctr"], poll_seconds=0)
    assert repository.get("ctr").warmup_requests == 6  # replayed before it was served
    (base / "2").mkdir()  # the copy has begun: the graph is there, the variables are not
    shutil.copy(staging / "ctr" / "2" / "saved_model.pb", base / "2" / "saved_model.pb")
    repository.refresh("ctr")
    assert repository.get("ctr").version == 1  # failed to load, still serving 1
    for item in (staging / "ctr" / "2").iterdir():  # the copy completes
        if item.is_dir():
            shutil.copytree(item, base / "2" / item.name)
    deadline = time.monotonic() + 10
    while repository.get("ctr").version != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        repository.refresh("ctr")  # retried once its back-off (0.5 s after the first failure) has passed
    assert repository.get("ctr").version == 2
    shutil.rmtree(base / "2")  # the served version is deleted: the newest remaining one is served
    repository.refresh("ctr")
    assert repository.get("ctr").version == 1
    shutil.copytree(base / "1", base / str(2 ** 63))  # a valid model under a name beyond int64
    repository.refresh("ctr")
    assert repository.get("ctr").version == 1
    repository.close()



_RETAINED_AFTER_BURST = """
import time
from pathlib import Path
import numpy as np
from tfctr.serving.memory import TRIM_AFTER_ROWS, note_rows, release_freed_memory, start_trimming

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def retained_mb(buffer_bytes, after_free=lambda: None):
    before = rss_mb()
    buffers, live = [], []
    for _ in range(400):  # request-sized buffers, each followed by a 16 KB allocation that stays (6.4 MB in all)
        buffers.append(np.ones(buffer_bytes // 8))
        live.append(np.ones(2048))
    del buffers
    after_free()
    return rss_mb() - before

assert release_freed_memory() and start_trimming(0.05) is not None
scratch = np.ones((4 << 20) // 8)  # one large free: glibc would raise its mmap threshold to 4 MB from here
del scratch
print(retained_mb(512 * 1024))  # 200 MB above the threshold: each its own mapping

def large_request_answered():
    note_rows(TRIM_AFTER_ROWS)
    time.sleep(0.5)
print(retained_mb(120 * 1024, large_request_answered))  # 47 MB inside the heap: trimmed after the request
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
                    reason="measures glibc's heaps through /proc")
def test_freed_request_memory_goes_back_to_the_system():
    # what `tfctr serve` sets up: without it each pattern leaves its buffers resident after they are freed
    out = subprocess.run([sys.executable, "-c", _RETAINED_AFTER_BURST], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    above_threshold, inside_heap = map(float, out.stdout.strip().splitlines()[-2:])
    assert above_threshold < 20 and inside_heap < 20, f"{above_threshold:.1f} / {inside_heap:.1f} MB still resident"


@pytest.mark.parametrize("dtype, values", [
    (tf.string, np.array([b"a", b"", "é".encode(), b"\xff"], dtype=object)),
    (tf.int64, np.array([-(2**63), 0, 7, 2**63 - 1])), (tf.int32, np.array([-3, 0, 5], dtype=np.int32)),
    (tf.float32, np.array([np.nan, -0.0, 1e-38, 3.5], dtype=np.float32)),
    (tf.float64, np.array([np.nan, np.inf, 0.1, -1e300])), (tf.bool, np.array([True, False])),
])
def test_direct_tensor_conversion_equals_tensorflows(dtype, values):
    from tfctr.serving.packed_call import PackedSignature
    from tfctr.serving.tensors import _VALUE_FIELDS, fill_vector_proto, vector_values

    proto = fill_vector_proto(tensor_pb2.TensorProto(), values, dtype)
    assert proto.SerializeToString() == tf.make_tensor_proto(values, dtype=dtype).SerializeToString()
    np.testing.assert_array_equal(vector_values(proto, dtype, len(values)), tf.make_ndarray(proto))
    one = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=3)]))  # one value, repeated over the shape
    getattr(one, _VALUE_FIELDS[dtype]).extend(values[:1].tolist())
    np.testing.assert_array_equal(vector_values(one, dtype, 3), tf.make_ndarray(one))
    # inputs of one dtype are converted together (one [3, B] stack) and split in the graph: the same values
    arrays = {"a": values, "b": values[::-1].copy(), "c": values}
    packed = PackedSignature(lambda **inputs: inputs, {k: dtype for k in arrays})
    together = packed(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(together[key].numpy(), tf.constant(value, dtype=dtype).numpy())

