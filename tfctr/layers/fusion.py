"""OptFusion's fusion operations and its one-shot search supernet (Zhang et al., WSDM'25).

The fusion graph has nodes ``x0`` (the flattened embeddings, width w), ``cross_0`` (fed by x0 alone), then for
each level i = 1..n a cross layer ``cross_i`` and an MLP layer ``mlp_i`` fed by any earlier node (never by each
other), and the ``output`` fed by any node. ``node_names(n)`` lists them in topological order; ``sources(j)``
are the candidate inputs of node j (all nodes before its level).
"""

import json

import numpy as np
import tensorflow as tf

from tfctr.layers.cross import VectorCross
from tfctr.layers.ops import straight_through
from tfctr.layers.validation import as_shape_list, as_tensor_list, build_sublayer, choice, positive_int

OPERATIONS = ("add", "product", "concat", "attention")


def bounded_product(xs, mask=None):
    """``Π_i (1 + m_i · tanh(x_i)) − 1`` of k inputs ``[B, w]`` (``m_i`` the connection ``mask[i]``, 1 without a
    mask): ``Σ_i t_i + Σ_{i<j} t_i t_j + … + Π_i t_i`` with ``t_i = m_i · tanh(x_i)``, every order of product of
    the squashed inputs. Small inputs make it ADD (each t_i ≈ x_i), each factor stays in [0, 2] however large its
    input, and it is zero when no input is connected."""
    terms = [tf.tanh(x) if mask is None else mask[i] * tf.tanh(x) for i, x in enumerate(xs)]
    product = 1.0 + terms[0]
    for term in terms[1:]:
        product = product * (1.0 + term)
    return product - 1.0


def node_names(num_levels: int) -> list[str]:
    """``["x0", "cross_0", "cross_1", "mlp_1", …, "cross_n", "mlp_n", "output"]``."""
    names = ["x0", "cross_0"]
    for level in range(1, num_levels + 1):
        names += [f"cross_{level}", f"mlp_{level}"]
    return names + ["output"]


def num_sources(node: int) -> int:
    """How many candidate inputs node ``node`` (index in ``node_names``) has: the nodes before its level."""
    if node <= 1:
        return node  # x0 has none, cross_0 has x0
    return node if node % 2 == 0 else node - 1  # cross_i and mlp_i (i ≥ 1) share the sources v_0..v_{2i-1}


