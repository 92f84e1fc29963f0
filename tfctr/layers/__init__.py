"""Keras layers of tfctr, one module per family. Layers know tensors, never features or files."""

from tfctr.layers.adaensemble import AdaEnsembleNetwork
from tfctr.layers.apg import APGDense
from tfctr.layers.attention import FieldSelfAttention, InstanceNormalization
from tfctr.layers.cin import CompressedInteraction
from tfctr.layers.cross import CrossNetwork, MixtureCross, VectorCross
from tfctr.layers.dagfm import DAGFM
from tfctr.layers.dense_block import DenseBlock
from tfctr.layers.embedding import FieldEmbedding, SelectField
from tfctr.layers.experts import ConvExpert, CrossExpert, GatedDenseExpert, PINExpert, SelfAttentionExpert
from tfctr.layers.fusion import FusionGraph, FusionOperation, FusionSupernet
from tfctr.layers.interaction import BilinearInteraction, FMInteraction, InnerProduct, SENet
from tfctr.layers.linear import LinearLogit
from tfctr.layers.mlp import MLP
from tfctr.layers.moe import NoisyCosineGate, SparseMoE
from tfctr.layers.noise import Dropout
from tfctr.layers.pin import PolynomialInteraction
from tfctr.layers.slots import SlotDense, SubspaceSplit

__all__ = [
    "APGDense", "AdaEnsembleNetwork", "BilinearInteraction", "CompressedInteraction", "ConvExpert", "CrossExpert",
    "CrossNetwork", "DAGFM", "DenseBlock", "Dropout", "FMInteraction", "FieldEmbedding", "FieldSelfAttention",
    "FusionGraph", "FusionOperation", "FusionSupernet", "GatedDenseExpert", "InnerProduct", "InstanceNormalization",
    "LinearLogit", "MLP", "MixtureCross", "NoisyCosineGate", "PINExpert", "PolynomialInteraction", "SENet",
    "SelectField", "SelfAttentionExpert", "SlotDense", "SparseMoE", "SubspaceSplit", "VectorCross",
]
