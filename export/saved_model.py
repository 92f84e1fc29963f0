"""SavedModel export in TF Serving's layout: ``base_path/name/<version>/``, written atomically.

The model is first folded for inference (``tfctr.export.folding``). Signatures:

* ``serving_default`` (predict): raw features by name (the serving dtypes of ``tfctr.data.encoding``) ->
  ``probability`` and ``logit``, each ``[B]``;
* ``classify`` (TF Serving's Classify API): serialized ``tf.Example`` ``inputs`` -> ``scores`` ``[B, 2]``
  (P(0), P(1)) and ``classes`` ``[B, 2]`` (``"0"``, ``"1"``);
* ``regress`` (Regress API): serialized ``tf.Example`` ``inputs`` -> ``outputs`` ``[B]``, the probability.

All run the spec's preprocessing as TF ops (``RawFeatureEncoder``, vocabularies inside the graph) and the model
with ``training=False``. ``assets.extra/`` holds ``spec.json``, ``model_card.json`` (model, hyper-parameters,
metrics, tfctr version) and ``tf_serving_warmup_requests`` (a Predict request TF Serving replays at load).
A version is built in a hidden temporary directory beside its final place and renamed into it, so a server
watching ``base_path/name`` never sees half a version; the directory is made readable by all (0755), and the
staging directories of killed exports (untouched for an hour) are removed by the next export.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from tfctr._version import __version__
from tfctr.data.encoding import RawFeatureEncoder, example_row, parse_examples, serving_dtype
from tfctr.defaults import DEFAULT_PROBABILITY_TOLERANCE, SERVING_PRECISIONS
from tfctr.export.folding import fold_for_serving
from tfctr.export.precision import bfloat16_copy, compute_dtype, probability_difference
from tfctr.features import FeatureSpec
from tfctr.models import logit_model

METHOD_NAMES = {"serving_default": tf.saved_model.PREDICT_METHOD_NAME,
                "classify": tf.saved_model.CLASSIFY_METHOD_NAME,
                "regress": tf.saved_model.REGRESS_METHOD_NAME}


class ServingModule(tf.Module):
    """Raw features or ``tf.Example`` protos -> predictions: the spec's preprocessing followed by the model."""

    def __init__(self, model: tf.keras.Model, spec: FeatureSpec):
        super().__init__(name="tfctr_serving")
        self.encoder = RawFeatureEncoder(spec)
        self.logit_model = logit_model(model)
        self.spec = spec

    def predict(self, raw: dict) -> dict:
        logit = tf.reshape(tf.cast(self.logit_model(self.encoder(raw), training=False), tf.float32), [-1])
        return {"probability": tf.sigmoid(logit), "logit": logit}

    def classify(self, serialized: tf.Tensor) -> dict:
        probability = self.predict(parse_examples(serialized, self.spec))["probability"]
        scores = tf.stack([1.0 - probability, probability], axis=1)
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(scores)[0], 1])
        return {tf.saved_model.CLASSIFY_OUTPUT_SCORES: scores, tf.saved_model.CLASSIFY_OUTPUT_CLASSES: classes}

    def regress(self, serialized: tf.Tensor) -> dict:
        return {tf.saved_model.REGRESS_OUTPUTS: self.predict(parse_examples(serialized, self.spec))["probability"]}

    def signatures(self) -> dict:
        raw = {f.name: tf.TensorSpec([None], serving_dtype(f), name=f.name) for f in self.spec.features}
        examples = tf.TensorSpec([None], tf.string, name=tf.saved_model.CLASSIFY_INPUTS)
        classify = tf.function(lambda inputs: self.classify(inputs), input_signature=[examples])
        regress = tf.function(lambda inputs: self.regress(inputs), input_signature=[examples])
        return {"serving_default": tf.function(self.predict, input_signature=[raw]).get_concrete_function(),
                "classify": classify.get_concrete_function(), "regress": regress.get_concrete_function()}


def _set_method_names(export_dir: Path) -> None:
    """TF2's saver marks every signature as predict; TF Serving's Classify and Regress APIs need theirs."""
    path = export_dir / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for key, method in METHOD_NAMES.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    path.write_bytes(saved.SerializeToString())


# batch sizes of the warm-up Predict requests: one row, and the sizes server-side batching produces
WARMUP_BATCH_SIZES = (1, 8, 64, 256)


def _warmup_example(row: dict) -> tf.train.Example:
    """The tf.Example of a one-row serving input (``example_row``) for the classify/regress warm-up."""
    features = {}
    for name, values in row.items():
        value = values[0]
        if isinstance(value, (str, bytes)):
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[value.encode() if isinstance(value, str) else value]))
        elif isinstance(value, float | np.floating):
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        else:
            features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    return tf.train.Example(features=tf.train.Features(feature=features))


