"""AdaEnsemble's stack of sparse MoE layers with per-layer estimators and the depth-selecting controller."""

import tensorflow as tf

from tfctr.layers.moe import DEFAULT_EXPERT_KINDS, NoisyCosineGate, SparseMoE, load_distribution_loss
from tfctr.layers.ops import straight_through
from tfctr.layers.validation import build_sublayer, check_prior, choice, positive_int, renamed_argument

# the SparseMoE arguments the network passes to every layer under their own names (its ``expert_prior`` is the
# layers' ``prior``)
MOE_ARGUMENTS = ("expert_kinds", "k", "num_subspaces", "num_fields", "weight_outputs_by_gates", "normalize",
                 "load_weight", "gate_reduction_ratio", "gate_dim", "jitter", "gate_temperature", "dispatch")


@tf.keras.utils.register_keras_serializable(package="tfctr")
class AdaEnsembleNetwork(tf.keras.layers.Layer):
    """Slots X_0 ``[B, N, c]`` → logit ``[B, 1]`` (Yan & Li, AdaEnsemble, Algorithm 1).

    ``X_l = SparseMoE_l(X_0, X_{l-1})`` for l = 1..L, each with an estimator ``logit_l = w_l · Σ_c X_l + b_l``.
    With ``controller=True`` a second ``NoisyCosineGate`` on X_0 picks one depth d(x) per example (top-1):

    * inference (dynamic propagation): layer d runs only on the examples whose depth is ≥ d, the examples
      exiting at d take ``logit_l``, and the outputs are stitched back in batch order;
    * training, ``depth_training="straight_through"`` (default): every depth's logit is computed for every
      example, the forward value is ``logit_{d(x)}`` (what serving computes) and the backward pass goes through
      ``Σ_l softmax(g)_l · logit_l``, so every estimator is pushed by the error of the depth each example was
      sent to; ``"routed"``: the same forward value, but each estimator and the layers below it learn only from
      the examples routed to it (the gradient of ``logit_{d(x)}``), as serving uses them, and the controller
      learns through ``Σ_l softmax(g)_l · stop_gradient(logit_l)``; ``"prior_only"`` (the authors' code) uses
      ``logit_{d(x)}`` with no gradient to the controller, which then learns from its load regulariser alone.

    The controller's load-distribution regulariser (``depth_load_weight``, expected depths ``depth_prior``) is a
    layer loss in training (``tfctr.training.routing_statistics`` reports the exit depths). Without controller the
    last layer's estimator gives the logit (all layers run for every example) and it is the only estimator built
    (``estimators`` holds one per exit depth: L with the controller, 1 without).

    Args:
        num_layers: L (default 4). controller, depth_training, depth_prior, depth_load_weight: see above.
        expert_kinds, k, num_subspaces, num_fields, weight_outputs_by_gates, normalize, expert_prior, load_weight,
        gate_reduction_ratio, gate_dim, jitter, gate_temperature, dispatch: the ``SparseMoE`` arguments of every
        layer (``expert_prior`` is its ``prior``; the controller's gate shares r, d, ε and the initial τ).
    """

    def __init__(self, num_layers=4, expert_kinds=DEFAULT_EXPERT_KINDS, k=3, num_subspaces=1, num_fields=None,
                 controller=True, depth_training="straight_through", depth_prior=None, depth_load_weight=1.0,
                 weight_outputs_by_gates=True, normalize=False, expert_prior=None, load_weight=1.0,
                 gate_reduction_ratio=16, gate_dim=16, jitter=0.5, gate_temperature=1.0, dispatch="sparse", **kwargs):
        expert_kinds = renamed_argument("AdaEnsembleNetwork", kwargs, "experts", "expert_kinds", expert_kinds,
                                        DEFAULT_EXPERT_KINDS)
        super().__init__(**kwargs)
        self.num_layers = positive_int("AdaEnsembleNetwork", "num_layers", num_layers)
        self.controller = bool(controller)
        self.depth_training = choice("AdaEnsembleNetwork", "depth_training", depth_training,
                                     {"straight_through", "routed", "prior_only"})
        self.depth_prior = check_prior("AdaEnsembleNetwork", depth_prior, self.num_layers)
        self.depth_load_weight = float(depth_load_weight)
        # every layer's SparseMoE arguments, validated (and normalised) by the layer itself
        moe = SparseMoE(expert_kinds, k, num_subspaces, num_fields, weight_outputs_by_gates, normalize=normalize,
                        prior=expert_prior, load_weight=load_weight, gate_reduction_ratio=gate_reduction_ratio,
                        gate_dim=gate_dim, jitter=jitter, gate_temperature=gate_temperature, dispatch=dispatch)
        self.expert_prior = moe.prior
        for name in MOE_ARGUMENTS:
            setattr(self, name, getattr(moe, name))

    @property
    def moe_args(self) -> dict:
        """The keyword arguments of every layer's ``SparseMoE``."""
        return dict({name: getattr(self, name) for name in MOE_ARGUMENTS}, prior=self.expert_prior)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        self.moes = [build_sublayer(SparseMoE(name=f"moe_{d}", **self.moe_args), [shape, shape])
                     for d in range(self.num_layers)]
        self.estimators = [build_sublayer(tf.keras.layers.Dense(1, name=f"estimator_{d}"), (None, int(shape[1])))
                           for d in self.exit_layers]
        if self.controller:
            self.depth_gate = build_sublayer(NoisyCosineGate(self.num_layers, 1, self.gate_reduction_ratio,
                                                             self.gate_dim, self.jitter, self.gate_temperature,
                                                             name="depth_gate"), shape)
        super().build(input_shape)

    @property
    def exit_layers(self) -> range:
        """The 0-based layers an example can leave at, each with its estimator."""
        return range(self.num_layers) if self.controller else range(self.num_layers - 1, self.num_layers)

    def estimator(self, d: int) -> tf.keras.layers.Layer:
        """The estimator of layer ``d`` (0-based), which must be one of ``exit_layers``."""
        return self.estimators[self.exit_layers.index(d)]

    def _estimate(self, d, x):
        return self.estimator(d)(tf.reduce_sum(x, axis=2))

    def depth_logits(self, x0, training=False):
        """Every depth's logit for every example, ``[B, L]`` (all layers run on all rows); controller only."""
        if not self.controller:
            raise ValueError("AdaEnsembleNetwork.depth_logits: only layers with controller=True have an estimator "
                             "per depth")
        x, logits = x0, []
        for d, moe in enumerate(self.moes):
            x = moe((x0, x), training=training)
            logits.append(self._estimate(d, x))
        return tf.concat(logits, axis=1)

    def exit_depths(self, x0):
        """The depth (0-based) the controller sends each example to at inference, ``[B]`` int32."""
        gates, _ = self.depth_gate(x0, training=False)
        return tf.argmax(gates, axis=1, output_type=tf.int32)

    def _propagate_with_exits(self, x0):
        depth = self.exit_depths(x0)
        positions = tf.range(tf.shape(x0)[0])
        x, base = x0, x0
        indices, values = [], []
        for d, moe in enumerate(self.moes):
            x = moe((base, x), training=False)
            if d == self.num_layers - 1:
                indices.append(positions)
                values.append(self._estimate(d, x))
                break
            exits = depth == d
            exiting, staying = tf.where(exits)[:, 0], tf.where(~exits)[:, 0]
            indices.append(tf.gather(positions, exiting))
            values.append(self._estimate(d, tf.gather(x, exiting)))
            x, base, depth, positions = (tf.gather(t, staying) for t in (x, base, depth, positions))
        return tf.dynamic_stitch(indices, values)

    def call(self, x0, training=False):
        if not self.controller:
            x = x0
            for moe in self.moes:
                x = moe((x0, x), training=training)
            return self._estimate(self.num_layers - 1, x)
        if not training:
            return self._propagate_with_exits(x0)
        gates, logits = self.depth_gate(x0, training=True)
        chosen = tf.cast(gates > 0, x0.dtype)
        per_depth = self.depth_logits(x0, training=True)
        hard = tf.reduce_sum(chosen * per_depth, axis=1, keepdims=True)
        weights = tf.nn.softmax(logits, axis=1)
        if self.depth_training == "straight_through":
            output = straight_through(hard, tf.reduce_sum(weights * per_depth, axis=1, keepdims=True))
        elif self.depth_training == "routed":
            soft = tf.reduce_sum(weights * tf.stop_gradient(per_depth), axis=1, keepdims=True)
            output = hard + soft - tf.stop_gradient(soft)
        else:
            output = hard
        self.add_loss(self.depth_load_weight * load_distribution_loss(logits, chosen, self.depth_prior))
        return output

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], 1])

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, controller=self.controller, depth_training=self.depth_training,
                      depth_prior=self.depth_prior, depth_load_weight=self.depth_load_weight,
                      expert_prior=self.expert_prior, **{name: getattr(self, name) for name in MOE_ARGUMENTS})
        return config
