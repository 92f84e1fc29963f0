"""``tf.distribute`` strategies by name, the process's role in a cluster, and the mixed-precision policy.

Strategies (``strategy(name)``):

* ``"default"``: no distribution.
* ``"mirrored"``: synchronous data parallelism over every local GPU (or the CPU devices) of one host.
* ``"multi_worker"``: synchronous data parallelism over the hosts of ``TF_CONFIG`` (``chief``/``worker`` tasks),
  all-reducing gradients every step; every worker runs the same program.
* ``"parameter_server"``: asynchronous training: variables live on the ``ps`` tasks (tables larger than
  ``min_shard_bytes`` split row-wise over them), ``worker`` tasks run steps dispatched by the ``chief``
  (the coordinator), which runs ``model.fit``. Workers and parameter servers only serve
  (``serve_cluster_task``).

Global batch semantics: for ``mirrored`` and ``multi_worker`` ``batch_size`` is the global batch of one
optimizer step, split evenly over all replicas of all workers. Under ``parameter_server`` steps are asynchronous
and ``batch_size`` is the batch of one worker's step. Losses of tfctr's custom ``train_step``s are averaged over
the global batch (``tf.nn.compute_average_loss``) and layer losses scaled once per replica
(``scale_regularization_loss``), so a synchronous step under a strategy equals the same step on one device.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf

from tfctr.defaults import STRATEGIES
from tfctr.utils import global_policy

_MULTI_WORKER = None  # this process's MultiWorkerMirroredStrategy (``strategy("multi_worker")``)
CLUSTER_STRATEGIES = ("multi_worker", "parameter_server")


@dataclasses.dataclass(frozen=True)
class ClusterRole:
    """This process's task in ``TF_CONFIG`` (``task_type`` None without a cluster).

    ``num_workers`` counts the tasks that train: ``chief`` + ``worker`` tasks for multi-worker training (the chief
    trains too), the ``worker`` tasks for parameter-server training. ``worker_index`` is this task's position
    among them (its input shard).
    """

    task_type: str | None
    task_id: int
    cluster: dict

    @classmethod
    def from_environment(cls) -> ClusterRole:
        raw = os.environ.get("TF_CONFIG", "")
        if not raw:
            return cls(None, 0, {})
        try:
            config = json.loads(raw)
            task = config.get("task", {})
            return cls(task.get("type"), int(task.get("index", 0)), dict(config["cluster"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"TF_CONFIG is not a valid cluster description ({err}): expected JSON like "
                             '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
                             ) from None

    @property
    def is_chief(self) -> bool:
        """The task that writes run directories, checkpoints and exports: ``chief``, else ``worker`` 0."""
        if self.task_type in (None, "chief"):
            return True
        return self.task_type == "worker" and self.task_id == 0 and "chief" not in self.cluster

    @property
    def synchronous_workers(self) -> list[str]:
        """Tasks that train under ``multi_worker``, in input-shard order."""
        return [f"chief:{i}" for i in range(len(self.cluster.get("chief", [])))] + \
               [f"worker:{i}" for i in range(len(self.cluster.get("worker", [])))]

    @property
    def worker_index(self) -> int:
        return self.synchronous_workers.index(f"{self.task_type}:{self.task_id}")

    def training_workers(self, strategy_name: str) -> int:
        """How many tasks run training steps under ``strategy_name``."""
        if strategy_name == "multi_worker":
            return len(self.synchronous_workers)
        if strategy_name == "parameter_server":
            return len(self.cluster.get("worker", []))
        return 1

    @property
    def num_parameter_servers(self) -> int:
        return len(self.cluster.get("ps", []))


def strategy(name: str = "default", min_shard_bytes: int = 1 << 20) -> tf.distribute.Strategy:
    """The ``tf.distribute.Strategy`` called ``name`` (see the module docstring); cluster strategies read
    ``TF_CONFIG``. ``min_shard_bytes``: under ``parameter_server``, variables are split over the parameter
    servers into shards of at least this size (so embedding tables are sharded and small kernels are not)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    role = ClusterRole.from_environment()
    if not role.cluster:
        raise ValueError(f"strategy {name!r} needs the cluster in the TF_CONFIG environment variable")
    if name == "multi_worker":
        global _MULTI_WORKER
        if _MULTI_WORKER is None:  # collective ops are configured once per process: one strategy, reused
            _MULTI_WORKER = tf.distribute.MultiWorkerMirroredStrategy()
        return _MULTI_WORKER
    if role.task_type != "chief" or role.num_parameter_servers == 0:
        raise ValueError("strategy 'parameter_server' runs model.fit on the 'chief' task (the coordinator) of a "
                         f"cluster with 'ps' tasks; TF_CONFIG says task {role.task_type}:{role.task_id} of "
                         f"{sorted(role.cluster)} (start workers and parameter servers with serve_cluster_task)")
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=role.num_parameter_servers)
    return tf.distribute.ParameterServerStrategy(tf.distribute.cluster_resolver.TFConfigClusterResolver(),
                                                 variable_partitioner=partitioner)


def serve_cluster_task() -> None:
    """Runs this process's ``worker`` or ``ps`` task of a parameter-server cluster until it is killed: a
    ``tf.distribute.Server`` executing what the coordinator sends. Returns at once for any other role."""
    role = ClusterRole.from_environment()
    if role.task_type not in ("worker", "ps"):
        return
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=role.task_type, task_index=role.task_id,
                                  protocol="grpc", start=True)
    server.join()


def wait_for_workers(strategy: tf.distribute.Strategy) -> None:
    """Returns once every synchronous worker has reached this call (one all-reduce); a no-op for a single
    worker. After ``fit``, it means every worker has finished its last epoch's backup."""
    workers = ClusterRole.from_environment().synchronous_workers
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and len(workers) > 1:
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.ones([])), axis=None)


def gathered_weights(model: tf.keras.Model) -> list[np.ndarray]:
    """``model.get_weights()`` with every variable sharded over parameter servers joined back into one array
    (the shards ``name/part_0 … part_k`` are consecutive row blocks)."""
    values: list[np.ndarray] = []
    for weight in model.weights:
        part = re.search(r"/part_(\d+)(:\d+)?$", weight.name)
        value = weight.numpy()
        if part and int(part.group(1)) > 0:
            values[-1] = np.concatenate([values[-1], value])
        else:
            values.append(value)
    return values


def local_copy(model: tf.keras.Model, build_fn) -> tf.keras.Model:
    """A single-device copy of a model trained under a cluster strategy: ``build_fn()`` built outside any
    strategy, with ``model``'s weights. It is what the chief evaluates, saves and exports."""
    copy = build_fn()
    copy.set_weights(gathered_weights(model))
    return copy


def mixed_precision_policy() -> str:
    """``mixed_float16`` on GPUs, ``mixed_bfloat16`` on CPUs (no loss scaling needed there)."""
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def precision(mixed: bool):
    """Layers built inside compute in ``mixed_precision_policy()`` when ``mixed`` (float32 otherwise); the
    global Keras policy is restored on exit."""
    return global_policy(mixed_precision_policy() if mixed else None)
