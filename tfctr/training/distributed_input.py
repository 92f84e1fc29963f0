"""Training and validation input for each ``tf.distribute`` strategy (``tfctr.training.distribute``).

* ``default``/``mirrored``: one ``parquet_dataset`` of global batches; Keras splits them over local replicas.
* ``multi_worker``: every worker streams its own shard of the Parquet input (whole files when there are at least
  as many files as workers, otherwise every n-th row) in per-replica batches. Synchronous training needs the same
  number of steps on every worker, so an epoch is ``min over workers (shard rows // per-worker batch)`` steps:
  every epoch each worker reads the same rows of its shard, reshuffled, leaving out fewer than one batch.
* ``parameter_server``: the dataset runs on remote workers, which cannot call back into Python, so the
  coordinator first writes the encoded rows as a ``tf.data`` snapshot (``Dataset.save``) under the run
  directory (on a real cluster that directory must be shared storage) and each worker reads it
  (``Dataset.load``), shuffles it in its own random order and repeats it; an epoch is ``rows // batch_size``
  asynchronous steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

from tfctr.data.parquet import DataError, parquet_dataset, shard_rows
from tfctr.features import FeatureSpec
from tfctr.training.distribute import ClusterRole

SNAPSHOT_BATCH = 8192

# evaluation runs no backward pass, so it reads at least this many rows per step (fewer, larger steps)
EVALUATION_BATCH_ROWS = 4096


@dataclasses.dataclass
class Input:
    """What ``model.fit`` takes for one split: ``data`` and ``steps`` (steps per epoch; None = one full pass),
    and the rows one epoch reads."""

    data: object
    steps: int | None
    rows_per_epoch: int


def split_inputs(strategy_name: str, train, valid, spec: FeatureSpec, batch_size: int, shuffle_buffer: int,
                 seed: int, work_dir: Path, first_epoch: int = 0) -> tuple[Input, Input]:
    """Training and validation ``Input`` of the splits ``train`` and ``valid`` under ``strategy_name``; the
    training rows are shuffled as in epoch ``first_epoch`` first (a resumed run), except under
    ``parameter_server``, whose workers draw their own orders."""
    if strategy_name == "multi_worker":
        role = ClusterRole.from_environment()
        return (sharded_input(train, spec, batch_size, role, shuffle_buffer, seed, "training", first_epoch),
                sharded_input(valid, spec, batch_size, role, 0, seed, "validation"))
    if strategy_name == "parameter_server":
        return (snapshot_input(train, spec, batch_size, work_dir / "train", shuffle_buffer),
                snapshot_input(valid, spec, batch_size, work_dir / "valid", 0))
    return (Input(parquet_dataset(train, spec, batch_size, shuffle=True, shuffle_buffer=shuffle_buffer, seed=seed,
                                  first_epoch=first_epoch), None, shard_rows(train, 1, 0)),
            Input(parquet_dataset(valid, spec, max(batch_size, EVALUATION_BATCH_ROWS)), None, shard_rows(valid, 1, 0)))


def sharded_input(paths, spec: FeatureSpec, batch_size: int, role: ClusterRole, shuffle_buffer: int, seed: int,
                  split: str, first_epoch: int = 0) -> Input:
    """Per-worker shards of ``paths`` with equal steps on every worker (``multi_worker``); no shuffling when
    ``shuffle_buffer`` is 0."""
    workers = len(role.synchronous_workers)
    if batch_size % workers:
        raise ValueError(f"batch_size {batch_size} (the global batch) must be divisible by the {workers} workers")
    per_worker = batch_size // workers
    steps = min(shard_rows(paths, workers, w) for w in range(workers)) // per_worker
    if steps == 0:
        raise DataError(f"{split} data {paths}: a worker's shard has fewer rows than its batch of {per_worker} "
                        f"(global batch {batch_size} over {workers} workers); use a smaller batch_size")

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        replicas_per_worker = context.num_replicas_in_sync // context.num_input_pipelines
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        dataset = parquet_dataset(paths, spec, context.get_per_replica_batch_size(batch_size),
                                  shuffle=shuffle_buffer > 0, shuffle_buffer=max(shuffle_buffer, 1), seed=seed,
                                  shard=shard, drop_remainder=True, first_epoch=first_epoch)
        return dataset.take(steps * replicas_per_worker).repeat()

    return Input(tf.keras.utils.experimental.DatasetCreator(dataset_fn), steps, steps * batch_size)


def snapshot_input(paths, spec: FeatureSpec, batch_size: int, directory: Path, shuffle_buffer: int) -> Input:
    """``paths`` encoded into a ``tf.data`` snapshot at ``directory``, read by every parameter-server worker in
    its own shuffled order (``shuffle_buffer`` 0: file order)."""
    rows = shard_rows(paths, 1, 0)
    steps = rows // batch_size
    if steps == 0:
        raise DataError(f"data {paths} has {rows} rows, fewer than one batch of {batch_size}")
    encoded = parquet_dataset(paths, spec, SNAPSHOT_BATCH)
    encoded.save(str(directory))
    element_spec = encoded.element_spec

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = tf.data.Dataset.load(str(directory), element_spec).unbatch()
        if shuffle_buffer:
            dataset = dataset.shuffle(shuffle_buffer)  # unseeded: every worker draws its own order
        return dataset.repeat().batch(batch_size, drop_remainder=True).prefetch(2)

    return Input(tf.keras.utils.experimental.DatasetCreator(dataset_fn), steps, steps * batch_size)
