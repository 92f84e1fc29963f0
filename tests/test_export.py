"""Export: folding for inference, the predict/classify/regress signatures, assets.extra, saved_model_cli."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfctr import models
from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model, fold_for_serving, has_serving_form
from tfctr.features import ListFeature, NumericFeature
from tfctr.models.inputs import embed_fields, flat_input, head, model_inputs
from tfctr.training.train import predict_split


@tf.keras.utils.register_keras_serializable(package="tfctr_tests")
class FactorizedDense(tf.keras.layers.Layer):
    """A dense layer stored as a product of two matrices, ``y = x (U V) + b``; its serving form is a plain
    ``Dense`` with the product precomputed (the pattern of APG's over-parameterisation)."""

    def __init__(self, units, rank, **kwargs):
        super().__init__(**kwargs)
        self.units, self.rank = units, rank

    def build(self, input_shape):
        self.u = self.add_weight(name="u", shape=(int(input_shape[-1]), self.rank))
        self.v = self.add_weight(name="v", shape=(self.rank, self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="random_normal")
        super().build(input_shape)

    def call(self, inputs):
        return tf.matmul(tf.matmul(inputs, self.u), self.v) + self.bias

    def serving_form(self):
        dense = tf.keras.layers.Dense(self.units, name=self.name)
        dense.build((None, self.u.shape[0]))
        dense.set_weights([(self.u @ self.v).numpy(), self.bias.numpy()])
        return dense

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rank": self.rank}


def _foldable_model(spec):
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, 4)
    x = FactorizedDense(16, 3, name="factorized")(flat_input(fields, dense))
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = tf.keras.layers.Dropout(0.5, name="dropout")(tf.keras.layers.ReLU()(x))
    return head(inputs, [tf.keras.layers.Dense(1, name="out")(x)], "foldable")


@pytest.fixture(scope="module")
def foldable(small_data, small_spec):
    model = _foldable_model(small_spec)
    model.compile("adam", "binary_crossentropy")
    from tfctr.data import parquet_dataset

    model.fit(parquet_dataset(small_data["train"], small_spec, 512), epochs=1, verbose=0)  # BN statistics move
    return model


def test_folding_replaces_the_layer_and_keeps_inference_outputs(foldable, small_data, small_spec):
    assert has_serving_form(foldable)
    folded = fold_for_serving(foldable)
    assert type(folded.get_layer("factorized")).__name__ == "Dense"
    np.testing.assert_allclose(predict_split(folded, small_data["valid"], small_spec),
                               predict_split(foldable, small_data["valid"], small_spec), atol=1e-5)
    plain = models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8])
    assert not has_serving_form(plain) and fold_for_serving(plain) is plain


def _raw(small_data, small_spec, rows=500):
    return arrow_to_serving(pq.read_table(small_data["valid"]).slice(0, rows), small_spec)


