"""``tfctr train`` as a Python function: fit the spec, train with ``model.fit``, write an exact-metric run dir.

A run directory holds:

* ``spec.json``: the fitted FeatureSpec;
* ``model.keras``: the trained model (the epoch ``ModelSelection`` kept: best validation AUC − logloss by
  default);
* ``config.json``: model name, hyper-parameters, training arguments and library versions;
* ``metrics.json``: exact AUC and logloss over the whole validation (and test) split, computed with
  ``training=False``, the Bayes-optimal reference of the same rows when the data carries the true CTR, and
  training examples/second;
* ``logs/`` (TensorBoard) and, while training, ``backup/`` (``BackupAndRestore``: a killed run started again
  with the same arguments resumes from its last finished epoch).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfctr._version import __version__
from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.data.parquet import oracle_column_of, parquet_dataset, read_columns, read_schema, shard_rows
from tfctr.defaults import DEFAULT_CLIPNORM, DEFAULT_EPOCHS, DEFAULT_PATIENCE
from tfctr.features import FeatureSpec
from tfctr.hardware import precision_note
from tfctr.metrics import evaluate
from tfctr.models import build, canonical_hyper_parameters, hyper_parameters, training_defaults
from tfctr.runs import TrainResult, prepare_run_dir, save_run
from tfctr.training import distribute
from tfctr.training.bilevel import BilevelTraining, routing_trainer
from tfctr.training.callbacks import TrainingThroughput, annealing_for
from tfctr.training.regularization import add_network_l2
from tfctr.training.runtime import Runtime
from tfctr.training.selection import DEFAULT_MONITOR, ModelSelection
from tfctr.training.signals import MethodSignals, StepScalars, first_features, write_exact_metrics
from tfctr.utils import set_seed


def count_rows(paths) -> int:
    return shard_rows(paths, 1, 0)


def predict_split(model: tf.keras.Model, paths, spec: FeatureSpec, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities of every row of ``paths``, in file order, with ``training=False``."""
    dataset = parquet_dataset(paths, spec, batch_size=batch_size, with_label=False)
    return model.predict(dataset, verbose=0).reshape(-1)


def exact_metrics(model, paths, spec: FeatureSpec, oracle_column: str | None = None) -> dict:
    """Exact AUC/logloss of ``model`` on a split; with ``oracle_column`` also those of the true CTR."""
    predictions = predict_split(model, paths, spec)
    has_oracle = oracle_column is not None and oracle_column in read_schema(paths).names
    columns = read_columns(paths, [spec.label] + ([oracle_column] if has_oracle else []))
    result = {"model": evaluate(columns[spec.label], predictions)}
    if has_oracle:
        result["bayes_optimal"] = evaluate(columns[spec.label], columns[oracle_column])
    return result


def resolve_oracle(train, oracle_column: str | None) -> str | None:
    """The column holding the true CTR: ``oracle_column``, else the one the training files' metadata names
    (tfctr's synthetic data, ``tfctr.data.parquet.oracle_column_of``), else None. A real column of any name is a
    feature unless named here."""
    return oracle_column or oracle_column_of(train)


def resolve_spec(train, spec=None, label="label", overrides=None, exclude=(), oracle_column=None,
                 seed=0) -> FeatureSpec:
    """The fitted spec of a run: ``spec`` itself or loaded from its JSON path, or inferred from the training
    data (``overrides``, ``exclude`` and the oracle column left out: ``infer_spec`` leaves out the one the files'
    metadata names, ``oracle_column`` names another); fitted on the training split unless it already is."""
    if spec is None:
        named = oracle_column and oracle_column in read_schema(train).names and oracle_column not in exclude
        spec = infer_spec(train, label=label, overrides=overrides,
                          exclude=list(exclude) + ([oracle_column] if named else []))
    elif not isinstance(spec, FeatureSpec):
        spec = FeatureSpec.load(spec)
    if not spec.fitted:  # an inferred spec, or one written by ``tfctr spec`` and edited
        fit_spec(spec, train, seed=seed)
    return spec


