"""Fast students of KD-DAGFM: the DAGFM model and its KD-DAGFM+ form (DAGFM states → MLP)."""

import tensorflow as tf

from tfctr.layers import DAGFM
from tfctr.models.inputs import embed_fields, head, linear_logit, model_inputs
from tfctr.models.recipe import BATCH_NORM, DROPOUT, L2_EMBEDDING, deep_tower
from tfctr.models.registry import register


@register("dagfm")
def dagfm(spec, embedding_dim=16, interaction_type="inner", num_layers=3, connect=True, hidden_units=(),
          dropout=DROPOUT, batch_norm=BATCH_NORM, linear=False, l2_embedding=L2_EMBEDDING, apg=None):
    """DAGFM (Tian et al. 2023), the KD-DAGFM student.

    Without ``hidden_units``: ``logit = w · [s_0, …, s_L] + b`` over the per-layer, per-node readouts of
    ``DAGFM`` (every interaction up to order L + 1 with its own weight). With ``hidden_units`` (KD-DAGFM+, for
    teachers with a deep part): ``logit = MLP([flatten(H_0 + Σ_t H_t), dense]) w``, the MLP stacked on the summed
    states. Numeric features (the dense block) enter through a linear logit term in the plain form; ``linear``
    adds the first-order term over every feature. ``apg`` makes the MLP adaptive (``recipe.deep_tower``).
    """
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    readout = "state_sum" if hidden_units else "layer_sums"
    graph = DAGFM(interaction_type, num_layers, connect=connect, readout=readout, name="dagfm")(fields)
    terms = []
    if hidden_units:
        flat = tf.keras.layers.Flatten(name="flatten_states")(graph)
        x = flat if dense is None else tf.keras.layers.Concatenate(name="states_and_dense")([flat, dense])
        hidden = deep_tower(x, hidden_units, dropout, batch_norm, apg, spec, fields)
        terms.append(tf.keras.layers.Dense(1, name="deep_logit")(hidden))
    else:
        terms.append(tf.keras.layers.Dense(1, name="dagfm_logit")(graph))
        if dense is not None and not linear:
            terms.append(tf.keras.layers.Dense(1, use_bias=False, name="dense_logit")(dense))
    if linear:
        terms.append(linear_logit(spec, inputs, dense))
    return head(inputs, terms, "dagfm")