@tf.keras.utils.register_keras_serializable(package="tfctr")
class FusionOperation(tf.keras.layers.Layer):
    """Fuses k inputs of width w into one ``[B, w]`` by one operation or a weighted mixture of several:

        add:        Σ_i x_i
        product:    Π_i x_i over the connected inputs (a disconnected input acts as 1; no connected input gives
                    zeros). ``product_masked_as_zero=True`` is the authors' literal search code: a masked input
                    is a zero factor.
        concat:     [x_1, …, x_k] W + b,  W ∈ R^{k·w×w}
        attention:  Σ_i a_i ⊙ x_i,  a_i = softmax over the w features of ReLU(x_i W_i1 + b_i1) W_i2

    ``call(inputs, connections=None, op_weights=None)``: ``inputs`` a list of k tensors ``[B, w]``;
    ``connections`` ``[k]`` 0/1 values multiplying the inputs (the search's straight-through masks);
    ``op_weights`` ``[len(operations)]`` mixing weights (the search's softmax or one-hot of β). Without
    ``op_weights`` the constant ``operation_weights`` are used (a derived soft architecture), or the single
    operation (several operations without weights are averaged).

    ``scaled=True`` (our addition, used by the fixed ``product`` and ``attention`` baselines): product is
    ``bounded_product``, Π_i (1 + tanh x_i) − 1, which starts as ADD while the inputs are small and holds every
    order of product of them, where the plain product of eight inputs of embedding scale 1e-2 is 1e-16, a
    constant prediction (and multiplying inputs standardised per example gave heavy-tailed noise that did not
    train either: AUC 0.50, logloss 1.1); attention uses ``w · a_i``, so it starts as ADD (a_i ≈ 1/w at
    initialisation) instead of w times smaller.
    The search keeps the authors' unscaled forms.

    Args:
        operations: the candidate operations this layer computes (subset of ``OPERATIONS``).
        operation_weights: constant mixing weights (one per operation), or None for a single operation / runtime
            weights.
        product_masked_as_zero: see above.
        scaled: see above (default False).
    """

    def __init__(self, operations=OPERATIONS, operation_weights=None, product_masked_as_zero=False, scaled=False,
                 **kwargs):
        super().__init__(**kwargs)
        operations = list(operations)
        if not operations:
            raise ValueError("FusionOperation: operations must not be empty")
        for op in operations:
            choice("FusionOperation", "operations", op, OPERATIONS)
        self.operations = operations
        if operation_weights is not None and len(operation_weights) != len(operations):
            raise ValueError(f"FusionOperation: {len(operation_weights)} operation_weights for "
                             f"{len(operations)} operations")
        self.operation_weights = None if operation_weights is None else [float(w) for w in operation_weights]
        self.product_masked_as_zero = bool(product_masked_as_zero)
        self.scaled = bool(scaled)

    def build(self, input_shape):
        shapes = as_shape_list(input_shape)
        self.num_inputs, width = len(shapes), int(shapes[0][-1])
        self.width = width
        if "concat" in self.operations:
            self.concat = build_sublayer(tf.keras.layers.Dense(width, name="concat"), (None, width * self.num_inputs))
        self.attention = []
        if "attention" in self.operations:
            for i in range(self.num_inputs):  # flat list: hidden and score layer of each input slot
                hidden = tf.keras.layers.Dense(width, activation="relu", name=f"attention_hidden_{i}")
                score = tf.keras.layers.Dense(width, use_bias=False, name=f"attention_score_{i}")
                self.attention += [build_sublayer(hidden, (None, width)), build_sublayer(score, (None, width))]
        super().build(input_shape)

    def _operation(self, op, xs, mask):  # mask: the connections [k] or None
        if op == "add":
            return tf.add_n(xs)
        if op == "product":
            if self.scaled:
                return bounded_product(xs, mask)
            if mask is None or self.product_masked_as_zero:
                product = xs[0]
                for x in xs[1:]:
                    product = product * x
                return product
            product = xs[0] + (1.0 - mask[0])
            for i, x in enumerate(xs[1:], start=1):
                product = product * (x + (1.0 - mask[i]))
            return product * tf.cast(tf.reduce_any(mask > 0), product.dtype)
        if op == "concat":
            return self.concat(tf.concat(xs, axis=1))
        scale = float(self.width) if self.scaled else 1.0
        scored = [scale * tf.nn.softmax(self.attention[2 * i + 1](self.attention[2 * i](x)), axis=1) * x
                  for i, x in enumerate(xs)]
        return tf.add_n(scored)

    def call(self, inputs, connections=None, op_weights=None):
        xs = as_tensor_list(inputs)
        mask = connections
        if mask is not None:
            mask = tf.cast(mask, xs[0].dtype)
            xs = [x * mask[i] for i, x in enumerate(xs)]
        outputs = [self._operation(op, xs, mask) for op in self.operations]
        if op_weights is None and self.operation_weights is None:
            return outputs[0] if len(outputs) == 1 else tf.add_n(outputs) / len(outputs)
        weights = self.operation_weights if op_weights is None else tf.cast(op_weights, xs[0].dtype)
        return tf.add_n([weights[i] * out for i, out in enumerate(outputs)])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(as_shape_list(input_shape)[0])

    def get_config(self):
        config = super().get_config()
        config.update(operations=self.operations, operation_weights=self.operation_weights,
                      product_masked_as_zero=self.product_masked_as_zero, scaled=self.scaled)
        return config


def prune(num_levels: int, inputs: dict) -> tuple[dict, list]:
    """Keeps the nodes that reach the output (walking the inputs back from it)."""
    reached, stack = {"output"}, ["output"]
    while stack:
        for source in inputs[stack.pop()]:
            if source != "x0" and source not in reached:
                reached.add(source)
                stack.append(source)
    names = node_names(num_levels)[1:]
    return {n: inputs[n] for n in names if n in reached}, [n for n in names if n not in reached]


def check_architecture(architecture: dict) -> dict:
    n = architecture.get("num_levels")
    names = node_names(positive_int("FusionGraph", "architecture['num_levels']", n))
    nodes = architecture.get("nodes")
    if not isinstance(nodes, dict) or "output" not in nodes:
        raise ValueError("FusionGraph: architecture['nodes'] must be a dict with an 'output' node")
    for name, node in nodes.items():
        if name not in names[1:]:
            raise ValueError(f"FusionGraph: unknown node '{name}'; nodes are {names[1:]}")
        allowed = names[:num_sources(names.index(name))]
        bad = [s for s in node.get("inputs", []) if s not in allowed or (s != "x0" and s not in nodes)]
        if bad:
            raise ValueError(f"FusionGraph: node '{name}' reads {bad}, which are not kept nodes among its candidate "
                             f"inputs {allowed}")
        if name != "cross_0" and ("operation" in node) == ("operations" in node):
            raise ValueError(f"FusionGraph: node '{name}' needs exactly one of 'operation' and 'operations'")
    return architecture


