"""TF Serving's REST API beyond predict (metadata, classify, regress; /versions/N and /labels/L on every
endpoint), version policies and labels from a TF Serving ``--model_config_file``, and ``version_label`` over
gRPC. Two real versions of a model, real servers on loopback."""

import http.client
import json

import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model
from tfctr.serving import ModelRepository, make_server
from tfctr.serving.model_config import ModelConfig, read_model_config_file
from tfctr.serving.rest import make_rest_server
from tfctr.utils import free_ports

CONFIG = """
model_config_list {
  config {
    name: "ctr"
    base_path: "ctr"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config { name: "newest" base_path: "ctr" }
}
"""


@pytest.fixture(scope="module")
def two_versions(small_data, small_spec, tmp_path_factory):
    base = tmp_path_factory.mktemp("versions")
    for version, seed in ((1, 0), (2, 1)):
        tf.random.set_seed(seed)
        model = models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8])
        model.compile(tf.keras.optimizers.Adam(0.01), "binary_crossentropy")
        model.fit(parquet_dataset(small_data["train"], small_spec, 1024), epochs=1, verbose=0)
        export_saved_model(model, small_spec, base, "ctr", version)
    (base / "models.config").write_text(CONFIG)
    return base


@pytest.fixture(scope="module")
def server(two_versions, small_data, small_spec):
    repository = ModelRepository(configs=read_model_config_file(two_versions / "models.config"), poll_seconds=0)
    port, rest_port = free_ports(2)
    grpc_server = make_server(repository, port)
    rest = make_rest_server(repository, rest_port)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    rows = pq.read_table(small_data["valid"]).slice(0, 8)
    yield {"stub": prediction_service_pb2_grpc.PredictionServiceStub(channel),
           "models": model_service_pb2_grpc.ModelServiceStub(channel), "rest_port": rest_port,
           "inputs": arrow_to_serving(rows, small_spec), "rows": rows}
    channel.close()
    rest.shutdown()
    grpc_server.stop(0)
    repository.close()


def _rest(server, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", server["rest_port"], timeout=30)
    connection.request(method, path, body=None if body is None else json.dumps(body))
    answer = connection.getresponse()
    payload = json.loads(answer.read())
    connection.close()
    return answer.status, payload


def _grpc_predict(server, **version):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = version.pop("name", "ctr")
    for key, value in version.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            request.model_spec.version_label = value
    for key, value in server["inputs"].items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    answer = server["stub"].Predict(request, timeout=30)
    return answer.model_spec.version.value, tf.make_ndarray(answer.outputs["probability"]).ravel()


def _examples(server, small_spec):
    """The rows as REST classify examples: numerics as JSON floats, missing values left out."""
    numeric = {f.name for f in small_spec.features if f.kind == "numeric"}
    examples = []
    for row in server["rows"].to_pylist():
        example = {k: (float(v) if k in numeric else v) for k, v in row.items()
                   if v is not None and v != [] and k in {f.name for f in small_spec.features}}
        examples.append(example)
    return examples


def test_version_labels_and_numbers_over_grpc_and_rest(server):
    by_number = {v: _grpc_predict(server, version=v) for v in (1, 2)}
    assert by_number[1][0] == 1 and by_number[2][0] == 2
    assert not np.allclose(by_number[1][1], by_number[2][1])  # two different models
    for label, version in (("stable", 1), ("canary", 2)):
        served_version, probability = _grpc_predict(server, version_label=label)
        assert served_version == version
        np.testing.assert_allclose(probability, by_number[version][1], atol=1e-7)
        columns = {k: [None if isinstance(x, float) and np.isnan(x) else x for x in v.tolist()]
                   for k, v in server["inputs"].items()}
        for path in (f"/v1/models/ctr/labels/{label}:predict", f"/v1/models/ctr/versions/{version}:predict"):
            status, answer = _rest(server, "POST", path, {"inputs": columns})
            assert status == 200
            np.testing.assert_allclose(answer["outputs"]["probability"], by_number[version][1], atol=1e-6)
    assert _grpc_predict(server)[0] == 2  # no version asked: the newest served
    assert _grpc_predict(server, name="newest")[0] == 2  # the latest policy of the second config
    with pytest.raises(grpc.RpcError) as info:
        _grpc_predict(server, version_label="beta")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no version label 'beta'" in info.value.details() and "['canary', 'stable']" in info.value.details()
    status, answer = _rest(server, "GET", "/v1/models/ctr/labels/beta")
    assert status == 404 and "no version label 'beta'" in answer["error"]
    status, answer = _rest(server, "GET", "/v1/models/newest/versions/1")
    assert status == 404 and "the served versions are [2]" in answer["error"]


def test_rest_status_matches_tf_serving_shape(server):
    status, answer = _rest(server, "GET", "/v1/models/ctr")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}} for v in ("2", "1")]}
    status, answer = _rest(server, "GET", "/v1/models/ctr/labels/stable")
    assert status == 200 and [s["version"] for s in answer["model_version_status"]] == ["1"]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ctr"
    assert [s.version for s in server["models"].GetModelStatus(request, timeout=30).model_version_status] == [1, 2]
    request.model_spec.version_label = "canary"
    assert [s.version for s in server["models"].GetModelStatus(request, timeout=30).model_version_status] == [2]


