"""OptFusion models: the search supernet, fixed-fusion baselines and the plain model of an architecture (no α or
β in it). ``derive`` (re-exported here) reads a trained supernet's architecture.

An architecture is a JSON-able dict::

    {"num_levels": 3,
     "nodes": {"cross_0": {"inputs": ["x0"]},
               "mlp_1":   {"inputs": ["x0", "cross_0"], "operation": "add"},
               "output":  {"inputs": ["cross_0", "mlp_1"], "operations": {"add": 0.4, "product": 0.1, ...}},
               ...},
     "pruned": ["cross_3", ...]}

Each kept node lists the nodes it reads and either one ``operation`` (hard) or the constant mixing weights of
all ``operations`` (soft). Nodes whose output reaches no consumer are pruned; a node with no input reads zeros
(``"inputs": []``), as the search computed it.
"""

from __future__ import annotations

import tensorflow as tf

from tfctr.layers import FusionGraph, FusionSupernet
from tfctr.layers.fusion import OPERATIONS, derive, node_names, num_sources, prune
from tfctr.layers.validation import choice, positive_int
from tfctr.models.inputs import EMBEDDING_LAYER, embed_fields, flat_input, head, model_inputs
from tfctr.models.recipe import L2_EMBEDDING
from tfctr.models.registry import register

FIXED_KINDS = ("stacked", "parallel") + OPERATIONS


@register("optfusion_search")
def optfusion_search(spec, embedding_dim=16, num_levels=3, selection="soft", product_masked_as_zero=False,
                     l2_embedding=L2_EMBEDDING):
    """The OptFusion search supernet (``FusionSupernet`` on x0 = [flatten(E), dense]); train it with
    ``tfctr.training.FusionSearch``, then ``derive`` its architecture."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    logit = FusionSupernet(num_levels, selection, product_masked_as_zero, name="fusion")(flat_input(fields, dense))
    return head(inputs, [logit], "optfusion_search")


def fixed_architecture(kind: str, num_levels: int = 3) -> dict:
    """A fixed-fusion baseline in the same space.

    * ``"stacked"`` (DCN-style cross then MLP): the level order lets an MLP read only crosses of earlier levels,
      so the crosses are levels 0..⌊n/2⌋ chained and the MLPs the levels after, chained, then the output;
    * ``"parallel"`` (DCN-V2 parallel): a cross chain cross_0 → … → cross_n beside an MLP chain x0 → mlp_1 →
      … → mlp_n, concatenated into the output;
    * an operation name: every candidate connection kept, that operation at every node (``product`` and
      ``attention`` with scaled inputs, ``FusionOperation(scaled=True)``, without which they do not train).
    """
    choice("fixed_architecture", "kind", kind, FIXED_KINDS)
    n = positive_int("fixed_architecture", "num_levels", num_levels)
    names = node_names(n)
    if kind in OPERATIONS:
        nodes = {name: {"inputs": names[:num_sources(j)]} for j, name in enumerate(names) if j >= 1}
        for name in names[2:]:
            nodes[name]["operation"] = kind
        return {"num_levels": n, "mode": "hard", "nodes": nodes, "pruned": [],
                "scaled": kind in ("product", "attention")}
    if kind == "stacked":
        last_cross = n // 2
        chain = [f"cross_{i}" for i in range(last_cross + 1)] + [f"mlp_{i}" for i in range(last_cross + 1, n + 1)]
    else:
        chain = None
    inputs = {name: [] for name in names[1:]}
    if chain is not None:
        for previous, name in zip(["x0"] + chain, chain + ["output"]):
            inputs[name] = [previous]
        operations = {name: "add" for name in inputs}
    else:
        inputs["cross_0"] = ["x0"]
        for i in range(1, n + 1):
            inputs[f"cross_{i}"] = [f"cross_{i - 1}"]
            inputs[f"mlp_{i}"] = ["x0" if i == 1 else f"mlp_{i - 1}"]
        inputs["output"] = [f"cross_{n}", f"mlp_{n}"]
        operations = dict({name: "add" for name in inputs}, output="concat")
    kept, pruned = prune(n, inputs)
    nodes = {name: dict({"inputs": sources}, **({"operation": operations[name]} if name != "cross_0" else {}))
             for name, sources in kept.items()}
    return {"num_levels": n, "mode": "hard", "nodes": nodes, "pruned": pruned}


@register("optfusion")
def optfusion(spec, architecture=None, embedding_dim=16, l2_embedding=L2_EMBEDDING):
    """A fixed fusion architecture (from ``derive`` or ``fixed_architecture``; default: every connection with
    ``add``) as a plain model: embeddings → x0 → ``FusionGraph`` (the kept cross/MLP nodes) → logit."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    graph = FusionGraph(architecture or fixed_architecture("add"), name="fusion")
    return head(inputs, [graph(flat_input(fields, dense))], "optfusion")


def warm_start(derived: tf.keras.Model, search: tf.keras.Model):
    """Starts the derived model from the search's weights (the authors' default retraining start): the
    embeddings, and the fusion graph the supernet folds to (``FusionSupernet.graph``) for its architecture."""
    derived.get_layer(EMBEDDING_LAYER).set_weights(search.get_layer(EMBEDDING_LAYER).get_weights())
    target = derived.get_layer("fusion")
    target.set_weights(search.get_layer("fusion").graph(target.architecture).get_weights())


__all__ = ["FIXED_KINDS", "derive", "fixed_architecture", "optfusion", "optfusion_search", "warm_start"]