@tf.keras.utils.register_keras_serializable(package="tfctr")
class FusionGraph(tf.keras.layers.Layer):
    """A fixed fusion architecture (the JSON of ``derive`` or ``tfctr.models.fusion.fixed_architecture``) as
    one layer: x0 ``[B, w]`` → logit ``[B, 1]``, computing only the kept nodes, each reading only its kept
    inputs (a node with none reads zeros, as in the search) through one ``FusionOperation`` (one operation, or
    the constant soft mix), then its component (cross layer on x0, ReLU dense of width w, or the output dense).
    It has no α or β: it is what a ``FusionSupernet`` folds to for serving and what the retrained model uses.

    Args:
        architecture: ``{"num_levels": n, "nodes": {name: {"inputs": [...], "operation" | "operations": ...}},
            ...}`` (see ``tfctr.models.fusion``); ``"scaled": true`` builds every ``FusionOperation`` with
            ``scaled=True`` (the fixed product/attention baselines).
    """

    def __init__(self, architecture, **kwargs):
        super().__init__(**kwargs)
        # kept as JSON text: Keras would wrap a dict attribute for tracking and write the wrappers back into the
        # caller's nested dicts
        self._architecture_json = json.dumps(check_architecture(json.loads(json.dumps(architecture))))
        self.kept = [n for n in node_names(architecture["num_levels"])[1:] if n in architecture["nodes"]]

    @property
    def architecture(self) -> dict:
        """The architecture dict this graph was built from (stored as JSON, so Keras does not wrap it)."""
        return json.loads(self._architecture_json)

    def build(self, input_shape):
        width = int(input_shape[-1])
        nodes = self.architecture["nodes"]
        self.components, self.fusions = [], []  # flat lists, in the order of self.kept (no fusion for cross_0)
        for name in self.kept:
            node = nodes[name]
            self.components.append(_component(name, width))
            if name != "cross_0":
                ops = [node["operation"]] if "operation" in node else list(node["operations"])
                weights = None if "operation" in node else [node["operations"][o] for o in ops]
                slots = max(len(node["inputs"]), 1)
                fusion = FusionOperation(ops, weights, scaled=self.architecture.get("scaled", False),
                                         name=f"fusion_{name}")
                self.fusions.append(build_sublayer(fusion, [(None, width)] * slots))
        super().build(input_shape)

    def call(self, x0):
        values = {"x0": x0}
        nodes = self.architecture["nodes"]
        fusions = iter(self.fusions)
        for name, component in zip(self.kept, self.components):
            sources = [values[s] for s in nodes[name]["inputs"]] or [tf.zeros_like(x0)]
            fused = sources[0] if name == "cross_0" else next(fusions)(sources)
            values[name] = component([x0, fused]) if name.startswith("cross") else component(fused)
        return values["output"]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], 1])

    def get_config(self):
        config = super().get_config()
        config.update(architecture=self.architecture)
        return config


def _component(name: str, width: int):
    """The built component of node ``name``: a DCN cross layer (``cross_*``), a ReLU dense layer of width w
    (``mlp_*``) or the output dense layer."""
    if name.startswith("cross"):
        return build_sublayer(VectorCross(name=name), [(None, width), (None, width)])
    output = name == "output"
    return build_sublayer(tf.keras.layers.Dense(1 if output else width, activation=None if output else "relu",
                                                name=name), (None, width))


