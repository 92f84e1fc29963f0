"""Keras layers of tfctr. Layers know tensors, never features or files."""

from tfctr.layers.cross import CrossNetwork, VectorCross
from tfctr.layers.dense_block import DenseBlock
from tfctr.layers.embedding import FieldEmbedding
from tfctr.layers.interaction import FMInteraction
from tfctr.layers.linear import LinearLogit
from tfctr.layers.mlp import MLP

__all__ = ["CrossNetwork", "DenseBlock", "FMInteraction", "FieldEmbedding", "LinearLogit", "MLP", "VectorCross"]