def test_rest_metadata_matches_tf_serving_shape_and_grpc(server):
    status, answer = _rest(server, "GET", "/v1/models/ctr/versions/1/metadata")
    assert status == 200
    assert set(answer) == {"model_spec", "metadata"}
    assert answer["model_spec"] == {"name": "ctr", "signature_name": "", "version": "1"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify", "regress"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["C1"]["dtype"] == "DT_STRING" and default["inputs"]["I1"]["dtype"] == "DT_DOUBLE"
    assert default["inputs"]["C1"]["tensor_shape"] == {"dim": [{"size": "-1"}]}
    assert default["outputs"]["probability"]["dtype"] == "DT_FLOAT"
    assert signatures["classify"]["method_name"] == "tensorflow/serving/classify"
    assert signatures["regress"]["method_name"] == "tensorflow/serving/regress"
    # the same definitions as gRPC GetModelMetadata, field by field
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name, request.model_spec.version_label = "ctr", "stable"
    response = server["stub"].GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert json_format.MessageToDict(signature_map, preserving_proto_field_name=True)["signature_def"] == signatures
    assert _rest(server, "GET", "/v1/models/ctr/labels/canary/metadata")[1]["model_spec"]["version"] == "2"


def test_rest_classify_and_regress_match_predict(server, small_spec):
    examples = _examples(server, small_spec)
    _, expected = _grpc_predict(server, version=1)
    status, answer = _rest(server, "POST", "/v1/models/ctr/labels/stable:classify", {"examples": examples})
    assert status == 200 and set(answer) == {"result"} and len(answer["result"]) == len(examples)
    for row, p in zip(answer["result"], expected):
        assert [c for c, _ in row] == ["0", "1"]
        np.testing.assert_allclose([s for _, s in row], [1 - p, p], atol=1e-5)
    status, answer = _rest(server, "POST", "/v1/models/ctr/versions/1:regress", {"examples": examples})
    assert status == 200 and set(answer) == {"result"}
    np.testing.assert_allclose(answer["result"], expected, atol=1e-5)
    # a feature shared by every example may come as context
    shared = {"C1": examples[0]["C1"]}
    with_context = [{k: v for k, v in e.items() if k != "C1"} for e in examples[:1]]
    status, answer = _rest(server, "POST", "/v1/models/ctr/versions/1:regress",
                           {"context": shared, "examples": with_context})
    assert status == 200
    np.testing.assert_allclose(answer["result"], expected[:1], atol=1e-5)
    # errors keep their message: an int64 where the model parses floats is named by the graph
    status, answer = _rest(server, "POST", "/v1/models/ctr:regress", {"examples": [{**examples[0], "I1": 3}]})
    assert status == 400 and "I1" in answer["error"]
    status, answer = _rest(server, "POST", "/v1/models/ctr:classify", {"examples": [{"C1": True}]})
    assert status == 400 and "example 0 feature 'C1'" in answer["error"]
    status, answer = _rest(server, "POST", "/v1/models/ctr:classify", {"examples": []})
    assert status == 400 and "no examples" in answer["error"]
    status, answer = _rest(server, "POST", "/v1/models/ctr:regress",
                           {"signature_name": "serving_default", "examples": examples})
    assert status == 400 and "regress needs" in answer["error"]
    assert _rest(server, "GET", "/v1/models/ctr:regress")[0] == 404


def test_model_config_files_are_checked(tmp_path, two_versions):
    configs = read_model_config_file(two_versions / "models.config")
    assert configs[0] == ModelConfig("ctr", two_versions / "ctr", "specific", 1, (1, 2),
                                     {"stable": 1, "canary": 2})
    assert configs[1].policy == "latest" and configs[1].wanted([1, 2, 3]) == [3]
    assert ModelConfig("m", tmp_path, "latest", num_versions=2).wanted([1, 2, 3]) == [2, 3]
    assert ModelConfig("m", tmp_path, "all").wanted([1, 5]) == [1, 5]
    bad = {"model_config_list { config { name: 'x' } }": "needs a name and a base_path",
           "model_config_list { config { name: 'x' base_path: '/b' model_platform: 'onnx' } }": "platform 'onnx'",
           "model_config_list { config { name: 'x' base_path: '/b' model_version_policy { specific { versions: 1 } }"
           " version_labels { key: 'canary' value: 2 } } }": "label 'canary' points to version 2",
           "model_config_list { cfg {} }": "not a TF Serving model config"}
    for text, message in bad.items():
        (tmp_path / "bad.config").write_text(text)
        with pytest.raises(ValueError, match=message):
            read_model_config_file(tmp_path / "bad.config")


def test_all_versions_policy_picks_up_and_drops_versions(two_versions, small_spec, tmp_path):
    import shutil

    shutil.copytree(two_versions / "ctr" / "1", tmp_path / "ctr" / "1")
    repository = ModelRepository(configs=[ModelConfig("ctr", tmp_path / "ctr", "all")], poll_seconds=0)
    assert repository.served_versions("ctr") == [1]
    shutil.copytree(two_versions / "ctr" / "2", tmp_path / "ctr" / "2")
    repository.refresh("ctr")
    assert repository.served_versions("ctr") == [1, 2]
    shutil.rmtree(tmp_path / "ctr" / "1")
    repository.refresh("ctr")
    assert repository.served_versions("ctr") == [2] and repository.get("ctr").version == 2
    repository.close()
