"""KD-DAGFM distillation: a frozen teacher's logits taught to a fast student, then fine-tuning on labels.

``Distiller`` is a ``tf.keras.Model`` whose ``train_step`` runs the teacher (frozen, ``training=False``) and the
student on the same batch and minimises, per example,

    L = α · BCE(y, σ(z_S)) + β · (z_T − z_S)²

(z = logits; α = 0.1, β = 921.6 as in the authors' configuration, so only their ratio matters much under Adam),
averaged over the global batch so the step is correct under any ``tf.distribute`` strategy. The student's
embedding table starts as a copy of the teacher's and stays frozen while distilling (the authors' student shares
the teacher's table with gradients stopped); ``fit``, callbacks and early stopping work as for any model.

``distill`` runs the whole KD-DAGFM / KD-DAGFM+ schedule from a saved teacher run: distil, then fine-tune the
student on labels alone with its embeddings trainable, writing a run directory for each stage. The student
is a plain tfctr model: what gets saved and exported has no teacher in it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfctr.data.parquet import parquet_dataset
from tfctr.defaults import DISTILL_EPOCHS, DISTILL_LEARNING_RATE, FINETUNE_EPOCHS, FINETUNE_LEARNING_RATE
from tfctr.features import FeatureSpec
from tfctr.models import build, hyper_parameters
from tfctr.models.inputs import EMBEDDING_LAYER
from tfctr.runs import TrainResult, load_run, prepare_run_dir
from tfctr.training.runtime import Runtime
from tfctr.training.selection import DEFAULT_MONITOR, monitor_score
from tfctr.training.steps import StepModel, bce_per_example, global_average, logit_of
from tfctr.training.train import (
    announce,
    compile_ctr,
    fit_with_early_stopping,
    resolve_oracle,
    split_metrics,
    write_run,
)
from tfctr.utils import set_seed


def copy_embedding(teacher: tf.keras.Model, student: tf.keras.Model, layer: str = EMBEDDING_LAYER):
    """Copies the teacher's embedding table into the student's (same spec and embedding dimension needed)."""
    source, target = teacher.get_layer(layer), student.get_layer(layer)
    source_shapes = [tuple(w.shape) for w in source.weights]
    target_shapes = [tuple(w.shape) for w in target.weights]
    if source_shapes != target_shapes:
        raise ValueError(f"copy_embedding: the teacher's '{layer}' has weights {source_shapes} but the student's "
                         f"has {target_shapes}; build the student from the teacher's spec and embedding_dim")
    target.set_weights(source.get_weights())


class Distiller(StepModel):
    """Distils ``teacher`` into ``student`` (see the module docstring for the loss).

    Args:
        student: a tfctr model (probability output with a ``"logit"`` layer) or a model returning logits.
        teacher: a trained tfctr model or any Keras model returning logits; it is never updated.
        alpha: weight of the label loss BCE(y, σ(z_S)).
        beta: weight of the logit-matching loss (z_T − z_S)².
        freeze_embedding: keep the student's layer ``embedding_layer`` fixed (as the paper's distillation stage).

    ``call`` returns the student's output, so ``predict`` and ``evaluate`` see the student. Metrics: ``loss``
    (the distillation loss), ``kd_mse`` (mean squared logit gap), ``logloss`` and ``auc`` of the student.
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, alpha: float = 0.1, beta: float = 921.6,
                 freeze_embedding: bool = True, embedding_layer: str = EMBEDDING_LAYER, **kwargs):
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(f"Distiller: alpha and beta must be >= 0 and not both 0, got {alpha}, {beta}")
        super().__init__(student, means=("kd_mse",), **kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.teacher_logit = logit_of(teacher)
        self.alpha, self.beta = float(alpha), float(beta)
        frozen = set()
        if freeze_embedding:
            frozen = {id(w) for w in student.get_layer(embedding_layer).weights}
        self.trained_variables = [w for w in student.trainable_variables if id(w) not in frozen]

    def _per_example_losses(self, x, y, training):
        target = tf.stop_gradient(tf.cast(self.teacher_logit(x, training=False), tf.float32))
        logit = self.logit(x, training)
        labels, bce = bce_per_example(y, logit)
        gap = tf.square(target - logit)[:, 0]
        return labels, logit, self.alpha * bce + self.beta * gap, gap

    def train_step(self, data):
        x, y = data[:2]
        with tf.GradientTape() as tape:
            labels, logit, per_example, gap = self._per_example_losses(x, y, training=True)
            loss = global_average(per_example, self.student.losses)
        self.optimizer.minimize(loss, self.trained_variables, tape=tape)
        return self.record(labels, logit, loss=per_example, kd_mse=gap)

    def test_step(self, data):
        x, y = data[:2]
        labels, logit, per_example, gap = self._per_example_losses(x, y, training=False)
        return self.record(labels, logit, loss=per_example, kd_mse=gap)


@dataclasses.dataclass
class DistillResult:
    """The run directories and models of each stage and the summary written to ``out/summary.json``."""

    distilled: TrainResult
    finetuned: TrainResult | None
    summary: dict


def teacher_gap(student: tf.keras.Model, teacher: tf.keras.Model, paths, spec, batch_size: int = 8192) -> dict:
    """How close the student's predictions are to the teacher's on every row of ``paths``: the RMS of the logit
    gap, the mean and largest absolute probability gap, and the correlation of the logits."""
    student_logit, teacher_logit = logit_of(student), logit_of(teacher)
    gaps, pairs = [], []
    for x in parquet_dataset(paths, spec, batch_size, with_label=False):
        s = tf.cast(student_logit(x, training=False), tf.float32).numpy().ravel()
        t = tf.cast(teacher_logit(x, training=False), tf.float32).numpy().ravel()
        gaps.append(s - t)
        pairs.append(np.stack([s, t]))
    gap, logits = np.concatenate(gaps), np.concatenate(pairs, axis=1)
    probability_gap = np.abs(1 / (1 + np.exp(-logits[0])) - 1 / (1 + np.exp(-logits[1])))
    return {"logit_rmse": float(np.sqrt(np.mean(gap ** 2))), "probability_mean_abs": float(probability_gap.mean()),
            "probability_max_abs": float(probability_gap.max()),
            "logit_correlation": float(np.corrcoef(logits)[0, 1])}


def _summary_row(net, metrics: dict) -> dict:
    row = {"parameters": int(net.count_params())}
    for split in ("valid", "test"):
        if split in metrics:
            row[split] = metrics[split]["model"]
    return row


def _embedding_dim(model: tf.keras.Model) -> int | None:
    """D of a model's field embedding table, None when it has none."""
    try:
        return int(model.get_layer(EMBEDDING_LAYER).output_shape[-1])
    except ValueError:
        return None


def _check_student_data(spec, teacher_spec, label: str, exclude) -> None:
    """The student reads the teacher's features: ``label``, a given ``spec`` and ``exclude`` must agree with it."""
    if label != teacher_spec.label:
        raise ValueError(f"distill: the teacher was trained on the label column '{teacher_spec.label}', not "
                         f"'{label}'; the student learns the same one (--label {teacher_spec.label})")
    names = [f.name for f in teacher_spec.features]
    if spec is not None:
        given = spec if isinstance(spec, FeatureSpec) else FeatureSpec.load(spec)
        if [f.name for f in given.features] != names or given.label != teacher_spec.label:
            raise ValueError("distill: the student uses the teacher's spec (its embeddings start as the teacher's); "
                             "the given spec has other features or another label")
    excluded = sorted(set(exclude) & set(names))
    if excluded:
        raise ValueError(f"distill: cannot exclude {excluded}: the teacher uses them as features")


def distill(
    teacher,
    train: str,
    valid: str,
    out: str,
    student: str = "dagfm",
    student_params: dict | None = None,
    test: str | None = None,
    label: str = "label",
    spec=None,
    exclude: list | tuple = (),
    embedding_dim: int | None = None,
    alpha: float = 0.1,
    beta: float = 921.6,
    epochs: int = DISTILL_EPOCHS,
    finetune_epochs: int = FINETUNE_EPOCHS,
    batch_size: int = 1024,
    learning_rate: float = DISTILL_LEARNING_RATE,
    finetune_learning_rate: float = FINETUNE_LEARNING_RATE,
    seed: int = 0,
    patience: int = 2,
    distill_monitor: str = "kd_mse",
    oracle_column: str | None = None,
    shuffle_buffer: int = 262_144,
    verbose: int = 1,
    strategy: str = "default",
    mixed_precision: bool = False,
    min_shard_bytes: int = 1 << 20,
    overwrite: bool = False,
    log_every: int | None = None,
) -> DistillResult:
    """Teacher → distilled student (``out/distilled``) → fine-tuned student (``out/finetuned``), as
    ``tfctr distill``.

    Args:
        teacher: a tfctr run directory (``tfctr train``'s output) or its ``TrainResult``; its spec is used for
            the student and the data.
        student: a registered model name (default ``"dagfm"``; give ``student_params={"hidden_units": [...]}``
            for the KD-DAGFM+ student).
        student_params: further hyper-parameters of the student (e.g. ``interaction_type``, ``num_layers``).
        label, spec, exclude: the data options of ``train``; the student reads the teacher's features, so they
            must agree with the teacher's spec (an error says where they do not).
        embedding_dim: the student's D. By default the teacher's: the student's table starts as a copy of the
            teacher's and stays frozen while distilling (the paper's setting). Another D (or a teacher without a
            field embedding, such as ``lr``) gives the student its own table, learnt during the distillation.
        alpha, beta: the distillation loss weights (see ``Distiller``).
        epochs: at most this many distillation epochs: model selection (``ModelSelection``) on
            ``distill_monitor`` with ``patience`` and one learning-rate reduction stops it when it has converged;
            ``"kd_mse"`` (default) keeps the epoch whose student is closest to the teacher on the validation
            split (``"auc-logloss"`` etc. select on the labels instead).
        finetune_epochs: KD-DAGFM+ fine-tuning epochs on labels alone, embeddings trainable (0 skips the stage);
            model selection keeps the best epoch, and the distilled weights when no epoch beats their validation
            AUC − logloss.
        learning_rate: Adam learning rate of the distillation; ``finetune_learning_rate`` (default 1e-4: the
            embeddings become trainable and a larger step overfits them at once) of the fine-tuning.
        strategy, mixed_precision, min_shard_bytes: where the stages run, as for ``train`` (``Runtime``).
        overwrite: replace a finished distillation in ``out`` (one with ``summary.json``); otherwise an error.
        log_every: TensorBoard also gets the training loss and metrics every that many steps (as ``train``).

    Every stage's run directory has the layout of ``tfctr train``'s, so ``tfctr export`` exports either
    student (``--run OUT`` exports the last stage). ``out/summary.json`` compares teacher, distilled and
    fine-tuned students (exact AUC/logloss, parameters, and ``valid_teacher_gap``: how close each student's
    logits and probabilities are to the teacher's on the validation split).
    """
    runtime = Runtime(strategy, mixed_precision, min_shard_bytes)
    set_seed(seed)
    out = Path(out)
    if runtime.is_chief:
        prepare_run_dir(out, overwrite, finished="summary.json")
    teacher_dir = teacher.run_dir if isinstance(teacher, TrainResult) else teacher
    oracle_column = resolve_oracle(train, oracle_column)
    with runtime.scope():
        # under a strategy the teacher's variables must be the strategy's: load it again inside its scope
        teacher_run = teacher if isinstance(teacher, TrainResult) and strategy == "default" else load_run(teacher_dir)
    _check_student_data(spec, teacher_run.spec, label, exclude)
    spec, teacher_model = teacher_run.spec, teacher_run.model
    hp = dict(student_params or {})
    teacher_dim = _embedding_dim(teacher_model)  # None: a teacher without a field embedding (e.g. lr)
    if "embedding_dim" in hyper_parameters(student):
        hp["embedding_dim"] = embedding_dim or hp.get("embedding_dim", teacher_dim) or \
            hyper_parameters(student)["embedding_dim"]
    shared_table = teacher_dim is not None and hp.get("embedding_dim", teacher_dim) == teacher_dim

    def build_student():
        return build(student, spec, **hp)

    with runtime.scope():
        net = build_student()
        if shared_table:
            copy_embedding(teacher_model, net)
        distiller = Distiller(net, teacher_model, alpha=alpha, beta=beta, freeze_embedding=shared_table)
        distiller.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    train_input, valid_input = runtime.inputs(train, valid, spec, batch_size, shuffle_buffer, seed, out / "encoded")
    config = {"model": student, "hyper_parameters": {**hyper_parameters(student), **hp},
              "teacher": str(teacher_run.run_dir),
              "training": dict(train=str(train), valid=str(valid), test=test and str(test), label=label,
                               epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                               patience=patience, oracle_column=oracle_column, shuffle_buffer=shuffle_buffer,
                               strategy=strategy, mixed_precision=mixed_precision, workers=runtime.workers,
                               replicas=runtime.replicas, shared_embedding=shared_table)}

    def fit_stage(name, trainer, stage_epochs, monitor=DEFAULT_MONITOR):
        stage_dir = out / name
        stage_dir.mkdir(parents=True, exist_ok=True)
        return stage_dir, fit_with_early_stopping(
            trainer, train_input.data, valid_input.data, stage_dir, stage_epochs, patience,
            train_input.rows_per_epoch, verbose=verbose, steps_per_epoch=train_input.steps,
            validation_steps=valid_input.steps, monitor=monitor, log_every=log_every)

    announce(verbose and runtime.is_chief, "distill", 1, 2 if finetune_epochs > 0 else 1,
             f"distil the teacher into {student} (at most {epochs} epochs, selected on {distill_monitor})")
    stage_dir, training = fit_stage("distilled", distiller, epochs, distill_monitor)
    net = runtime.local(net, build_student)
    # every worker runs both stages (synchronous steps); only the chief evaluates and writes, on local copies
    local_teacher = load_run(teacher_dir).model if runtime.clustered else teacher_model
    metrics, summary = {"training": training}, {}
    if runtime.is_chief:
        metrics = dict(split_metrics(net, spec, valid, test, oracle_column), training=training)
        write_run(stage_dir, net, spec, metrics, dict(config, stage="distilled", alpha=alpha, beta=beta))
        summary = {"teacher": _summary_row(local_teacher, split_metrics(local_teacher, spec, valid, test)),
                   "distilled": dict(_summary_row(net, metrics),
                                     valid_teacher_gap=teacher_gap(net, local_teacher, valid, spec))}
    distilled = TrainResult(stage_dir, net, spec, metrics)
    finetuned = None
    if finetune_epochs > 0:
        announce(verbose and runtime.is_chief, "distill", 2, 2,
                 f"fine-tune the student on labels (at most {finetune_epochs} epochs)")
        with runtime.scope():
            tuned = build_student()
            tuned.set_weights(net.get_weights())
            compile_ctr(tuned, finetune_learning_rate)
        start = tuned.evaluate(valid_input.data, steps=valid_input.steps, return_dict=True, verbose=0)
        start_score = monitor_score(DEFAULT_MONITOR, {"val_" + k: v for k, v in start.items()})
        stage_dir, training = fit_stage("finetuned", tuned, finetune_epochs)
        tuned = runtime.local(tuned, build_student)
        # fine-tuning keeps the distilled student when no epoch of it improves the validation selection score
        training["start_val_auc"] = float(start["auc"])
        training["start_val_score"] = start_score
        training["kept_distilled"] = bool(training["selection"]["selected_score"] <= start_score)
        if training["kept_distilled"]:
            tuned.set_weights(net.get_weights())
        tuned_metrics = {"training": training}
        if runtime.is_chief:
            tuned_metrics = dict(split_metrics(tuned, spec, valid, test, oracle_column), training=training)
            tuned_config = dict(config, stage="finetuned", distilled=str(distilled.run_dir))
            tuned_config["training"] = dict(config["training"], epochs=finetune_epochs,
                                            learning_rate=finetune_learning_rate)
            write_run(stage_dir, tuned, spec, tuned_metrics, tuned_config)
            summary["finetuned"] = dict(_summary_row(tuned, tuned_metrics),
                                        valid_teacher_gap=teacher_gap(tuned, local_teacher, valid, spec))
        finetuned = TrainResult(stage_dir, tuned, spec, tuned_metrics)
    if runtime.is_chief:
        shutil.rmtree(out / "encoded", ignore_errors=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return DistillResult(distilled, finetuned, summary)
