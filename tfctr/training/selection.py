"""Model selection: which epoch's weights a run keeps, when it lowers the learning rate and when it stops.

CTR systems bid with the predicted probability, so a model is selected on its calibration (logloss) as well as
its ranking (AUC). ``ModelSelection`` scores every epoch on the validation split with one of

* ``"auc"``: the validation AUC (higher is better);
* ``"logloss"``: the validation logloss (lower is better);
* ``"auc-logloss"``: AUC − logloss, the selection score of the BARS benchmark (higher is better);
* ``"kd_mse"``: the mean squared gap between a distilled student's and its teacher's logits on the validation
  split (``Distiller``'s ``kd_mse``; lower is better): distillation converges when the student stops getting
  closer to the teacher;

keeps the best epoch's weights, and on a plateau of ``patience`` epochs without improvement first restores the
best weights and multiplies the learning rate by ``factor`` (``reductions`` times), then stops. At the end the
model holds the best epoch's weights and ``summary()`` says which epoch that was and why training ended.

With a ``state_dir`` its state (scores, best epoch and its weights, patience counter, reductions) is written
there at every epoch end, before ``BackupAndRestore`` checkpoints the epoch, so a killed run that resumes from
its backup also resumes its selection: the best epoch of before the kill is still the one to beat and to keep.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfctr.defaults import DEFAULT_MONITOR, TRAINING_MONITORS

MONITORS = TRAINING_MONITORS + ("kd_mse",)


def monitor_score(monitor: str, logs: dict) -> float:
    """The selection score of one epoch's Keras ``logs`` (``val_auc``, ``val_logloss``, ``val_kd_mse``); higher
    is better."""
    if monitor not in MONITORS:
        raise ValueError(f"monitor={monitor!r}, expected one of {list(MONITORS)}")
    needed = {"auc": ["val_auc"], "logloss": ["val_logloss"], "auc-logloss": ["val_auc", "val_logloss"],
              "kd_mse": ["val_kd_mse"]}[monitor]
    missing = [key for key in needed if key not in logs]
    if missing:
        raise ValueError(f"monitor {monitor!r} needs {missing} in the epoch logs, which hold {sorted(logs)}: "
                         "compile with the metrics 'auc' and 'logloss' (kd_mse: a Distiller) and pass validation data")
    if monitor == "auc":
        return float(logs["val_auc"])
    if monitor == "logloss":
        return -float(logs["val_logloss"])
    if monitor == "kd_mse":
        return -float(logs["val_kd_mse"])
    return float(logs["val_auc"]) - float(logs["val_logloss"])


def _number(value):
    return None if value is None else float(value)


class ModelSelection(tf.keras.callbacks.Callback):
    """Early stopping, best-weight restore and learning-rate reduction on one validation score.

    Args:
        monitor: ``"auc"``, ``"logloss"`` or ``"auc-logloss"`` (see the module docstring).
        patience: epochs without improvement that make a plateau.
        factor: the learning rate is multiplied by this on each of the first ``reductions`` plateaus.
        reductions: how many plateaus lower the learning rate (and restore the best weights) before one stops
            training; 0 = plain early stopping.
        min_delta: an epoch improves when its score exceeds the best by more than this.
        state_dir: where the state is kept for resuming (None: not kept); ``write_state`` False reads it only
            (the non-chief workers of a cluster, which make the same decisions as the chief).
    """

    def __init__(self, monitor: str = DEFAULT_MONITOR, patience: int = 2, factor: float = 0.1, reductions: int = 1,
                 min_delta: float = 0.0, state_dir=None, write_state: bool = True):
        super().__init__()
        if monitor not in MONITORS:  # the name is checked now, the logs it needs at the first epoch
            raise ValueError(f"monitor={monitor!r}, expected one of {list(MONITORS)}")
        if patience < 1:
            raise ValueError(f"ModelSelection: patience must be >= 1, got {patience}")
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"ModelSelection: factor must be in (0, 1], got {factor}")
        if reductions < 0:
            raise ValueError(f"ModelSelection: reductions must be >= 0, got {reductions}")
        self.monitor, self.patience, self.factor = monitor, int(patience), float(factor)
        self.reductions, self.min_delta = int(reductions), float(min_delta)
        self.state_dir, self.write_state = (None if state_dir is None else Path(state_dir)), bool(write_state)
        self._reset()

    def _reset(self):
        self.best_score, self.best_epoch, self.best_weights, self.best_logs = -math.inf, None, None, {}
        self.wait, self.reduced, self.epochs_seen = 0, [], 0
        self.stopped_because = None
        self.scores = []

    def on_train_begin(self, logs=None):
        self._reset()
        self._resumed = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._resumed and epoch > 0 and self.state_dir is not None:  # a run resumed from its backup
            self._load_state(epoch - 1)
        self._resumed = True

    def on_epoch_end(self, epoch, logs=None):
        self._select(epoch, logs)
        if self.state_dir is not None and self.write_state:
            self._save_state(epoch)

    def _select(self, epoch, logs):
        score = monitor_score(self.monitor, logs or {})
        self.scores.append(score)
        self.epochs_seen = epoch + 1
        if score > self.best_score + self.min_delta or self.best_epoch is None:
            self.best_score, self.best_epoch, self.wait = score, epoch, 0
            self.best_weights, self.best_logs = self.model.get_weights(), {k: float(v) for k, v in logs.items()}
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        self.wait = 0
        if len(self.reduced) < self.reductions:
            self.model.set_weights(self.best_weights)
            learning_rate = self.model.optimizer.learning_rate
            new_rate = float(tf.keras.backend.get_value(learning_rate)) * self.factor
            tf.keras.backend.set_value(learning_rate, new_rate)
            self.reduced.append({"after_epoch": epoch + 1, "learning_rate": new_rate})
        else:
            self.stopped_because = (f"no improvement of validation {self.monitor} for {self.patience} epochs after "
                                    f"{len(self.reduced)} learning-rate reduction(s)")
            self.model.stop_training = True

    def _state_file(self, epoch: int) -> Path:
        return self.state_dir / f"selection-{epoch}.json"

    def _weights_file(self, epoch: int) -> Path:
        return self.state_dir / f"best-{epoch}.npz"

    def _save_state(self, epoch: int) -> None:
        """Writes the state after ``epoch`` (atomically) and the best weights when they are new; keeps the
        states of this epoch and the one before (a kill between this write and the backup's checkpoint resumes
        from the epoch before) and the weights they name."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.best_epoch == epoch:
            with open(self._weights_file(epoch), "wb") as file:
                np.savez(file, *self.best_weights)
        state = {"epoch": epoch, "best_score": self.best_score, "best_epoch": self.best_epoch, "wait": self.wait,
                 "reduced": self.reduced, "scores": self.scores, "best_logs": self.best_logs}
        temporary = self.state_dir / f".selection-{epoch}.json"
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self._state_file(epoch))
        kept = {self._state_file(epoch), self._state_file(epoch - 1)}
        named = {self._weights_file(json.loads(f.read_text())["best_epoch"]) for f in kept if f.exists()}
        for stale in self.state_dir.iterdir():
            if stale not in kept | named:
                stale.unlink(missing_ok=True)

    def _load_state(self, epoch: int) -> None:
        path = self._state_file(epoch)
        if not path.exists():
            raise FileNotFoundError(f"resuming after epoch {epoch + 1}: the model selection state {path} is missing "
                                    "(the backup was written by a run without it); remove the run's backup/ to "
                                    "start again")
        state = json.loads(path.read_text())
        self.best_score, self.best_epoch, self.wait = state["best_score"], state["best_epoch"], state["wait"]
        self.reduced, self.scores, self.best_logs = state["reduced"], state["scores"], state["best_logs"]
        self.epochs_seen = epoch + 1
        with np.load(self._weights_file(self.best_epoch)) as saved:
            self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def summary(self) -> dict:
        """What ``metrics.json`` records: the monitor, the selected (1-based) epoch, its score, every epoch's
        score, the learning-rate reductions and why training ended."""
        return {
            "monitor": self.monitor,
            "selected_epoch": None if self.best_epoch is None else self.best_epoch + 1,
            "selected_score": None if self.best_epoch is None else self.best_score,
            "selected_val_auc": _number(self.best_logs.get("val_auc")),
            "selected_val_logloss": _number(self.best_logs.get("val_logloss")),
            "scores": [float(np.round(s, 6)) for s in self.scores],
            "patience": self.patience,
            "learning_rate_reductions": self.reduced,
            "stopped_because": self.stopped_because or f"ran all {self.epochs_seen} epochs",
        }
