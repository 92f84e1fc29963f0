"""Training: ``train`` (the ``tfctr train`` command as a function), ``distill`` (KD-DAGFM) and callbacks."""

from tfctr.training.distill import Distiller, DistillResult, distill
from tfctr.training.train import TrainResult, load_run, train

__all__ = ["DistillResult", "Distiller", "TrainResult", "distill", "load_run", "train"]
