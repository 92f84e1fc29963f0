"""The embedded TF-Serving-compatible server, as a real process on 127.0.0.1, and its client."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.export import export_saved_model
from tfctr.serving import Client
from tfctr.training.train import predict_split
from tfctr.utils import free_ports

TFCTR = Path(sys.executable).parent / "tfctr"
ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _trained(spec, data, seed):
    tf.random.set_seed(seed)
    model = models.build("wdl", spec, embedding_dim=4, hidden_units=[16])
    model.compile(tf.keras.optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(parquet_dataset(data["train"], spec, 1024), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def served(small_data, small_spec, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    model = _trained(small_spec, small_data, 0)
    export_saved_model(model, small_spec, base, "ctr")
    port, rest_port = free_ports(2)
    process = subprocess.Popen([str(TFCTR), "serve", "--model-base-path", str(base), "--model-name", "ctr",
                                "--port", str(port), "--rest-port", str(rest_port), "--poll-seconds", "0.2"], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = Client("127.0.0.1", port, "ctr", timeout=30, retries=0)
    try:
        client.wait_until_available(process=process)
    except RuntimeError:
        process.kill()
        raise RuntimeError(f"server did not start: {process.stderr.read()[-3000:]}") from None
    yield {"base": base, "port": port, "rest_port": rest_port, "model": model, "client": client, "process": process}
    client.close()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_predict_equals_in_process(served, small_data, small_spec):
    rows = pq.read_table(small_data["valid"]).slice(0, 300)
    outputs = served["client"].predict(rows)
    expected = predict_split(served["model"], small_data["valid"], small_spec)[:300]
    np.testing.assert_allclose(outputs["probability"], expected, atol=1e-6)
    assert set(outputs) == {"probability", "logit"}


def test_classify_regress_metadata_status(served, small_data, small_spec):
    client = served["client"]
    rows = pq.read_table(small_data["valid"]).slice(0, 20).to_pylist()
    numeric = {f.name for f in small_spec.features if f.kind == "numeric"}
    for row in rows:  # numerics travel as float_list; a missing value is an absent feature
        for key in [k for k, v in row.items() if v is None or v == []]:
            del row[key]
        for key in numeric & set(row):
            row[key] = float(row[key])
    expected = client.predict(pq.read_table(small_data["valid"]).slice(0, 20))["probability"]
    scores = client.classify(rows)
    np.testing.assert_allclose(scores[:, 1], expected, atol=1e-5)
    np.testing.assert_allclose(client.regress(rows), expected, atol=1e-5)
    rows[0]["I1"] = 3  # an int64_list where the model expects a float_list
    with pytest.raises(grpc.RpcError) as info:
        client.classify(rows[:1])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "I1" in info.value.details()
    metadata = client.metadata()
    assert metadata["serving_default"]["method"] == "tensorflow/serving/predict"
    assert metadata["classify"]["method"] == "tensorflow/serving/classify"
    assert metadata["serving_default"]["inputs"]["C1"] == tf.string
    assert metadata["serving_default"]["inputs"]["I1"] == tf.float64
    assert client.status()[0][1] == "AVAILABLE"


def _rest(served, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{served['rest_port']}{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_rest_predict_row_and_columnar_forms_and_status(served, small_data, small_spec):
    table = pq.read_table(small_data["valid"]).slice(0, 30)
    expected = served["client"].predict(table)["probability"]
    raw = {k: v.tolist() for k, v in _columns_for_rest(table, small_spec).items()}
    status, answer = _rest(served, "/v1/models/ctr:predict", {"inputs": raw})
    assert status == 200
    np.testing.assert_allclose(answer["outputs"]["probability"], expected, atol=1e-6)
    rows = [dict(zip(raw, values)) for values in zip(*raw.values())]
    status, answer = _rest(served, "/v1/models/ctr:predict", {"instances": rows})
    assert status == 200
    np.testing.assert_allclose([p["probability"] for p in answer["predictions"]], expected, atol=1e-6)
    status, answer = _rest(served, "/v1/models/ctr")
    assert status == 200 and answer["model_version_status"][0]["state"] == "AVAILABLE"
    assert _rest(served, "/v1/models/other:predict", {"instances": rows})[0] == 404
    assert _rest(served, "/v1/models/ctr/versions/99")[0] == 404
    status, answer = _rest(served, "/v1/models/ctr:predict", {"instances": [{**rows[0], "I1": "many"}]})
    assert status == 400 and "input 'I1' cannot be read as float64" in answer["error"]
    status, answer = _rest(served, "/v1/models/ctr:predict", {"rows": rows})
    assert status == 400 and "exactly one of" in answer["error"]


def _columns_for_rest(table, spec):
    from tfctr.data.encoding import arrow_to_serving

    columns = arrow_to_serving(table, spec)
    return {k: np.where(np.isnan(v), None, v) if v.dtype == np.float64 else v for k, v in columns.items()}


def _raw_request(served, small_spec, **changes):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=changes.pop("name", "ctr")))
    if "version" in changes:
        request.model_spec.version.value = changes.pop("version")
    request.model_spec.signature_name = changes.pop("signature", "")
    values = {f.name: (np.array(["a", "b"], dtype=object) if f.dtype in ("string",) or f.kind == "list"
                       else np.array([1.0, 2.0]) if f.kind == "numeric" else np.array([1, 2]))
              for f in small_spec.features}
    values.update(changes.pop("values", {}))
    for name in changes.pop("drop", []):
        del values[name]
    for name, value in values.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize("changes, code, message", [
    ({"drop": ["C1"]}, grpc.StatusCode.INVALID_ARGUMENT, "missing inputs ['C1']"),
    ({"values": {"I1": np.array([1, 2])}}, grpc.StatusCode.INVALID_ARGUMENT, "input 'I1' has dtype int64, expected "
                                                                             "float64"),
    ({"values": {"C2": np.array([["a", "b"]], dtype=object)}}, grpc.StatusCode.INVALID_ARGUMENT,
     "input 'C2' has shape [1, 2]"),
    ({"values": {"C3": np.array(["a", "b", "c"], dtype=object)}}, grpc.StatusCode.INVALID_ARGUMENT,
     "inputs ['C3'] have batch size [3], the others 2"),
    ({"values": {"extra": np.array([1.0, 2.0])}}, grpc.StatusCode.INVALID_ARGUMENT, "unknown inputs ['extra']"),
    ({"name": "other"}, grpc.StatusCode.NOT_FOUND, "model 'other' is not served"),
    ({"name": "../ctr"}, grpc.StatusCode.NOT_FOUND, "model '../ctr' is not served"),
    ({"version": 99}, grpc.StatusCode.NOT_FOUND, "version 99 of model 'ctr' is not loaded"),
    ({"signature": "nope"}, grpc.StatusCode.NOT_FOUND, "signature 'nope' not found"),
])
def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(served, small_spec, changes, code, message):
    channel = grpc.insecure_channel(f"127.0.0.1:{served['port']}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(_raw_request(served, small_spec, **changes), timeout=30)
    assert info.value.code() == code
    assert message in info.value.details(), info.value.details()
    answer = stub.Predict(_raw_request(served, small_spec), timeout=30).outputs["probability"]
    assert tf.make_ndarray(answer).shape == (2,)
    channel.close()


def test_new_version_is_picked_up_without_failed_requests(served, small_data, small_spec):
    client = Client("127.0.0.1", served["port"], "ctr", timeout=30, retries=0)
    rows = pq.read_table(small_data["valid"]).slice(0, 50)
    failures, answers, stop = [], [], threading.Event()

    def stream():
        while not stop.is_set():
            try:
                answers.append(client.predict(rows)["probability"])
            except grpc.RpcError as err:
                failures.append(err)

    worker = threading.Thread(target=stream)
    worker.start()
    newer = _trained(small_spec, small_data, 1)
    path = export_saved_model(newer, small_spec, served["base"], "ctr")
    expected = predict_split(newer, small_data["valid"], small_spec)[:50]
    deadline = time.time() + 60
    while time.time() < deadline and client.status()[0][0] != int(path.name):
        time.sleep(0.2)
    swapped = len(answers)
    while time.time() < deadline and len(answers) < swapped + 3:  # the stream goes on across the swap
        time.sleep(0.05)
    stop.set()
    worker.join()
    assert client.status()[0] == (int(path.name), "AVAILABLE")
    assert not failures and swapped > 0 and len(answers) >= swapped + 3
    np.testing.assert_allclose(client.predict(rows)["probability"], expected, atol=1e-6)
    client.close()


def test_predict_cli_against_the_server(served, small_data, tmp_path):
    rows = pq.read_table(small_data["valid"]).slice(0, 40)
    pq.write_table(rows, tmp_path / "rows.parquet")
    done = subprocess.run([str(TFCTR), "predict", "--server", f"127.0.0.1:{served['port']}", "--model-name", "ctr",
                           "--input", str(tmp_path / "rows.parquet"), "--output", str(tmp_path / "out.parquet")],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    written = pq.read_table(tmp_path / "out.parquet")
    np.testing.assert_allclose(written["probability"].to_numpy(), served["client"].predict(rows)["probability"],
                               atol=1e-6)


def test_sigterm_stops_the_server_cleanly_and_clients_then_fail_fast(small_data, small_spec, tmp_path):
    # a server of its own, so that no other test depends on running before this one
    export_saved_model(_trained(small_spec, small_data, 3), small_spec, tmp_path, "ctr")
    (port,) = free_ports(1)
    process = subprocess.Popen([str(TFCTR), "serve", "--model-base-path", str(tmp_path), "--model-name", "ctr",
                                "--port", str(port)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = pq.read_table(small_data["valid"]).slice(0, 5)
    with Client("127.0.0.1", port, "ctr", timeout=5, retries=1) as client:
        client.wait_until_available(process=process)
        client.predict(rows)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        start = time.time()
        with pytest.raises(grpc.RpcError) as info:
            client.predict(rows)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.time() - start < 5


def test_server_side_batching_merges_concurrent_requests(small_data, small_spec, tmp_path):
    from tfctr.serving import ModelRepository, make_server
    from tfctr.serving.batching import Batcher

    model = _trained(small_spec, small_data, 2)
    export_saved_model(model, small_spec, tmp_path, "ctr")
    repository = ModelRepository(tmp_path, ["ctr"], poll_seconds=0)
    # 16 requests of 4 rows fill one batch of 64: the batcher sends it as soon as it is full, and its wait (5 s)
    # only has to outlast the spread of the requests' arrival, not guess it
    batcher = Batcher(max_batch_size=64, timeout_ms=5000)
    (port,) = free_ports(1)
    server = make_server(repository, port, batcher=batcher)
    table = pq.read_table(small_data["valid"]).slice(0, 64)
    expected = predict_split(model, small_data["valid"], small_spec)[:64]
    answers, errors = {}, []
    clients = [Client("127.0.0.1", port, "ctr", timeout=30, retries=0) for _ in range(16)]
    for client in clients:  # connected before the requests start
        client.status()
    start = threading.Barrier(16)

    def ask(i):
        start.wait()
        try:
            answers[i] = clients[i].predict(table.slice(4 * i, 4))["probability"]
        except grpc.RpcError as err:
            errors.append(err)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in clients:
        client.close()
    server.stop(grace=1)
    assert not errors and len(answers) == 16
    for i, values in answers.items():  # every request gets exactly its own rows back
        np.testing.assert_allclose(values, expected[4 * i:4 * i + 4], atol=1e-6)
    assert batcher.requests == 16 and batcher.calls == 1  # merged into one signature call
