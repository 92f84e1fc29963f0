"""Keras callbacks used by ``tfctr train``."""

import time

import tensorflow as tf


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