@tf.keras.utils.register_keras_serializable(package="tfctr")
class FusionSupernet(tf.keras.layers.Layer):
    """OptFusion's search space as one layer: x0 ``[B, w]`` → logit ``[B, 1]``.

    Every node j other than x0 fuses its candidate sources i with connection masks ``m_ji = 1[α_ji > 0]``
    (straight-through: the gradient reaches α as if m were α) by ``FusionOperation`` with operation weights
    ``softmax(β_j)`` (``selection="soft"``, the authors' search for both their Soft and Hard variants) or its
    one-hot argmax with the softmax's gradient (``selection="one_hot"``, our straight-through variant), then
    applies its component: a DCN cross layer ``x0 · (u·w) + b + u`` (x0 always the
    raw embedding), an MLP layer ``ReLU(u W + c)`` of width w, or for the output ``u w_o + b_o``. ``cross_0`` has
    the single input x0 (masked, no fusion operation). α (``[nodes, nodes]``, [destination, source], all 0.5)
    and β (``[2n + 1, 4]``, Xavier-normal) are the architecture weights, named ``alpha`` and ``beta``.

    Args:
        num_levels: n, (cross, MLP) levels (default 3).
        selection: ``"soft"`` or ``"one_hot"``.
        product_masked_as_zero: the authors' literal product (see ``FusionOperation``).
    """

    def __init__(self, num_levels=3, selection="soft", product_masked_as_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.num_levels = positive_int("FusionSupernet", "num_levels", num_levels)
        self.selection = choice("FusionSupernet", "selection", selection, {"soft", "one_hot"})
        self.product_masked_as_zero = bool(product_masked_as_zero)
        self.names = node_names(self.num_levels)

    def build(self, input_shape):
        width = int(input_shape[-1])
        nodes = len(self.names)
        self.alpha = self.add_weight(name="alpha", shape=(nodes, nodes),
                                     initializer=tf.keras.initializers.Constant(0.5))
        self.beta = self.add_weight(name="beta", shape=(nodes - 2, len(OPERATIONS)),
                                    initializer="glorot_normal")
        # flat lists (Keras saves flat sublayer lists): one component and one fusion per node j ≥ 2
        self.components, self.fusions = [], []
        self.cross_0 = _component("cross_0", width)
        for j, name in enumerate(self.names[2:], start=2):
            component = _component(name, width)
            fusion = build_sublayer(FusionOperation(OPERATIONS, product_masked_as_zero=self.product_masked_as_zero,
                                                    name=f"fusion_{name}"), [(None, width)] * num_sources(j))
            self.components.append(component)
            self.fusions.append(fusion)
        super().build(input_shape)

    def masks(self):
        """The straight-through connection masks ``[nodes, nodes]``."""
        return straight_through(tf.cast(self.alpha > 0, self.alpha.dtype), self.alpha)

    def operation_weights(self):
        """Per fused node ``[2n + 1, 4]``: softmax(β), or its one-hot argmax (straight-through) for ``one_hot``."""
        soft = tf.nn.softmax(self.beta, axis=1)
        if self.selection == "soft":
            return soft
        return straight_through(tf.one_hot(tf.argmax(self.beta, axis=1), len(OPERATIONS), dtype=soft.dtype), soft)

    def call(self, x0):
        masks = tf.cast(self.masks(), x0.dtype)
        weights = tf.cast(self.operation_weights(), x0.dtype)
        values = [x0, self.cross_0([x0, x0 * masks[1, 0]])]
        for j, (component, fusion) in enumerate(zip(self.components, self.fusions), start=2):
            k = num_sources(j)
            fused = fusion(values[:k], connections=masks[j, :k], op_weights=weights[j - 2])
            values.append(component([x0, fused]) if isinstance(component, VectorCross) else component(fused))
        return values[-1]

    def graph(self, architecture: dict | None = None) -> "FusionGraph":
        """The ``FusionGraph`` of ``architecture`` (default: ``derive(self)``) with this supernet's weights: each
        kept node's component and fusion weights, the CONCAT rows and attention slots of its kept inputs only."""
        architecture = architecture or derive(self)
        graph = FusionGraph(architecture, name=self.name)
        graph.build(tf.TensorShape([None, self.cross_0.kernel.shape[0]]))
        fusions = iter(graph.fusions)
        for name, component in zip(graph.kept, graph.components):
            j = self.names.index(name)
            component.set_weights((self.cross_0 if j == 1 else self.components[j - 2]).get_weights())
            if j == 1:
                continue
            target, fusion = next(fusions), self.fusions[j - 2]
            slots = [self.names.index(s) for s in architecture["nodes"][name]["inputs"]] or [0]
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
        return graph

    def serving_form(self):
        """The derived, pruned graph (``derive(self)``) with these weights: no α, β or straight-through masks."""
        return self.graph()

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], 1])

    def get_config(self):
        config = super().get_config()
        config.update(num_levels=self.num_levels, selection=self.selection,
                      product_masked_as_zero=self.product_masked_as_zero)
        return config


def derive(supernet: "FusionSupernet", mode: str | None = None) -> dict:
    """The architecture a trained supernet selects: connection i → j kept iff α_ji > 0; per node the argmax
    operation (``mode="hard"``, the authors' Hard) or the constant softmax(β) mix (``"soft"``); default
    ``"soft"`` for a soft search and ``"hard"`` for a one-hot one."""
    default = "hard" if supernet.selection == "one_hot" else "soft"
    mode = choice("derive", "mode", mode or default, {"soft", "hard"})
    if supernet.product_masked_as_zero:
        raise ValueError("derive: a supernet with product_masked_as_zero=True multiplies disconnected inputs as "
                         "zeros, which a pruned graph cannot reproduce; search with product_masked_as_zero=False")
    names = supernet.names
    alpha, beta = supernet.alpha.numpy(), supernet.beta.numpy()
    inputs = {name: [names[i] for i in range(num_sources(j)) if alpha[j, i] > 0]
              for j, name in enumerate(names) if j >= 1}
    kept, pruned = prune(supernet.num_levels, inputs)
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