def resumed_epoch(backup_dir: Path) -> int:
    """The epoch a run restarts at: 0, or after a kill one past the last epoch ``BackupAndRestore`` checkpointed in
    ``backup_dir`` (the epoch number it saves with the model)."""
    checkpoint = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if checkpoint is None:
        return 0
    return int(tf.train.load_variable(checkpoint, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")) + 1


def announce(verbose, command: str, stage: int, stages: int, what: str):
    """Prints which stage of a multi-stage command starts (``tfctr distill: stage 1/2: ...``)."""
    if verbose:
        print(f"tfctr {command}: stage {stage}/{stages}: {what}", flush=True)


def compile_ctr(net: tf.keras.Model, learning_rate: float, clipnorm: float | None = DEFAULT_CLIPNORM):
    """Adam on binary cross-entropy, with AUC and logloss metrics (what ``ModelSelection`` reads); the gradient
    is clipped to a global norm of ``clipnorm`` (None = no clipping)."""
    net.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
        loss=tf.keras.losses.BinaryCrossentropy(),
        metrics=[tf.keras.metrics.AUC(name="auc"), tf.keras.metrics.BinaryCrossentropy(name="logloss")],
    )


def fit_with_early_stopping(net, train_data, valid_data, run_dir: Path, epochs: int, patience: int,
                            train_rows: int, callbacks=None, verbose: int = 1, steps_per_epoch: int | None = None,
                            validation_steps: int | None = None, monitor: str = DEFAULT_MONITOR,
                            lr_reductions: int = 1, log_every: int | None = None) -> dict:
    """``net.fit`` with the run directory's backup (resumable), ``ModelSelection`` on ``monitor`` (best epoch's
    weights kept; after ``patience`` epochs without improvement the learning rate is divided by 10 up to
    ``lr_reductions`` times, then training stops), TensorBoard logs and throughput; returns the ``"training"``
    entry of ``metrics.json`` (with the ``"selection"`` record: selected epoch, scores, why it stopped).
    ``train_rows``: rows of one epoch; ``steps_per_epoch``/``validation_steps`` for repeated cluster inputs.
    TensorBoard gets each epoch's losses, metrics and the methods' own signals (``MethodSignals``), and with
    ``log_every`` the training loss and metrics every that many steps too."""
    throughput = TrainingThroughput(train_rows)
    # the selection's state is written before the backup's checkpoint of the same epoch (see ModelSelection)
    selection = ModelSelection(monitor, patience, reductions=lr_reductions, state_dir=run_dir / "backup" / "selection",
                               write_state=distribute.ClusterRole.from_environment().is_chief)
    callbacks = [
        selection,
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        MethodSignals(first_features(valid_data)),
        tf.keras.callbacks.TensorBoard(str(run_dir / "logs"), update_freq="epoch"),
        throughput,
    ] + ([StepScalars(run_dir / "logs" / "train", log_every)] if log_every else []) + list(callbacks or [])
    history = net.fit(train_data, validation_data=valid_data, epochs=epochs, callbacks=callbacks, verbose=verbose,
                      steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
    # finished: nothing left to resume. The chief removes the folder once every worker is past its last backup
    # (a slower worker may still be writing it); other workers only remove their own empty copies
    distribute.wait_for_workers(net.distribute_strategy)
    if distribute.ClusterRole.from_environment().is_chief:
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            (run_dir / "backup").rmdir()
    summary = selection.summary()
    return {"examples_per_second": throughput.examples_per_second,
            "epochs_run": selection.epochs_seen, "epochs_run_since_resume": len(history.history.get("loss", [])),
            "train_rows": throughput.rows_per_epoch,
            "selected_val_auc": summary["selected_val_auc"], "selected_val_logloss": summary["selected_val_logloss"],
            "selection": summary}


def split_metrics(net, spec: FeatureSpec, valid, test=None, oracle_column: str | None = None) -> dict:
    """Exact metrics of ``net`` on the validation split and, when given, the test split."""
    metrics = {"valid": exact_metrics(net, valid, spec, oracle_column)}
    if test is not None:
        metrics["test"] = exact_metrics(net, test, spec, oracle_column)
    return metrics


def write_run(run_dir: Path, net: tf.keras.Model, spec: FeatureSpec, metrics: dict, config: dict):
    """Writes a finished run: its files (``tfctr.runs.save_run``) and the exact metrics of ``metrics.json`` to
    its TensorBoard logs (``logs/exact``)."""
    save_run(run_dir, net, spec, metrics, dict(config, versions={"tfctr": __version__,
                                                                  "tensorflow": tf.__version__}))
    selection = metrics.get("training", {}).get("selection", {})
    write_exact_metrics(run_dir / "logs", metrics, int(selection.get("selected_epoch") or 0))


def train(
    train: str,
    valid: str,
    out: str,
    model: str = "dcnv2",
    test: str | None = None,
    label: str = "label",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 1024,
    learning_rate: float | None = None,
    embedding_dim: int | None = None,
    seed: int = 0,
    patience: int = DEFAULT_PATIENCE,
    monitor: str = DEFAULT_MONITOR,
    lr_reductions: int = 1,
    clipnorm: float | None = DEFAULT_CLIPNORM,
    l2_net: float = 0.0,
    routing: str = "joint",
    router_learning_rate: float = 1e-3,
    router_every: int = 1,
    anneal_steps: int | None = None,
    spec: FeatureSpec | str | None = None,
    overrides: dict | None = None,
    exclude: list | tuple = (),
    oracle_column: str | None = None,
    hyper_params: dict | None = None,
    shuffle_buffer: int = 262_144,
    callbacks: list | None = None,
    verbose: int = 1,
    strategy: str = "default",
    mixed_precision: bool = False,
    min_shard_bytes: int = 1 << 20,
    overwrite: bool = False,
    log_every: int | None = None,
) -> TrainResult:
    """Trains model ``model`` on Parquet data and writes the run directory ``out``.

    Args:
        train, valid, test: Parquet files/directories/globs of the splits (test optional).
        out: the run directory (created; an existing backup in it is resumed).
        model: a registered model name (``tfctr.models.available()``).
        label: label column (0/1).
        epochs, batch_size, learning_rate: Adam training (``learning_rate`` None: the model's recommended rate,
            ``tfctr.models.training_defaults(model)``, else 1e-3).
        patience, monitor, lr_reductions: model selection (``ModelSelection``): the epoch with the best
            validation ``monitor`` (``"auc"``, ``"logloss"`` or ``"auc-logloss"``) is kept; after ``patience``
            epochs without improvement the learning rate is divided by 10 (``lr_reductions`` times), then
            training stops. ``metrics.json`` records the selected epoch and why training ended.
        clipnorm: the gradient is clipped to this global norm (None: no clipping).
        l2_net: λ of an L2 penalty on the network weights (every kernel, not the embeddings; see
            ``tfctr.training.regularization``); embedding regularisation is the model's ``l2_embedding``.
        routing, router_learning_rate, router_every: for models with routers (adaensemble): ``"joint"`` trains
            them with everything else on the training loss; ``"bilevel"`` (``BilevelTraining``) updates them with
            Adam(``router_learning_rate``) on validation batches, every ``router_every``-th step, and the rest on
            training batches. Bi-level runs under the ``"default"`` and ``"mirrored"`` strategies.
        anneal_steps: start the sparse MoE layers dense and drop one expert per example every ``anneal_steps``
            training steps down to their k (``TopKAnnealing``; resumes with the run).
        embedding_dim: D, for models that embed (default: the model's own default).
        seed: seeds weights initialisation and shuffling.
        spec: a fitted FeatureSpec (or a path to its JSON); by default inferred from the training schema
            (with ``overrides`` and ``exclude``) and fitted on the training split.
        oracle_column: a column holding the true click probability: excluded from the features, its AUC/logloss
            reported as the Bayes-optimal reference. By default the one the training files' metadata names
            (tfctr's synthetic writer names ``true_ctr``); other data has none unless given.
        hyper_params: further hyper-parameters of the model builder.
        callbacks: extra Keras callbacks for ``fit`` (run after the backup of each epoch).
        strategy: a ``tfctr.training.distribute`` strategy name: ``"default"``, ``"mirrored"`` (every local GPU),
            ``"multi_worker"`` or ``"parameter_server"`` (the cluster in ``TF_CONFIG``; every task runs the same
            call: under ``parameter_server`` worker and ps tasks serve and never return, the chief trains).
            ``batch_size`` is the global batch (split over all replicas) except under ``parameter_server``,
            where it is the batch of one worker's asynchronous step. Only the chief writes the run directory;
            other workers return their metrics of training only.
        mixed_precision: compute in float16 (GPU) / bfloat16 (CPU) with float32 variables; logits, probabilities
            and losses stay float32.
        min_shard_bytes: under ``parameter_server``, variables of at least twice this size are split row-wise
            over the parameter servers.
        overwrite: replace a finished run in ``out`` (without it that is an error; a killed run, which still has
            its ``backup/``, is resumed either way).
        log_every: also write the training loss and metrics to TensorBoard every that many steps (default: once
            an epoch). Every run's ``logs/`` holds each epoch's metrics, the learning rate and the methods' own
            signals (``tfctr.training.signals``), and ``logs/exact`` the exact metrics of ``metrics.json``.
    """
    runtime = Runtime(strategy, mixed_precision, min_shard_bytes)
    set_seed(seed)
    run_dir = Path(out)
    if runtime.is_chief:
        prepare_run_dir(run_dir, overwrite)
    oracle_column = resolve_oracle(train, oracle_column)
    spec = resolve_spec(train, spec, label, overrides, exclude, oracle_column, seed)
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the arguments and the data have been checked
    if verbose and runtime.is_chief:
        print(f"tfctr train: {model} on {len(spec.features)} features\n{spec.describe()}\n"
              f"{precision_note(mixed_precision, len(tf.config.list_physical_devices('GPU')))}", flush=True)

    hp = canonical_hyper_parameters(model, dict(hyper_params or {}))
    if routing == "bilevel" and strategy in distribute.CLUSTER_STRATEGIES:
        raise ValueError(f"routing='bilevel' runs under the default or mirrored strategy, not {strategy!r}")
    learning_rate = learning_rate or training_defaults(model).get("learning_rate", 1e-3)
    if embedding_dim is not None and "embedding_dim" in hyper_parameters(model):
        hp["embedding_dim"] = embedding_dim

    def build_compiled():
        net = build(model, spec, **hp)
        add_network_l2(net, l2_net)
        trainer = routing_trainer(net, routing, router_learning_rate, router_every)
        compile_ctr(trainer, learning_rate, clipnorm)
        return trainer

    with runtime.scope():
        trainer = build_compiled()
    train_input, valid_input = runtime.inputs(train, valid, spec, batch_size, shuffle_buffer, seed, run_dir / "encoded",
                                              first_epoch=resumed_epoch(run_dir / "backup"))
    train_data = train_input.data
    if isinstance(trainer, BilevelTraining):
        train_data = BilevelTraining.pair(train_data, valid_input.data)
    callbacks = list(callbacks or []) + ([annealing_for(trainer, anneal_steps)] if anneal_steps else [])
    training = fit_with_early_stopping(trainer, train_data, valid_input.data, run_dir, epochs, patience,
                                       train_input.rows_per_epoch, callbacks, verbose, train_input.steps,
                                       valid_input.steps, monitor, lr_reductions, log_every)
    net = runtime.local(trainer.network if isinstance(trainer, BilevelTraining) else trainer, build_compiled)
    if not runtime.is_chief:
        return TrainResult(run_dir, net, spec, {"training": training})
    shutil.rmtree(run_dir / "encoded", ignore_errors=True)
    metrics = split_metrics(net, spec, valid, test, oracle_column)
    metrics["training"] = training
    config = {
        "model": model,
        "hyper_parameters": {**hyper_parameters(model), **hp},
        "training": dict(
            train=str(train), valid=str(valid), test=test and str(test), label=label, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, seed=seed, patience=patience, monitor=monitor,
            lr_reductions=lr_reductions, clipnorm=clipnorm, l2_net=l2_net, routing=routing,
            router_learning_rate=router_learning_rate, router_every=router_every, anneal_steps=anneal_steps,
            oracle_column=oracle_column, shuffle_buffer=shuffle_buffer, strategy=strategy,
            mixed_precision=mixed_precision, workers=runtime.workers, replicas=runtime.replicas,
            log_every=log_every),
    }
    write_run(run_dir, net, spec, metrics, config)
    return TrainResult(run_dir, net, spec, metrics)
