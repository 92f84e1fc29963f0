"""Baseline CTR models: LR, Wide & Deep, DeepFM, DCN and DCN-V2."""

import functools
import warnings

import tensorflow as tf

from tfctr.layers import CrossNetwork, FMInteraction
from tfctr.layers.validation import choice
from tfctr.models.inputs import dense_block, embed_fields, flat_input, head, linear_logit, model_inputs
from tfctr.models.recipe import BATCH_NORM, DROPOUT, L2_EMBEDDING, deep_tower
from tfctr.models.registry import register


def _logit_dense(name):
    return tf.keras.layers.Dense(1, name=name)


@register("lr", learning_rate=1e-2)
def lr(spec, l2_embedding=0.0, l2=None):
    """Logistic regression on one-hot ids and the dense block: ``logit = b + Σ_f w_f[id_f] + x_dense · v``.

    ``l2_embedding`` penalises the weights of the ids each batch uses, as in every other model. ``l2`` (deprecated,
    kept for one release) is the former option: Keras' L2 on the whole id table and the dense weights."""
    if l2 is not None:
        warnings.warn("lr(l2=) penalises every row of the table every step and is deprecated; l2_embedding "
                      "penalises the rows each batch uses, as in the other models", DeprecationWarning, stacklevel=2)
    inputs = model_inputs(spec)
    return head(inputs, [linear_logit(spec, inputs, dense_block(spec, inputs), l2_embedding, l2 or 0.0)], "lr")


@register("wdl")
def wdl(spec, embedding_dim=16, hidden_units=(256, 128), dropout=DROPOUT, batch_norm=BATCH_NORM,
        l2_embedding=L2_EMBEDDING, apg=None):
    """Wide & Deep (Cheng et al. 2016): ``logit = linear(x) + MLP([flatten(E), dense]) w``. ``apg`` (a dict of
    ``APGDense`` arguments, optionally with a ``"condition"`` feature; see ``recipe.deep_tower``) makes the MLP's
    hidden layers adaptive."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    deep = deep_tower(flat_input(fields, dense), hidden_units, dropout, batch_norm, apg, spec, fields)
    return head(inputs, [linear_logit(spec, inputs, dense), _logit_dense("deep_logit")(deep)], "wdl")


@register("deepfm")
def deepfm(spec, embedding_dim=16, hidden_units=(256, 128), dropout=DROPOUT, batch_norm=BATCH_NORM,
           l2_embedding=L2_EMBEDDING, apg=None):
    """DeepFM (Guo et al. 2017): ``logit = linear(x) + Σ_{i<j} <e_i, e_j> + MLP(x0) w``, embeddings shared;
    ``apg`` makes the MLP adaptive."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    deep = deep_tower(flat_input(fields, dense), hidden_units, dropout, batch_norm, apg, spec, fields)
    terms = [linear_logit(spec, inputs, dense), FMInteraction(name="fm")(fields), _logit_dense("deep_logit")(deep)]
    return head(inputs, terms, "deepfm")


def _cross_model(spec, name, kind, embedding_dim, num_layers, projection_dim, hidden_units, structure,
                 dropout, batch_norm, l2_embedding, num_experts=4, apg=None):
    choice(name, "structure", structure, {"stacked", "parallel"})
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    x0 = flat_input(fields, dense)
    cross = CrossNetwork(num_layers, kind=kind, projection_dim=projection_dim, num_experts=num_experts,
                         name="cross")(x0)
    if structure == "stacked":
        top = deep_tower(cross, hidden_units, dropout, batch_norm, apg, spec, fields) if hidden_units else cross
    else:
        parts = [cross]
        if hidden_units:
            parts.append(deep_tower(x0, hidden_units, dropout, batch_norm, apg, spec, fields))
        top = tf.keras.layers.Concatenate(name="cross_and_deep")(parts) if len(parts) > 1 else cross
    return head(inputs, [_logit_dense("dense_logit")(top)], name)


@register("dcn")
def dcn(spec, embedding_dim=16, num_layers=3, hidden_units=(256, 128), dropout=DROPOUT, batch_norm=BATCH_NORM,
        l2_embedding=L2_EMBEDDING, apg=None):
    """Deep & Cross Network (Wang et al. 2017): vector cross network and MLP side by side on x0, then a logit;
    ``apg`` makes the MLP adaptive."""
    return _cross_model(spec, "dcn", "vector", embedding_dim, num_layers, None, hidden_units, "parallel",
                        dropout, batch_norm, l2_embedding, apg=apg)


@register("dcnv2")
def dcnv2(spec, embedding_dim=16, num_layers=3, projection_dim=None, mixture_experts=None,
          hidden_units=(256, 128), structure="stacked", dropout=DROPOUT, batch_norm=BATCH_NORM,
          l2_embedding=L2_EMBEDDING, apg=None):
    """DCN-V2 (Wang et al. 2021): matrix cross network (full rank, or low rank with ``projection_dim``; DCN-Mix
    with ``mixture_experts`` low-rank experts per layer), then an MLP (``structure="stacked"``) or beside it
    (``"parallel"``), then a logit; ``apg`` makes the MLP adaptive."""
    kind = "matrix" if mixture_experts is None else "mix"
    return _cross_model(spec, "dcnv2", kind, embedding_dim, num_layers, projection_dim, hidden_units,
                        structure, dropout, batch_norm, l2_embedding, num_experts=mixture_experts or 4, apg=apg)


# APG variants (Yan et al. 2022): the same backbones with adaptive hidden layers, v5 + self-wise by default
# (rank K = 32, P = 64, linear generator, static bias). K = 4, the paper's efficiency setting, left apg_wdl and
# apg_dcnv2 0.007-0.009 AUC below their backbones on the user-group data; K = 32 puts apg_wdl above wdl (README, APG).
# apg_dcnv2 puts the MLP beside the cross network ("parallel"): a self-wise APG layer is quadratic in its input
# (y = x A S(x) Bm), so it should see embeddings, not the unbounded output of stacked cross layers.
APG_DEFAULTS = {"rank": 32, "version": "v5", "overparam_dim": 64}
register("apg_wdl")(functools.partial(wdl, apg=APG_DEFAULTS))
register("apg_deepfm")(functools.partial(deepfm, apg=APG_DEFAULTS))
register("apg_dcnv2")(functools.partial(dcnv2, apg=APG_DEFAULTS, structure="parallel"))
