"""OptFusion models: the search supernet, derived architectures (JSON), fixed-fusion baselines and the plain
functional model of an architecture (no α or β in it).

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

import numpy as np
import tensorflow as tf

from tfctr.layers import FusionOperation, FusionSupernet, VectorCross
from tfctr.layers._validation import choice, positive_int
from tfctr.layers.fusion import OPERATIONS, ZerosLike, node_names, num_sources
from tfctr.models.inputs import embed_fields, flat_input, head, model_inputs
from tfctr.models.registry import register

FIXED_KINDS = ("stacked", "parallel") + OPERATIONS


@register("optfusion_search")
def optfusion_search(spec, embedding_dim=16, num_levels=3, selection="soft", product_masked_as_zero=False,
                     l2_embedding=0.0):
    """The OptFusion search supernet (``FusionSupernet`` on x0 = [flatten(E), dense]); train it with
    ``tfctr.training.FusionSearch``, then ``derive`` its architecture."""
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    logit = FusionSupernet(num_levels, selection, product_masked_as_zero, name="fusion")(flat_input(fields, dense))
    return head(inputs, [logit], "optfusion_search")


def _prune(num_levels: int, inputs: dict) -> tuple[dict, list]:
    """Keeps the nodes that reach the output (walking the inputs back from it)."""
    reached, stack = {"output"}, ["output"]
    while stack:
        for source in inputs[stack.pop()]:
            if source != "x0" and source not in reached:
                reached.add(source)
                stack.append(source)
    names = node_names(num_levels)[1:]
    return {n: inputs[n] for n in names if n in reached}, [n for n in names if n not in reached]


def derive(supernet: FusionSupernet, mode: str | None = None) -> dict:
    """The architecture a trained supernet selects: connection i → j kept iff α_ji > 0; per node the argmax
    operation (``mode="hard"``) or the constant softmax(β) mix (``"soft"``); default the supernet's selection."""
    mode = choice("derive", "mode", mode or supernet.selection, {"soft", "hard"})
    if supernet.product_masked_as_zero:
        raise ValueError("derive: a supernet with product_masked_as_zero=True multiplies disconnected inputs as "
                         "zeros, which a pruned graph cannot reproduce; search with product_masked_as_zero=False")
    names = supernet.names
    alpha, beta = supernet.alpha.numpy(), supernet.beta.numpy()
    inputs = {name: [names[i] for i in range(num_sources(j)) if alpha[j, i] > 0]
              for j, name in enumerate(names) if j >= 1}
    kept, pruned = _prune(supernet.num_levels, inputs)
    nodes = {}
    for name, sources in kept.items():
        j = names.index(name)
        node = {"inputs": sources}
        if j >= 2:
            if mode == "hard":
                node["operation"] = OPERATIONS[int(np.argmax(beta[j - 2]))]
            else:
                soft = np.exp(beta[j - 2] - beta[j - 2].max())
                node["operations"] = dict(zip(OPERATIONS, (soft / soft.sum()).tolist()))
        nodes[name] = node
    return {"num_levels": supernet.num_levels, "mode": mode, "nodes": nodes, "pruned": pruned}


def fixed_architecture(kind: str, num_levels: int = 3) -> dict:
    """A fixed-fusion baseline in the same space.

    * ``"stacked"`` (DCN-style cross then MLP): the level order lets an MLP read only crosses of earlier levels,
      so the crosses are levels 0..⌊n/2⌋ chained and the MLPs the levels after, chained, then the output;
    * ``"parallel"`` (DCN-V2 parallel): a cross chain cross_0 → … → cross_n beside an MLP chain x0 → mlp_1 →
      … → mlp_n, concatenated into the output;
    * an operation name: every candidate connection kept, that operation at every node.
    """
    choice("fixed_architecture", "kind", kind, FIXED_KINDS)
    n = positive_int("fixed_architecture", "num_levels", num_levels)
    names = node_names(n)
    if kind in OPERATIONS:
        nodes = {name: {"inputs": names[:num_sources(j)]} for j, name in enumerate(names) if j >= 1}
        for name in names[2:]:
            nodes[name]["operation"] = kind
        return {"num_levels": n, "mode": "hard", "nodes": nodes, "pruned": []}
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
    kept, pruned = _prune(n, inputs)
    nodes = {name: dict({"inputs": sources}, **({"operation": operations[name]} if name != "cross_0" else {}))
             for name, sources in kept.items()}
    return {"num_levels": n, "mode": "hard", "nodes": nodes, "pruned": pruned}


