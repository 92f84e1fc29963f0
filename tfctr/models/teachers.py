"""Heavier interaction models, also the KD-DAGFM teachers: xDeepFM, AutoInt+, xDeepInt, FiBiNET, PNN.

Every model returns the probability; ``tfctr.models.logit_model(model)`` gives the logit a distiller matches.
Every MLP takes ``apg`` (adaptive hidden layers, see ``recipe.deep_tower``).
"""

import tensorflow as tf

from tfctr.layers import (
    BilinearInteraction,
    CompressedInteraction,
    FieldSelfAttention,
    InnerProduct,
    PolynomialInteraction,
    SENet,
    SubspaceSplit,
)
from tfctr.models.inputs import embed_fields, flat_input, head, linear_logit, model_inputs
from tfctr.models.recipe import BATCH_NORM, DROPOUT, L2_EMBEDDING, deep_tower
from tfctr.models.registry import register


def _deep_logit(x, hidden_units, dropout, batch_norm, apg, spec, fields, name="deep_logit"):
    hidden = deep_tower(x, hidden_units, dropout, batch_norm, apg, spec, fields) if hidden_units else x
    return tf.keras.layers.Dense(1, name=name)(hidden)


@register("xdeepfm")
def xdeepfm(spec, embedding_dim=16, cin_layer_sizes=(128, 128), cin_split_half=True, hidden_units=(256, 128),
            dropout=DROPOUT, batch_norm=BATCH_NORM, l2_embedding=L2_EMBEDDING, apg=None):
    """xDeepFM (Lian et al. 2018): ``logit = linear(x) + w_c · CIN(E) + MLP(x0) w`` (eq. 9)."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    cin = CompressedInteraction(cin_layer_sizes, split_half=cin_split_half, name="cin")(fields)
    terms = [linear_logit(spec, inputs, dense), tf.keras.layers.Dense(1, use_bias=False, name="cin_logit")(cin)]
    if hidden_units:
        terms.append(_deep_logit(flat_input(fields, dense), hidden_units, dropout, batch_norm, apg, spec, fields))
    return head(inputs, terms, "xdeepfm")


@register("autoint")
def autoint(spec, embedding_dim=16, num_layers=3, num_heads=2, head_dim=8, residual=True, layer_norm=False,
            hidden_units=(256, 128), dropout=DROPOUT, batch_norm=BATCH_NORM, l2_embedding=L2_EMBEDDING, apg=None):
    """AutoInt+ (Song et al. 2019): stacked field self-attention layers and an MLP on x0, concatenated, then one
    logit (``hidden_units=()`` gives plain AutoInt)."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    x = fields
    for i in range(num_layers):
        x = FieldSelfAttention(num_heads, head_dim, residual=residual, layer_norm=layer_norm,
                               name=f"attention_{i}")(x)
    parts = [tf.keras.layers.Flatten(name="flatten_attention")(x)]
    if hidden_units:
        parts.append(deep_tower(flat_input(fields, dense), hidden_units, dropout, batch_norm, apg, spec, fields))
    top = tf.keras.layers.Concatenate(name="attention_and_deep")(parts) if len(parts) > 1 else parts[0]
    return head(inputs, [tf.keras.layers.Dense(1, name="dense_logit")(top)], "autoint")


@register("xdeepint")
def xdeepint(spec, embedding_dim=16, num_subspaces=None, num_layers=3, residual=True, hidden_units=(),
             dropout=DROPOUT, batch_norm=BATCH_NORM, l2_embedding=L2_EMBEDDING, apg=None):
    """xDeepInt (Yan & Li 2020): subspace split (h = ``num_subspaces``, default D = bit-wise) → PIN → one logit,
    plus the linear part and an optional MLP on x0."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    slots = SubspaceSplit(num_subspaces or embedding_dim, name="subspace_split")(fields)
    pin = PolynomialInteraction(num_layers, residual=residual, name="pin")(slots)
    terms = [linear_logit(spec, inputs, dense),
             tf.keras.layers.Dense(1, name="pin_logit")(tf.keras.layers.Flatten(name="flatten_pin")(pin))]
    if hidden_units:
        terms.append(_deep_logit(flat_input(fields, dense), hidden_units, dropout, batch_norm, apg, spec, fields))
    return head(inputs, terms, "xdeepint")


@register("fibinet")
def fibinet(spec, embedding_dim=16, reduction_ratio=3, bilinear_type="field_interaction", hidden_units=(256, 128),
            dropout=DROPOUT, batch_norm=BATCH_NORM, l2_embedding=L2_EMBEDDING, apg=None):
    """FiBiNET (Huang et al. 2019): bilinear interactions of E and of SENet(E), concatenated (+ dense block) →
    MLP → logit, plus the linear part."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    weighted = SENet(reduction_ratio, name="senet")(fields)
    parts = [BilinearInteraction(bilinear_type, name="bilinear")(fields),
             BilinearInteraction(bilinear_type, name="bilinear_senet")(weighted)]
    flat = tf.keras.layers.Flatten(name="flatten_bilinear")(tf.keras.layers.Concatenate(axis=1)(parts))
    x = flat if dense is None else tf.keras.layers.Concatenate(name="bilinear_and_dense")([flat, dense])
    return head(inputs, [linear_logit(spec, inputs, dense),
                         _deep_logit(x, hidden_units, dropout, batch_norm, apg, spec, fields)], "fibinet")


@register("pnn")
def pnn(spec, embedding_dim=16, hidden_units=(256, 128), dropout=DROPOUT, batch_norm=BATCH_NORM,
        l2_embedding=L2_EMBEDDING, apg=None):
    """IPNN (Qu et al. 2016): ``[flatten(E), inner products <e_i, e_j>, dense]`` → MLP → logit."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    products = InnerProduct(name="inner_product")(fields)
    x = tf.keras.layers.Concatenate(name="product_layer")([flat_input(fields, dense), products])
    return head(inputs, [_deep_logit(x, hidden_units, dropout, batch_norm, apg, spec, fields)], "pnn")
