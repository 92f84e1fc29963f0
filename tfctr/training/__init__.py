"""Training: ``train`` (the ``tfctr train`` command as a function) and callbacks."""

from tfctr.training.train import TrainResult, load_run, train

__all__ = ["TrainResult", "load_run", "train"]