def _check_architecture(architecture: dict) -> dict:
    n = architecture.get("num_levels")
    names = node_names(positive_int("optfusion", "architecture['num_levels']", n))
    nodes = architecture.get("nodes")
    if not isinstance(nodes, dict) or "output" not in nodes:
        raise ValueError("optfusion: architecture['nodes'] must be a dict with an 'output' node")
    for name, node in nodes.items():
        if name not in names[1:]:
            raise ValueError(f"optfusion: unknown node '{name}'; nodes are {names[1:]}")
        allowed = names[:num_sources(names.index(name))]
        bad = [s for s in node.get("inputs", []) if s not in allowed or (s != "x0" and s not in nodes)]
        if bad:
            raise ValueError(f"optfusion: node '{name}' reads {bad}, which are not kept nodes among its candidate "
                             f"inputs {allowed}")
        if name != "cross_0" and ("operation" in node) == ("operations" in node):
            raise ValueError(f"optfusion: node '{name}' needs exactly one of 'operation' and 'operations'")
    return architecture


def _fusion_layer(name: str, node: dict) -> FusionOperation:
    if "operation" in node:
        return FusionOperation([node["operation"]], name=f"fusion_{name}")
    ops = list(node["operations"])
    return FusionOperation(ops, [node["operations"][o] for o in ops], name=f"fusion_{name}")


def fusion_graph(x0, architecture: dict):
    """Applies the architecture's kept nodes to x0 ``[B, w]`` with plain layers; returns the logit ``[B, 1]``."""
    width = x0.shape[-1]
    values = {"x0": x0}
    zeros = None
    for name in node_names(architecture["num_levels"])[1:]:
        node = architecture["nodes"].get(name)
        if node is None:
            continue
        sources = [values[s] for s in node["inputs"]]
        if not sources:  # a node with no connected input reads zeros, as in the search
            if zeros is None:
                zeros = ZerosLike(name="no_input")(x0)
            sources = [zeros]
        if name == "cross_0":
            fused = sources[0]
        else:
            fused = _fusion_layer(name, node)(sources)
        if name.startswith("cross"):
            values[name] = VectorCross(name=name)([x0, fused])
        else:
            values[name] = tf.keras.layers.Dense(1 if name == "output" else width,
                                                 activation=None if name == "output" else "relu", name=name)(fused)
    return values["output"]


@register("optfusion")
def optfusion(spec, architecture=None, embedding_dim=16, l2_embedding=0.0):
    """A fixed fusion architecture (from ``derive`` or ``fixed_architecture``; default: every connection with
    ``add``) as a plain functional model: embeddings → x0 → the kept cross/MLP nodes → logit."""
    architecture = _check_architecture(architecture or fixed_architecture("add"))
    inputs = model_inputs(spec)
    fields, dense = embed_fields(spec, inputs, embedding_dim, l2_embedding)
    return head(inputs, [fusion_graph(flat_input(fields, dense), architecture)], "optfusion")


def warm_start(derived: tf.keras.Model, search: tf.keras.Model, architecture: dict):
    """Copies the search supernet's weights into the derived model (the authors' default retraining start):
    embeddings and every kept node's component and fusion weights, CONCAT rows and attention slots of the
    kept inputs only."""
    derived.get_layer("field_embedding").set_weights(search.get_layer("field_embedding").get_weights())
    supernet = search.get_layer("fusion")
    names = supernet.names
    for j, name in enumerate(names[1:], start=1):
        node = architecture["nodes"].get(name)
        if node is None:
            continue
        source = supernet.cross_0 if j == 1 else supernet.components[j - 2]
        derived.get_layer(name).set_weights(source.get_weights())
        if j == 1:
            continue
        slots = [names.index(s) for s in node["inputs"]] or [0]
        fusion, target = supernet.fusions[j - 2], derived.get_layer(f"fusion_{name}")
        values = []
        for op in [o for o in OPERATIONS if o in target.operations]:  # the order FusionOperation builds them
            if op == "concat":
                kernel, bias = fusion.concat.get_weights()
                width = kernel.shape[1]
                values += [np.concatenate([kernel[s * width:(s + 1) * width] for s in slots]), bias]
            elif op == "attention":
                for s in slots:
                    values += fusion.attention[2 * s].get_weights() + fusion.attention[2 * s + 1].get_weights()
        target.set_weights(values)