def _examples(raw, spec):
    protos = []
    for i in range(len(next(iter(raw.values())))):
        feature = {}
        for f in spec.features:
            value = raw[f.name][i]
            if isinstance(f, ListFeature):
                tokens = [t.encode() for t in value.split(f.separator) if t]
                feature[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=tokens))
            elif isinstance(f, NumericFeature):
                if not np.isnan(value):  # absent = missing
                    feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            elif f.dtype == "string":
                feature[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
            else:
                feature[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        protos.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return tf.constant(protos)


@pytest.fixture(scope="module")
def exported(foldable, small_spec, tmp_path_factory):
    return export_saved_model(foldable, small_spec, tmp_path_factory.mktemp("models"), "foldable")


def test_exported_model_is_folded_and_predicts_like_the_model(exported, foldable, small_data, small_spec):
    loaded = tf.saved_model.load(str(exported))
    shapes = [tuple(v.shape) for v in loaded.signatures["serving_default"].variables]
    width = foldable.get_layer("factorized").u.shape[0]
    assert (width, 3) not in shapes and (3, 16) not in shapes, shapes  # no U, V: only their product
    assert (width, 16) in shapes
    raw = _raw(small_data, small_spec)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    expected = predict_split(foldable, small_data["valid"], small_spec)[:500]
    np.testing.assert_allclose(served["probability"].numpy(), expected, atol=1e-5)


def test_the_packed_call_the_server_makes_equals_the_keyword_call(exported, small_data, small_spec):
    from tfctr.serving.packed_call import PackedSignature, packable
    from tfctr.serving.repository import load_version

    loaded = load_version(exported.parent, int(exported.name))
    signature = loaded.signatures["serving_default"]
    assert packable(loaded.signature_defs["serving_default"]) and "serving_default" in loaded.packed
    arrays = _raw(small_data, small_spec, rows=50)
    dtypes = {k: v.dtype for k, v in signature.structured_input_signature[1].items()}
    assert len({d for d in dtypes.values()}) > 1  # inputs of several dtypes, so several stacks
    keyword = signature(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in arrays.items()})
    for packed in (loaded.packed["serving_default"], PackedSignature(signature, dtypes)):
        outputs = packed(arrays)
        assert outputs.keys() == keyword.keys()
        for key in outputs:
            np.testing.assert_array_equal(outputs[key].numpy(), keyword[key].numpy())
    # zero rows go through too
    empty = loaded.packed["serving_default"]({k: v[:0] for k, v in arrays.items()})
    assert empty["probability"].shape == (0,)


def test_classify_and_regress_over_tf_examples(exported, small_data, small_spec):
    loaded = tf.saved_model.load(str(exported))
    raw = _raw(small_data, small_spec, 200)
    probability = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["probability"]
    examples = _examples(raw, small_spec)
    classified = loaded.signatures["classify"](inputs=examples)
    np.testing.assert_allclose(classified["scores"].numpy()[:, 1], probability.numpy(), atol=1e-6)
    np.testing.assert_allclose(classified["scores"].numpy().sum(axis=1), 1.0, atol=1e-6)
    assert classified["classes"].numpy()[0].tolist() == [b"0", b"1"]
    regressed = loaded.signatures["regress"](inputs=examples)
    np.testing.assert_allclose(regressed["outputs"].numpy(), probability.numpy(), atol=1e-6)


def test_assets_extra_model_card_and_warmup(exported, small_spec):
    extra = Path(exported) / "assets.extra"
    card = json.loads((extra / "model_card.json").read_text())
    assert card["model"] == "foldable" and card["signatures"] == ["classify", "regress", "serving_default"]
    assert card["tfctr_version"]
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(str(extra / "tf_serving_warmup_requests"))]
    # Predict at every batch size server-side batching produces, then Classify and Regress
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log"] * 4 + ["classify_log", "regress_log"]
    signatures = tf.saved_model.load(str(exported)).signatures
    for record, rows in zip(records, (1, 8, 64, 256)):
        request = record.predict_log.request
        assert request.model_spec.name == "foldable" and set(request.inputs) == set(small_spec.names)
        out = signatures["serving_default"](**{k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        assert out["probability"].shape == (rows,)
    examples = records[4].classify_log.request.input.example_list.examples
    serialized = tf.constant([e.SerializeToString() for e in examples])
    assert signatures["classify"](inputs=serialized)["scores"].shape == (1, 2)


def test_saved_model_cli_lists_signatures_with_dtypes(exported):
    cli = Path(sys.executable).parent / "saved_model_cli"
    done = subprocess.run([str(cli), "show", "--all", "--dir", str(exported)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    for signature, method in (("serving_default", "tensorflow/serving/predict"),
                              ("classify", "tensorflow/serving/classify"),
                              ("regress", "tensorflow/serving/regress")):
        block = text.split(f"signature_def['{signature}']:")[1].split("signature_def[")[0]
        assert f"Method name is: {method}" in block, block
    predict = text.split("signature_def['serving_default']:")[1].split("signature_def[")[0]
    assert "inputs['C1'] tensor_info:\n        dtype: DT_STRING" in predict
    assert "inputs['I1'] tensor_info:\n        dtype: DT_DOUBLE" in predict
    assert "outputs['probability'] tensor_info:\n        dtype: DT_FLOAT" in predict


def test_export_is_world_readable_and_cleans_killed_staging(small_spec, tmp_path):
    import os
    import stat
    import time

    from tfctr import models
    from tfctr.export import export_saved_model

    model_dir = tmp_path / "ctr"
    model_dir.mkdir()
    killed, running = model_dir / ".tmp-3-killed", model_dir / ".tmp-4-running"
    for path in (killed, running):
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(killed, (old, old))  # an export killed two hours ago; the other is still being written
    version = export_saved_model(models.build("lr", small_spec), small_spec, tmp_path, "ctr")
    assert not killed.exists() and running.exists()
    assert stat.S_IMODE(version.stat().st_mode) == 0o755


def test_model_card_from_the_python_api(small_data, small_spec, tmp_path):
    from tfctr import models
    from tfctr.export import export_saved_model
    from tfctr.training import train

    built = export_saved_model(models.build("wdl", small_spec, hidden_units=[8]), small_spec, tmp_path, "built")
    card = json.loads((built / "assets.extra" / "model_card.json").read_text())
    assert card["model"] == "wdl" and card["hyper_parameters"]["hidden_units"] == [8]
    assert card["hyper_parameters"]["embedding_dim"] == 16  # the defaults are recorded too
    result = train(small_data["train"], small_data["valid"], tmp_path / "run", model="lr", spec=small_spec, epochs=1,
                   verbose=0)
    trained = export_saved_model(result, None, tmp_path, "trained")  # a TrainResult, as train returns it
    card = json.loads((trained / "assets.extra" / "model_card.json").read_text())
    assert card["model"] == "lr" and card["metrics"]["valid"]["model"]["auc"] == result.metrics["valid"]["model"]["auc"]


def _has_bfloat16_ops(signature) -> bool:
    library = signature.graph.as_graph_def().library.function
    return any(value.type == tf.bfloat16.as_datatype_enum for function in library for node in function.node_def
               for value in node.attr.values())


def test_bfloat16_export_computes_in_bfloat16_within_its_measured_tolerance(small_data, small_spec, tmp_path):
    from tfctr.data import parquet_dataset

    model = models.build("dagfm", small_spec, embedding_dim=4)  # folds at export (its masks dropped)
    model.compile(tf.keras.optimizers.Adam(1e-2), "binary_crossentropy")  # trained: untrained logits reach 300
    model.fit(parquet_dataset(small_data["train"], small_spec, 512), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="check_data"):  # nothing to measure the difference on
        export_saved_model(model, small_spec, tmp_path, "m", precision="bfloat16")
    with pytest.raises(ValueError, match="probability_tolerance=0"):
        export_saved_model(model, small_spec, tmp_path, "m", precision="bfloat16", check_data=small_data["valid"],
                           probability_tolerance=0.0)
    with pytest.raises(ValueError, match="precision must be one of"):
        export_saved_model(model, small_spec, tmp_path, "m", precision="float16")
    assert not (tmp_path / "m" / "1").exists()  # a refused export writes no version
    path = export_saved_model(model, small_spec, tmp_path, "m", precision="bfloat16", check_data=small_data["valid"])
    check = json.loads((path / "assets.extra" / "model_card.json").read_text())["precision"]
    assert check["compute"] == "bfloat16" and check["rows"] == 3000 and 0 < check["max_abs"] <= 0.01
    # the served graph is the bfloat16 one: it computes in bfloat16 and differs from the float32 model, by at most
    # the tolerance the export checked (not by exactly what it measured in-process: with AMX, bfloat16 kernels
    # round by their blocking, which differs between the two graphs)
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert _has_bfloat16_ops(signature)
    raw = arrow_to_serving(pq.read_table(small_data["valid"]), small_spec)
    served = signature(**{k: tf.constant(v) for k, v in raw.items()})
    expected = predict_split(model, small_data["valid"], small_spec)
    assert 0 < np.abs(served["probability"].numpy() - expected).max() <= 0.01
    float32 = export_saved_model(model, small_spec, tmp_path, "m")
    assert not _has_bfloat16_ops(tf.saved_model.load(str(float32)).signatures["serving_default"])
    assert json.loads((float32 / "assets.extra" / "model_card.json").read_text())["precision"] == {"compute": "float32"}
