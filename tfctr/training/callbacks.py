"""Keras callbacks used by ``tfctr train``: throughput, and AdaEnsemble's top-k annealing."""

import time

import tensorflow as tf

from tfctr.layers.moe import SparseMoE
from tfctr.layers.validation import positive_int


class TrainingThroughput(tf.keras.callbacks.Callback):
    """Measures training examples/second over the training phase of every epoch (validation excluded)."""

    def __init__(self, rows_per_epoch: int):
        super().__init__()
        self.rows_per_epoch = rows_per_epoch
        self.seconds = 0.0
        self.epochs = 0
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()
        self.epochs += 1

    def _stop(self):
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None

    @property
    def examples_per_second(self) -> float:
        return self.rows_per_epoch * self.epochs / self.seconds if self.seconds else 0.0


class TopKAnnealing(tf.keras.callbacks.Callback):
    """Lowers the top-k of every ``NoisyCosineGate`` of the model (the experts' gates, not the depth
    controller's, which stays top-1) along a step schedule: ``schedule = [(boundary_step, k), …]`` uses k_i while
    the training step is below b_i and the last k afterwards (so inference uses the final k).
    ``annealing_schedule(num_experts, k, steps)`` gives the paper's dense → sparse schedule.

    The training step is the optimizer's ``iterations``, which checkpoints (and ``BackupAndRestore``) save with
    the model, so a resumed run continues the schedule where it stopped."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = sorted((int(b), int(k)) for b, k in schedule)

    def k_at(self, step: int) -> int:
        """The k of the schedule at training step ``step`` (the last one after the final boundary)."""
        for boundary, k in self.schedule:
            if step < boundary:
                return k
        return self.schedule[-1][1]

    def _gates(self):
        return [module.gate for module in self.model.submodules if isinstance(module, SparseMoE)]

    def on_train_batch_begin(self, batch, logs=None):
        k = self.k_at(int(self.model.optimizer.iterations.numpy()))
        for gate in self._gates():
            if int(gate.active_k.numpy()) != k:
                gate.active_k.assign(min(k, gate.num_choices))

    def on_train_end(self, logs=None):
        for gate in self._gates():
            gate.active_k.assign(min(self.schedule[-1][1], gate.num_choices))


def annealing_schedule(num_experts: int, k: int, steps: int) -> list:
    """``[(steps, n), (2·steps, n − 1), …, (·, k)]``: start dense, drop one expert every ``steps`` steps."""
    return [((i + 1) * steps, n) for i, n in enumerate(range(num_experts, k - 1, -1))]



def annealing_for(model: tf.keras.Model, steps: int) -> TopKAnnealing:
    """``TopKAnnealing`` for every ``SparseMoE`` of ``model``: start dense, drop one expert every ``steps``
    training steps until the layers' configured k."""
    moes = [module for module in model.submodules if isinstance(module, SparseMoE)]
    if not moes:
        raise ValueError("top-k annealing: the model has no SparseMoE layer (use it with adaensemble)")
    return TopKAnnealing(annealing_schedule(max(len(m.expert_kinds) for m in moes), min(m.k for m in moes),
                                            positive_int("top-k annealing", "steps", steps)))
