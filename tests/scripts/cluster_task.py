"""One task of a tf.distribute cluster on 127.0.0.1 (its TF_CONFIG in the environment), running
``tfctr.training.train`` as a user would. Used by tests/test_cluster.py.

    python cluster_task.py TRAIN_KWARGS_JSON REPORT_PATH [KILL_AT_EPOCH KILL_AT_BATCH]

Writes REPORT_PATH.npz (the trained weights) and REPORT_PATH.json (the training metrics and where every variable
of the distributed model was placed). With KILL_AT_*, the process SIGKILLs itself at that batch of that epoch, a
worker dying mid-epoch.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfctr.training import train  # noqa: E402


class Placement(tf.keras.callbacks.Callback):
    """Records the device of every variable of the model being trained (shards included)."""

    def __init__(self):
        super().__init__()
        self.devices = {}

    def on_train_begin(self, logs=None):
        self.devices = {w.name: w.device for w in self.model.weights}


class KillAt(tf.keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.kill_epoch, self.kill_batch, self.epoch = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == (self.kill_epoch, self.kill_batch):
            os.kill(os.getpid(), signal.SIGKILL)


kwargs, report = json.loads(sys.argv[1]), sys.argv[2]
placement = Placement()
callbacks = [placement] + ([KillAt(int(sys.argv[3]), int(sys.argv[4]))] if len(sys.argv) > 4 else [])
result = train(**kwargs, callbacks=callbacks, verbose=0)
np.savez(report + ".npz", *result.model.get_weights())
with open(report + ".json", "w") as f:
    json.dump({"training": result.metrics["training"], "devices": placement.devices}, f)
