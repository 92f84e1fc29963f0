"""KD-DAGFM: the distillation step, and teacher → distilled → fine-tuned student through ``tfctr distill``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr import models
from tfctr.data import parquet_dataset, write_synthetic
from tfctr.data.encoding import arrow_to_serving
from tfctr.data.synthetic import SyntheticConfig
from tfctr.export import export_saved_model
from tfctr.training import Distiller, load_run, train
from tfctr.training.distill import copy_embedding
from tfctr.training.train import predict_split

THIRD_ORDER = SyntheticConfig(n_categorical=6, n_numeric=2, vocabulary_size=12, zipf_exponent=0.5, n_pairs=4,
                              n_triples=3, first_order_scale=0.3, second_order_scale=0.8, third_order_scale=1.2,
                              missing_rate=0.0, seed=5)
ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
TFCTR = Path(sys.executable).parent / "tfctr"


def _batch(spec, path, rows=64):
    return next(iter(parquet_dataset(path, spec, rows)))


def _models(spec, seed=0):
    tf.keras.utils.set_random_seed(seed)
    teacher = models.build("xdeepfm", spec, embedding_dim=4, cin_layer_sizes=[4], hidden_units=[8])
    student = models.build("dagfm", spec, embedding_dim=4, num_layers=2)
    copy_embedding(teacher, student)
    return teacher, student


def test_distillation_loss_matches_its_definition(small_data, small_spec):
    teacher, student = _models(small_spec)
    x, y = _batch(small_spec, small_data["train"])
    distiller = Distiller(student, teacher, alpha=0.3, beta=2.0)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    result = distiller.evaluate(tf.data.Dataset.from_tensors((x, y)), return_dict=True, verbose=0)
    z_t = models.logit_model(teacher)(x).numpy().ravel()
    z_s = models.logit_model(student)(x).numpy().ravel()
    labels = y.numpy().ravel().astype(np.float64)
    p = 1 / (1 + np.exp(-z_s))
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert result["loss"] == pytest.approx(np.mean(0.3 * bce + 2.0 * (z_t - z_s) ** 2), rel=1e-5)
    assert result["kd_mse"] == pytest.approx(np.mean((z_t - z_s) ** 2), rel=1e-5)
    assert result["logloss"] == pytest.approx(np.mean(bce), rel=1e-5)
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student(x).numpy(), rtol=1e-6)


def test_a_step_moves_the_student_only_and_beta_zero_is_plain_bce(small_data, small_spec):
    teacher, student = _models(small_spec)
    x, y = _batch(small_spec, small_data["train"], 256)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    embedding_before = student.get_layer("field_embedding").get_weights()[0].copy()
    distiller = Distiller(student, teacher, alpha=1.0, beta=0.0)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    # the same step by hand: plain BCE on the student, embeddings excluded
    reference = tf.keras.models.clone_model(student)
    reference.set_weights(student.get_weights())
    trained = [w for w in reference.trainable_variables if "field_embedding" not in w.name]
    with tf.GradientTape() as tape:
        labels = tf.reshape(tf.cast(y, tf.float32), [-1, 1])
        loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, reference(x)))
    for w, g in zip(trained, tape.gradient(loss, trained)):
        w.assign_sub(0.5 * g)
    distiller.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)  # the teacher never changes
    np.testing.assert_array_equal(student.get_layer("field_embedding").get_weights()[0], embedding_before)
    for a, b in zip(student.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.array_equal(a, b) for a, b in zip(student.get_weights(), _models(small_spec)[1].get_weights()))


def test_distiller_rejects_bad_weights_and_mismatched_embeddings(small_spec):
    teacher, student = _models(small_spec)
    with pytest.raises(ValueError, match="alpha and beta"):
        Distiller(student, teacher, alpha=0.0, beta=0.0)
    wider = models.build("dagfm", small_spec, embedding_dim=8)
    with pytest.raises(ValueError, match="field_embedding.*embedding_dim"):
        copy_embedding(teacher, wider)


@pytest.fixture(scope="module")
def kd_runs(tmp_path_factory):
    """A CIN (xDeepFM without DNN) teacher on data whose true logit is mostly third order, distilled into a
    DAGFM-inner student with ``tfctr distill``, and the same student trained alone for as many epochs."""
    root = tmp_path_factory.mktemp("kd")
    paths = write_synthetic(root / "data", 40_000, 5_000, 10_000, THIRD_ORDER)
    train(paths["train"], paths["valid"], root / "teacher", model="xdeepfm", test=paths["test"], epochs=8,
          batch_size=256, learning_rate=3e-3, verbose=0,
          hyper_params=dict(embedding_dim=8, cin_layer_sizes=[16, 16], hidden_units=[]))
    done = subprocess.run(
        [str(TFCTR), "distill", "--teacher", str(root / "teacher"), "--student", "dagfm", "--type", "inner",
         "--train", paths["train"], "--valid", paths["valid"], "--test", paths["test"], "--out", str(root / "kd"),
         "--epochs", "12", "--finetune-epochs", "4", "--batch-size", "256", "--learning-rate", "1e-2",
         "--finetune-learning-rate", "1e-3", "--patience", "4",
         "--hp", "num_layers=2", "--verbose", "0"], env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # the student alone, on the distillation's schedule
    alone = train(paths["train"], paths["valid"], root / "alone", model="dagfm", test=paths["test"], epochs=12,
                  batch_size=256, learning_rate=1e-2, verbose=0, hyper_params=dict(embedding_dim=8, num_layers=2))
    return root, paths, alone


def test_distilled_student_matches_its_teacher(kd_runs):
    root, _, alone = kd_runs
    summary = json.loads((root / "kd" / "summary.json").read_text())
    teacher, distilled = summary["teacher"]["test"]["logloss"], summary["distilled"]["test"]["logloss"]
    undistilled = alone.metrics["test"]["model"]["logloss"]
    print(f"test logloss: teacher {teacher:.4f}, distilled {distilled:.4f}, "
          f"fine-tuned {summary['finetuned']['test']['logloss']:.4f}, student alone {undistilled:.4f}")
    # the student matches its teacher (the teacher trained from N(0, 1e-4) embeddings is 0.005 better than one
    # from Keras' uniform start, and the distilled student gets within 0.003 of it); fine-tuning never loses
    assert abs(distilled - teacher) < 0.003
    assert summary["finetuned"]["test"]["logloss"] <= distilled
    assert undistilled >= distilled  # the undistilled student is not better
    assert summary["distilled"]["parameters"] < summary["teacher"]["parameters"]
    gap = summary["distilled"]["valid_teacher_gap"]  # the student's logits follow the teacher's
    assert gap["logit_correlation"] > 0.9 and gap["probability_mean_abs"] < 0.05
    assert summary["finetuned"]["valid_teacher_gap"]["logit_rmse"] > 0
    tuned = json.loads((root / "kd" / "finetuned" / "metrics.json").read_text())["training"]
    assert tuned["kept_distilled"] == (tuned["selection"]["selected_score"] <= tuned["start_val_score"])
    if tuned["kept_distilled"]:  # no fine-tuning epoch beat the distilled student: it is kept as it was
        assert summary["finetuned"]["test"] == summary["distilled"]["test"]
    config = json.loads((root / "kd" / "finetuned" / "config.json").read_text())
    assert config["hyper_parameters"]["interaction_type"] == "inner" and config["stage"] == "finetuned"


def test_exported_student_has_no_teacher_and_predicts_like_in_process(kd_runs, tmp_path):
    root, paths, _ = kd_runs
    run = load_run(root / "kd" / "finetuned")
    assert load_run(root / "kd").run_dir == root / "kd" / "finetuned"  # distill's --out: its final stage
    assert [layer.name for layer in run.model.layers if "cin" in layer.name] == []
    exported = export_saved_model(run.model, run.spec, tmp_path, "student")
    loaded = tf.saved_model.load(str(exported))
    variables = {v.name: v.numpy() for v in loaded.signatures["serving_default"].variables}
    assert not any("cin" in n for n in variables) and any("dagfm" in n for n in variables)
    edges = [v for n, v in variables.items() if n.split("/")[-1].startswith("p_")]
    assert len(edges) == 2
    for p in edges:  # folded: the non-edges i > j of p[d, i, j] are stored as zeros
        assert np.all(p[:, np.tril(np.ones(p.shape[1:]), -1).astype(bool)] == 0)
    table = pq.read_table(paths["test"]).slice(0, 500)
    raw = arrow_to_serving(table, run.spec)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["probability"]
    in_process = predict_split(run.model, paths["test"], run.spec)[:500]
    np.testing.assert_allclose(served.numpy().ravel(), in_process, atol=1e-5)
