"""Training: ``train`` (``tfctr train``), ``distill`` (KD-DAGFM), ``search_fusion`` (OptFusion) and callbacks."""

from tfctr.training.distill import Distiller, DistillResult, distill
from tfctr.training.fusion_search import FusionSearch, search_fusion
from tfctr.training.train import TrainResult, load_run, train

__all__ = ["DistillResult", "Distiller", "FusionSearch", "TrainResult", "distill", "load_run", "search_fusion",
           "train"]