def _write_warmup(path: Path, spec: FeatureSpec, name: str) -> None:
    """TF Serving's warm-up file: Predict requests at ``WARMUP_BATCH_SIZES`` rows and one Classify and one Regress
    request, replayed by a server before the version answers (so its first request is not the one that traces
    and allocates)."""
    row = example_row(spec)
    logs = []
    for rows in WARMUP_BATCH_SIZES:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name,
                                                                            signature_name="serving_default"))
        for feature, values in row.items():
            request.inputs[feature].CopyFrom(tf.make_tensor_proto(np.repeat(values, rows),
                                                                  dtype=serving_dtype(spec[feature])))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    examples = input_pb2.Input(example_list=input_pb2.ExampleList(examples=[_warmup_example(row)]))
    logs.append(prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=classification_pb2.ClassificationRequest(
            model_spec=model_pb2.ModelSpec(name=name, signature_name="classify"), input=examples))))
    logs.append(prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
        request=regression_pb2.RegressionRequest(
            model_spec=model_pb2.ModelSpec(name=name, signature_name="regress"), input=examples))))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def next_version(model_dir) -> int:
    """1 + the largest integer version under ``model_dir`` (1 when there is none)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] \
        if model_dir.exists() else []
    return max(versions, default=0) + 1


STAGING_PREFIX = ".tmp-"
STALE_STAGING_SECONDS = 3600.0


def remove_stale_staging(model_dir: Path, older_than: float = STALE_STAGING_SECONDS) -> list[Path]:
    """Removes the staging directories of exports that were killed (untouched for ``older_than`` seconds; a
    running export's own staging directory is younger) and returns them."""
    now, removed = time.time(), []
    for path in model_dir.glob(f"{STAGING_PREFIX}*"):
        if path.is_dir() and now - path.stat().st_mtime > older_than:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def export_saved_model(model_or_run, spec: FeatureSpec | None, base_path, name: str,
                       version: int | None = None, precision: str = "float32", check_data=None,
                       probability_tolerance: float = DEFAULT_PROBABILITY_TOLERANCE) -> Path:
    """Exports a model (or a run directory of ``tfctr train``) to ``base_path/name/<version>/``.

    Args:
        model_or_run: a ``tf.keras.Model`` with a ``"logit"`` layer (its model card then holds what
            ``tfctr.models.build`` recorded: name and hyper-parameters), a run directory or the ``TrainResult`` of
            ``tfctr.training.train`` (the card then also holds the run's metrics).
        spec: the fitted FeatureSpec of the model (``None`` for a run directory: its own spec is used).
        base_path: TF Serving's ``--model_base_path`` parent directory.
        name: the model name (a directory under base_path).
        version: a positive integer; the next free integer by default. An existing version is never replaced.
        precision: ``"float32"`` (default: the model as trained) or ``"bfloat16"``: the served graph computes in
            bfloat16 (``tfctr.export.precision``), exported only if its probabilities stay within
            ``probability_tolerance`` of the model's on ``check_data`` (Parquet; default: a run's validation
            split); the measurement goes into the model card under ``"precision"``.

    Returns:
        The path of the written version.
    """
    card = {"model": None, "hyper_parameters": {}, "metrics": {}}
    if hasattr(model_or_run, "run_dir"):  # a TrainResult: export its run directory (model, spec, metrics)
        model_or_run = model_or_run.run_dir
    if isinstance(model_or_run, (str, os.PathLike)):
        from tfctr.runs import load_run

        run = load_run(model_or_run)
        model, spec = run.model, spec or run.spec
        config_path = run.run_dir / "config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        card.update(model=config.get("model"), hyper_parameters=config.get("hyper_parameters", {}),
                    metrics=run.metrics, check_data=config.get("training", {}).get("valid"))
    else:
        model = model_or_run
        card.update(json.loads(getattr(model, "tfctr_card", "{}")))  # what tfctr.models.build recorded
    if spec is None:
        raise ValueError("export_saved_model needs the FeatureSpec of the model")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"model name {name!r} must be letters, digits, '_', '.' or '-'")
    model_dir = Path(base_path) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"version {version} of model '{name}' already exists at {final}")

    if precision not in SERVING_PRECISIONS:
        raise ValueError(f"precision must be one of {SERVING_PRECISIONS}, got {precision!r}")
    if precision == "bfloat16":
        check_data = check_data or card.get("check_data")
        if not check_data:
            raise ValueError("a bfloat16 export needs check_data: Parquet rows on which to measure how far its "
                             "probabilities move from the float32 model's")
        served = bfloat16_copy(model, card, spec)
        difference = probability_difference(model, served, spec, check_data)
        if difference["max_abs"] > probability_tolerance:
            raise ValueError(f"bfloat16 moves a probability by {difference['max_abs']:.4g} on {check_data} (mean "
                             f"{difference['mean_abs']:.3g}), more than probability_tolerance="
                             f"{probability_tolerance}: export in float32, or raise the tolerance")
        card["precision"] = dict(compute="bfloat16", check_data=str(check_data), **difference)
    else:
        served = fold_for_serving(model)
        card["precision"] = {"compute": compute_dtype(model)}
    card.pop("check_data", None)
    module = ServingModule(served, spec)
    card.update(model=card["model"] or model.name, tfctr_version=__version__, tensorflow_version=tf.__version__,
                exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                signatures=sorted(METHOD_NAMES))
    remove_stale_staging(model_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=model_dir))
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the version from a server running as another user
    try:
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        _set_method_names(staging)
        extra = staging / "assets.extra"
        extra.mkdir(exist_ok=True)
        spec.save(extra / "spec.json")
        (extra / "model_card.json").write_text(json.dumps(card, indent=1))
        _write_warmup(extra / "tf_serving_warmup_requests", spec, name)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
