"""Where a training command runs: one ``tf.distribute`` strategy, the precision policy and this process's role,
shared by ``train``, ``distill`` and ``search_fusion`` so that every command that trains runs the same way.

A ``Runtime`` is made once per call (a ``MultiWorkerMirroredStrategy`` must be created once per process). Under
``parameter_server`` the ``worker`` and ``ps`` tasks never get past ``Runtime(...)``: they serve the cluster
until it is torn down (``distribute.serve_cluster_task``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import tensorflow as tf

from tfctr.features import FeatureSpec
from tfctr.training import distribute
from tfctr.training.distributed_input import Input, split_inputs


class Runtime:
    """The strategy ``strategy_name`` (``distribute.STRATEGIES``), mixed precision on or off, and the cluster role.

    Args:
        strategy_name: ``"default"``, ``"mirrored"``, ``"multi_worker"`` or ``"parameter_server"``.
        mixed_precision: layers built in ``scope()`` compute in float16 (GPU) / bfloat16 (CPU).
        min_shard_bytes: under ``parameter_server``, the smallest shard of a variable split over the ps tasks.
    """

    def __init__(self, strategy_name: str = "default", mixed_precision: bool = False, min_shard_bytes: int = 1 << 20):
        if strategy_name not in distribute.STRATEGIES:
            raise ValueError(f"strategy must be one of {list(distribute.STRATEGIES)}, got {strategy_name!r}")
        self.strategy_name = strategy_name
        self.mixed_precision = mixed_precision
        self.role = distribute.ClusterRole.from_environment()
        if strategy_name == "parameter_server" and self.role.task_type in ("worker", "ps"):
            distribute.serve_cluster_task()  # runs until the cluster is torn down
        self.strategy = distribute.strategy(strategy_name, min_shard_bytes)

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run directory."""
        return self.role.is_chief

    @property
    def clustered(self) -> bool:
        return self.strategy_name in distribute.CLUSTER_STRATEGIES

    @property
    def workers(self) -> int:
        return self.role.training_workers(self.strategy_name)

    @property
    def replicas(self) -> int:
        """Replicas that take a share of each global batch (1 without distribution)."""
        return int(self.strategy.num_replicas_in_sync)

    @contextlib.contextmanager
    def scope(self):
        """Models, optimizers and metrics created inside are placed by the strategy, in the precision policy."""
        with distribute.precision(self.mixed_precision), self.strategy.scope():
            yield

    def inputs(self, train, valid, spec: FeatureSpec, batch_size: int, shuffle_buffer: int, seed: int,
               work_dir: Path, first_epoch: int = 0) -> tuple[Input, Input]:
        """Training and validation input of the splits for this strategy (``split_inputs``)."""
        return split_inputs(self.strategy_name, train, valid, spec, batch_size, shuffle_buffer, seed, work_dir,
                            first_epoch)

    def local(self, net: tf.keras.Model, build_fn) -> tf.keras.Model:
        """``net`` itself, or under a cluster strategy a single-device copy (``build_fn()`` with its weights) for
        the chief to evaluate, save and export."""
        if not self.clustered:
            return net
        with distribute.precision(self.mixed_precision):
            return distribute.local_copy(net, build_fn)
