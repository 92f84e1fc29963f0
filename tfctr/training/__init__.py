"""Training: ``train`` (``tfctr train``), ``tune`` (``tfctr tune``, Optuna), ``ModelSelection`` (which epoch a
run keeps), ``distill`` (KD-DAGFM), ``search_fusion`` (OptFusion),
``BilevelTraining`` (AdaEnsemble's routers on validation data), ``strategy`` (``tf.distribute`` by name) and
callbacks (``TopKAnnealing``: AdaEnsemble's dense → sparse schedule)."""

from tfctr.runs import TrainResult, load_run
from tfctr.training.bilevel import BilevelTraining
from tfctr.training.callbacks import TopKAnnealing, annealing_schedule
from tfctr.training.distill import Distiller, DistillResult, distill
from tfctr.training.distribute import strategy
from tfctr.training.fusion_search import FusionSearch, search_fusion
from tfctr.training.routing import RoutingMetrics, routing_statistics
from tfctr.training.selection import ModelSelection
from tfctr.training.train import predict_split, train
from tfctr.training.tuning import TuneResult, tune

__all__ = ["BilevelTraining", "DistillResult", "Distiller", "FusionSearch", "ModelSelection", "RoutingMetrics",
           "TopKAnnealing", "TrainResult", "TuneResult", "annealing_schedule", "distill", "load_run", "predict_split",
           "routing_statistics", "search_fusion", "strategy", "train", "tune"]
