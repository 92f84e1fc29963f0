"""OptFusion's one-shot search, derive and retrain (``tfctr search-fusion``).

``FusionSearch`` is a ``tf.keras.Model`` around the ``optfusion_search`` supernet whose ``train_step`` does one
forward and backward pass of the BCE per batch and applies the same gradients with two optimizers: the model
optimizer (``compile(optimizer=...)``) to the network weights, and ``arch_optimizer`` to the architecture
weights α (connections) and β (operations), as the authors' single-level search. ``search_fusion`` runs
search → derive → retrain; ``algorithm="sequential"`` searches the connections first (β frozen at uniform
operation weights), then the operations (α frozen), the ablation of the paper.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import tensorflow as tf

from tfctr.layers.validation import choice
from tfctr.models import build
from tfctr.models.fusion import derive, warm_start
from tfctr.models.inputs import EMBEDDING_LAYER
from tfctr.runs import TrainResult, prepare_run_dir
from tfctr.training.runtime import Runtime
from tfctr.training.steps import StepModel, bce_per_example, global_average
from tfctr.training.train import (
    announce,
    compile_ctr,
    fit_with_early_stopping,
    resolve_oracle,
    resolve_spec,
    split_metrics,
    write_run,
)
from tfctr.utils import set_seed

# search_fusion's selection → (the supernet's selection while searching, derive's mode)
SELECTIONS = {"soft": ("soft", "soft"), "hard": ("soft", "hard"), "one_hot": ("one_hot", "hard")}


class FusionSearch(StepModel):
    """Trains a supernet model (layer ``"fusion"`` a ``FusionSupernet``) and its architecture jointly.

    Args:
        network: the ``optfusion_search`` model (probability output with a ``"logit"`` layer).
        arch_optimizer: optimizer of α and β (default Adam(0.1), the authors' Avazu setting).
        train_alpha, train_beta: which architecture weights are searched (the sequential ablation freezes one).
        embedding_optimizer: optimizer of the embedding table (default: the model optimizer), as the authors'
            code, which gives embeddings their own learning rate.

    Metrics: ``loss`` (BCE), ``logloss``, ``auc``; ``call`` returns the network's probability.
    """

    def __init__(self, network: tf.keras.Model, arch_optimizer=None, train_alpha: bool = True,
                 train_beta: bool = True, embedding_optimizer=None, **kwargs):
        super().__init__(network, **kwargs)
        self.supernet = network.get_layer("fusion")
        self.arch_optimizer = arch_optimizer or tf.keras.optimizers.Adam(0.1)
        self.embedding_optimizer = embedding_optimizer
        architecture = {id(self.supernet.alpha), id(self.supernet.beta)}
        tables = {id(w) for w in network.get_layer(EMBEDDING_LAYER).trainable_weights} if embedding_optimizer else set()
        self.embedding_variables = [v for v in network.trainable_variables if id(v) in tables]
        self.weight_variables = [v for v in network.trainable_variables
                                 if id(v) not in architecture and id(v) not in tables]
        self.arch_variables = ([self.supernet.alpha] if train_alpha else []) + \
            ([self.supernet.beta] if train_beta else [])

    def train_step(self, data):
        x, y = data[:2]
        groups = [(self.optimizer, self.weight_variables), (self.embedding_optimizer, self.embedding_variables),
                  (self.arch_optimizer, self.arch_variables)]
        groups = [(optimizer, variables) for optimizer, variables in groups if variables]
        with tf.GradientTape() as tape:
            logit = self.logit(x, training=True)
            labels, per_example = bce_per_example(y, logit)
            loss = global_average(per_example, self.network.losses)
        gradients = tape.gradient(loss, [variables for _, variables in groups])
        for (optimizer, variables), grads in zip(groups, gradients):  # one backward pass, one optimizer per group
            optimizer.apply_gradients(zip(grads, variables))
        return self.record(labels, logit, loss=per_example)


def _search(network, train_input, valid_input, stage_dir, epochs, patience, learning_rate, arch_learning_rate,
            embedding_learning_rate, verbose, runtime, log_every, **flags):
    with runtime.scope():
        embedding_optimizer = tf.keras.optimizers.Adam(embedding_learning_rate) if embedding_learning_rate else None
        search = FusionSearch(network, tf.keras.optimizers.Adam(arch_learning_rate),
                              embedding_optimizer=embedding_optimizer, **flags)
        search.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    stage_dir.mkdir(parents=True, exist_ok=True)
    return fit_with_early_stopping(search, train_input.data, valid_input.data, stage_dir, epochs, patience,
                                   train_input.rows_per_epoch, verbose=verbose, steps_per_epoch=train_input.steps,
                                   validation_steps=valid_input.steps, log_every=log_every)


def search_fusion(
    train: str,
    valid: str,
    out: str,
    test: str | None = None,
    num_levels: int = 3,
    selection: str = "soft",
    algorithm: str = "one_shot",
    retrain_init: str = "supernet",
    embedding_dim: int = 16,
    epochs: int = 5,
    retrain_epochs: int = 5,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    arch_learning_rate: float = 0.1,
    embedding_learning_rate: float | None = None,
    l2_embedding: float = 0.0,
    retrain_learning_rate: float | None = None,
    seed: int = 0,
    patience: int = 1,
    spec=None,
    label: str = "label",
    exclude: list | tuple = (),
    oracle_column: str | None = None,
    shuffle_buffer: int = 262_144,
    verbose: int = 1,
    strategy: str = "default",
    mixed_precision: bool = False,
    min_shard_bytes: int = 1 << 20,
    overwrite: bool = False,
    log_every: int | None = None,
) -> TrainResult:
    """Search (``out/search``), derive (``out/architecture.json``) and retrain (the run directory ``out``).

    Args:
        num_levels: n, the (cross, MLP) levels of the search space.
        selection: how operations are chosen (``SELECTIONS``): ``"soft"`` searches the softmax(β) mixture and
            keeps it; ``"hard"`` (the authors' Hard) searches the same soft mixture and keeps each node's argmax
            operation; ``"one_hot"`` searches with a straight-through one-hot of β (our variant) and keeps it.
        algorithm: ``"one_shot"`` (connections and operations together) or ``"sequential"`` (connections, then
            operations; ``epochs`` each).
        retrain_init: ``"supernet"`` (start from the search weights, the authors' default) or ``"scratch"``.
        epochs, retrain_epochs, learning_rate, arch_learning_rate, retrain_learning_rate: Adam schedules of the
            search (network and α/β) and of the retraining (default: ``learning_rate``); model selection
            (``ModelSelection`` on validation AUC − logloss) with ``patience`` (1, as the authors).
        embedding_learning_rate: the search's Adam rate of the embedding table (default: ``learning_rate``; the
            authors' code gives embeddings their own rate and regularisation).
        l2_embedding: λ of the L2 penalty on the embedding rows each batch uses, in search and retraining.
        spec, label, exclude, oracle_column: the data options of ``train``.
        strategy, mixed_precision, min_shard_bytes: where search and retraining run, as for ``train``
            (``Runtime``).
        overwrite: replace a finished run in ``out``; otherwise an error (a killed one resumes).
        log_every: TensorBoard also gets the training loss and metrics every that many steps (as ``train``); the
            search's logs hold α and β of every node each epoch (``tfctr.training.signals``).

    Returns the retrained run (``tfctr export --run OUT`` exports it: a plain model without α or β); its
    ``metrics.json`` also records the search and retrain seconds.
    """
    supernet_selection, derive_mode = SELECTIONS[choice("search_fusion", "selection", selection, SELECTIONS)]
    choice("search_fusion", "algorithm", algorithm, {"one_shot", "sequential"})
    choice("search_fusion", "retrain_init", retrain_init, {"supernet", "scratch"})
    runtime = Runtime(strategy, mixed_precision, min_shard_bytes)
    set_seed(seed)
    out = Path(out)
    if runtime.is_chief:
        prepare_run_dir(out, overwrite)
    oracle_column = resolve_oracle(train, oracle_column)
    spec = resolve_spec(train, spec, label, None, exclude, oracle_column, seed)
    out.mkdir(parents=True, exist_ok=True)
    train_input, valid_input = runtime.inputs(train, valid, spec, batch_size, shuffle_buffer, seed, out / "encoded")

    def build_supernet():
        return build("optfusion_search", spec, embedding_dim=embedding_dim, num_levels=num_levels,
                     selection=supernet_selection, l2_embedding=l2_embedding)

    with runtime.scope():
        network = build_supernet()
    common = dict(train_input=train_input, valid_input=valid_input, epochs=epochs, patience=patience,
                  learning_rate=learning_rate, arch_learning_rate=arch_learning_rate,
                  embedding_learning_rate=embedding_learning_rate, verbose=verbose, runtime=runtime,
                  log_every=log_every)
    stages = 2 if algorithm == "one_shot" else 3
    say = verbose and runtime.is_chief
    start = time.perf_counter()
    if algorithm == "one_shot":
        announce(say, "search-fusion", 1, stages, f"search connections and operations (at most {epochs} epochs)")
        searched = [_search(network, stage_dir=out / "search", **common)]
    else:
        supernet = network.get_layer("fusion")
        supernet.beta.assign(tf.zeros_like(supernet.beta))  # uniform operations while the connections are searched
        announce(say, "search-fusion", 1, stages, f"search the connections (at most {epochs} epochs)")
        searched = [_search(network, stage_dir=out / "search_connections", train_beta=False, **common)]
        announce(say, "search-fusion", 2, stages, f"search the operations (at most {epochs} epochs)")
        searched.append(_search(network, stage_dir=out / "search_operations", train_alpha=False, **common))
    search_seconds = time.perf_counter() - start
    network = runtime.local(network, build_supernet)

    architecture = derive(network.get_layer("fusion"), derive_mode)
    supernet = network.get_layer("fusion")
    if runtime.is_chief:
        (out / "architecture.json").write_text(json.dumps(architecture, indent=1))
        (out / "search_weights.json").write_text(json.dumps(
            {"nodes": supernet.names, "alpha": supernet.alpha.numpy().tolist(),
             "beta": supernet.beta.numpy().tolist()}))

    def build_derived():
        return build("optfusion", spec, architecture=architecture, embedding_dim=embedding_dim,
                     l2_embedding=l2_embedding)

    set_seed(seed)
    with runtime.scope():
        derived = build_derived()
        if retrain_init == "supernet":
            warm_start(derived, network)
        compile_ctr(derived, retrain_learning_rate or learning_rate)
    announce(say, "search-fusion", stages, stages,
             f"retrain the derived architecture from the {retrain_init} (at most {retrain_epochs} epochs)")
    start = time.perf_counter()
    training = fit_with_early_stopping(derived, train_input.data, valid_input.data, out, retrain_epochs, patience,
                                       train_input.rows_per_epoch, verbose=verbose,
                                       steps_per_epoch=train_input.steps, validation_steps=valid_input.steps,
                                       log_every=log_every)
    retrain_seconds = time.perf_counter() - start
    derived = runtime.local(derived, build_derived)
    if not runtime.is_chief:
        return TrainResult(out, derived, spec, {"training": training})
    shutil.rmtree(out / "encoded", ignore_errors=True)
    metrics = dict(split_metrics(derived, spec, valid, test, oracle_column), training=training,
                   search={"seconds": search_seconds, "stages": searched, "retrain_seconds": retrain_seconds})
    config = {"model": "optfusion", "hyper_parameters": {"architecture": architecture, "embedding_dim": embedding_dim},
              "search": dict(num_levels=num_levels, selection=selection, supernet_selection=supernet_selection,
                             derive_mode=derive_mode, algorithm=algorithm,
                             retrain_init=retrain_init, epochs=epochs, retrain_epochs=retrain_epochs,
                             learning_rate=learning_rate, arch_learning_rate=arch_learning_rate,
                             embedding_learning_rate=embedding_learning_rate, l2_embedding=l2_embedding,
                             retrain_learning_rate=retrain_learning_rate, seed=seed, patience=patience),
              "training": dict(train=str(train), valid=str(valid), test=test and str(test), label=label,
                               batch_size=batch_size, oracle_column=oracle_column, strategy=strategy,
                               mixed_precision=mixed_precision, workers=runtime.workers, replicas=runtime.replicas)}
    write_run(out, derived, spec, metrics, config)
    return TrainResult(out, derived, spec, metrics)
