"""The model side of the training recipe: the regularisation defaults every model of the zoo shares.

One place for them, so that a default is changed (with its evidence, see the README's "Defaults and why") for
every model at once:

* ``DROPOUT``, ``BATCH_NORM``: dropout rate and batch normalisation of every hidden layer of a model's MLP.
  ``batch_norm`` is a bool or a dict ``{"momentum": m, "epsilon": e}`` (defaults 0.9 and 1e-5: Keras' 0.99
  lags when an epoch is a few dozen steps).
* ``L2_EMBEDDING``: λ of the L2 penalty on the embedding rows each batch uses (``FieldEmbedding(rows_l2=)``).
* ``EMBEDDING_STDDEV``: embeddings start as N(0, σ²) with this σ.
"""

from tfctr.layers import MLP, SelectField

DROPOUT = 0.0
BATCH_NORM = False
L2_EMBEDDING = 0.0
EMBEDDING_STDDEV = 1e-4


def batch_norm_args(batch_norm) -> dict:
    """``MLP`` arguments of a model's ``batch_norm`` hyper-parameter (a bool, or a dict with ``momentum`` and/or
    ``epsilon``, which turns it on)."""
    if isinstance(batch_norm, dict):
        unknown = sorted(set(batch_norm) - {"momentum", "epsilon"})
        if unknown:
            raise ValueError(f"batch_norm: unknown keys {unknown}; expected 'momentum' and/or 'epsilon'")
        return dict(batch_norm=True, **{f"batch_norm_{key}": value for key, value in batch_norm.items()})
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be true/false or a dict of momentum/epsilon, got {batch_norm!r}")
    return {"batch_norm": batch_norm}


def deep_tower(x, hidden_units, dropout=DROPOUT, batch_norm=BATCH_NORM, apg=None, spec=None, fields=None,
               name="mlp"):
    """The output of a model's MLP on ``x``: ``hidden_units`` layers with the recipe's dropout and batch
    normalisation.

    ``apg`` (None: plain layers) is a dict of ``APGDense`` arguments that makes every hidden layer adaptive, plus
    an optional ``"condition"``: the name of an embedded feature (group-wise: the weights are generated from that
    field's embedding, e.g. the user id, the paper's main setting) or a list of names (mix-wise, aggregated by
    ``"aggregation"``); without it the condition is the layer's input (self-wise). ``spec`` and the model's
    field embeddings ``fields`` ``[B, F, D]`` resolve the names."""
    apg = None if apg is None else dict(apg)
    condition = None if apg is None else apg.pop("condition", None)
    mlp = MLP(hidden_units, dropout=dropout, apg=apg, name=name, **batch_norm_args(batch_norm))
    if condition is None:
        return mlp(x)
    return mlp((x, condition_embeddings(condition, spec, fields)))


def condition_embeddings(condition, spec, fields):
    """The embeddings ``[B, D]`` of the named embedded feature(s): one tensor for a name, a list for a list."""
    names = [condition] if isinstance(condition, str) else list(condition)
    embedded = [f.name for f in spec.embedded] if spec is not None else []
    unknown = [n for n in names if n not in embedded]
    if not names or unknown:
        raise ValueError(f"apg condition {condition!r}: expected the name(s) of embedded features of this model, "
                         f"one of {embedded}")
    chosen = [SelectField(embedded.index(n), name=f"condition_field_{embedded.index(n)}")(fields) for n in names]
    return chosen[0] if isinstance(condition, str) else chosen
