"""AdaEnsemble's routing: the noisy cosine top-k gate, the load-distribution regulariser and the sparse
mixture-of-experts layer with real conditional computation (METHODS.md §4.3-4.5)."""

import numpy as np
import tensorflow as tf

from tfctr.layers.attention import InstanceNormalization
from tfctr.layers.experts import (
    CONV_MIN_SLOTS,
    ConvExpert,
    CrossExpert,
    GatedDenseExpert,
    PINExpert,
    SelfAttentionExpert,
)
from tfctr.layers.noise import random_generator
from tfctr.layers.validation import (
    build_sublayer,
    check_prior,
    choice,
    pair_shapes,
    positive_int,
    renamed_argument,
)

EXPERTS = {"dense": GatedDenseExpert, "cross": CrossExpert, "pin": PINExpert, "conv": ConvExpert,
           "attention": SelfAttentionExpert}
DEFAULT_EXPERT_KINDS = ("dense", "cross", "pin", "conv", "attention")  # the paper's five, one of each


def top_k_mask(logits, k):
    """``[B, n]`` 0/1 with exactly ``min(k, n)`` ones per row, at the k largest logits (ties by index)."""
    n = logits.shape[-1]
    indices = tf.math.top_k(logits, k=tf.minimum(k, n)).indices
    return tf.reduce_sum(tf.one_hot(indices, n, dtype=logits.dtype), axis=1)


GATE_FLOOR = 1e-6
# the logit of a choice outside the top k: its softmax weight is exactly 0 in float32 and bfloat16
MASKED_LOGIT = -1e9
# τ = softplus(ρ) + TEMPERATURE_FLOOR stays positive, so the cosine logits (at most 1/τ) stay finite
TEMPERATURE_FLOOR = 1e-3


def cosine_direction(h, epsilon=1e-12):
    """``h / ‖h‖`` along the last axis, as ``tf.math.l2_normalize(h, epsilon=ε)`` (``h / sqrt(max(‖h‖², ε))``),
    except on a row that is exactly zero: it has no direction, so it gets 0 and no gradient. There
    ``l2_normalize`` has a gradient of 1/sqrt(ε) = 1e6, which under global-norm clipping shrinks every other
    gradient of the step to nothing. Rows of tiny but non-zero norm (the gate reads embeddings that start at a
    scale of 1e-4) are normalised exactly as by ``l2_normalize``."""
    squared = tf.reduce_sum(tf.square(h), axis=-1, keepdims=True)
    return tf.where(squared > 0, h * tf.math.rsqrt(tf.maximum(squared, epsilon)), tf.zeros_like(h))


def top_k_softmax(logits, mask, floor=GATE_FLOOR):
    """Softmax over the logits where ``mask`` is 1, zero elsewhere, every selected gate at least
    ``floor / (1 + k·floor)``: ``(softmax + floor) / (1 + k·floor)``. At a small temperature the logits of the
    selected choices differ by hundreds and a plain softmax underflows to exact zeros, so a row would reach
    fewer than its k choices; with the floor every row has exactly k non-zero gates summing to 1."""
    masked = tf.where(mask > 0, logits, tf.cast(MASKED_LOGIT, logits.dtype))
    k = tf.reduce_sum(mask, axis=-1, keepdims=True)
    floor = tf.cast(floor, logits.dtype)
    return (tf.nn.softmax(masked, axis=-1) * mask + floor * mask) / (1.0 + k * floor)


def load_distribution_loss(logits, selected, prior=None):
    """``Σ_j f_j · P_j / w_j``: f_j the fraction of the batch routed to choice j (top-k membership, no
    gradient), P_j the batch mean of the full softmax of the logits, w_j the expected load (uniform 1/n by
    default, which gives the Switch load-balancing loss n · Σ_j f_j P_j). Minimal when the routing follows w.
    Under a ``tf.distribute`` strategy f and P are the global batch's (summed across replicas)."""
    n = logits.shape[-1]
    weights = tf.constant(np.full(n, 1.0 / n) if prior is None else np.asarray(prior), logits.dtype)
    rows = tf.cast(tf.shape(logits)[0], logits.dtype)
    sums = [tf.stop_gradient(tf.reduce_sum(tf.cast(selected, logits.dtype), axis=0)),
            tf.reduce_sum(tf.nn.softmax(logits, axis=-1), axis=0), rows]
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        # batch statistics of the global batch, not of this replica's share (the loss is not linear in them)
        sums = replica.all_reduce(tf.distribute.ReduceOp.SUM, sums)
    selected_sum, probability_sum, rows = sums
    fraction, probability = selected_sum / rows, probability_sum / rows
    return tf.reduce_sum(fraction * probability / weights)


@tf.keras.utils.register_keras_serializable(package="tfctr")
class NoisyCosineGate(tf.keras.layers.Layer):
    """Routes each example to k of ``num_choices`` choices (experts, or depths for the controller).

    From X_0 ``[B, N, c]`` (gradient stopped: routers never move the embeddings):

        X̃ = X_0 ⊙ U, U ~ Uniform(1 − ε, 1 + ε)           jitter, training only
        h = Dense_d(ReLU(Dense_{N·c/r}(flatten X̃)))      [B, d]
        g_j = cos(h, e_j) / τ                           e_j learnable choice embeddings, τ = softplus(ρ) + 1e-3
        G = softmax(g masked to its top k)              exactly k non-zeros per row

    Every selected gate is floored at ≈1e-6 (``top_k_softmax``), so a small τ never underflows a selected gate to
    zero and every example reaches exactly k choices. A row whose h is exactly 0 (its ReLU hidden layer all zero
    while the projection's bias is still zero, at initialisation) has no direction: it gets zero logits (top-k by
    index) and no gradient (``cosine_direction``), where ``tf.math.l2_normalize`` gave its projection bias a
    gradient of 1e6.

    Returns ``(G, g)``, both ``[B, num_choices]``. The k in force lives in the non-trainable variable
    ``active_k`` (starting at ``k``) so that ``TopKAnnealing`` can lower it during training; the value it holds
    is also what inference uses. τ is kept
    positive (the authors' code leaves it unconstrained). τ starts at ``temperature`` (1.0 as the paper): cosine
    logits then lie in [−1, 1], so the softmax can weigh the best choice at most e² ≈ 7.4 times the worst until
    τ has been learnt down, which takes many steps; a smaller start gives decisive routing from the first step.

    Args:
        num_choices: experts (or depths).
        k: initial top-k (default all choices: dense).
        reduction_ratio: r (default 16); ``dim``: d (default 16); ``jitter``: ε (default 0.5, the paper's run).
        initial_temperature: the initial τ (default 1.0; ``temperature=`` is its former name, deprecated: the
            method ``temperature()`` gives the τ in force).
    """

    def __init__(self, num_choices, k=None, reduction_ratio=16, dim=16, jitter=0.5, initial_temperature=1.0,
                 **kwargs):
        initial_temperature = renamed_argument("NoisyCosineGate", kwargs, "temperature", "initial_temperature",
                                               initial_temperature, 1.0)
        super().__init__(**kwargs)
        self.num_choices = positive_int("NoisyCosineGate", "num_choices", num_choices)
        self.k = positive_int("NoisyCosineGate", "k", k if k is not None else num_choices)
        if self.k > self.num_choices:
            raise ValueError(f"NoisyCosineGate: k={k} exceeds num_choices={num_choices}")
        self.reduction_ratio = positive_int("NoisyCosineGate", "reduction_ratio", reduction_ratio)
        self.dim = positive_int("NoisyCosineGate", "dim", dim)
        if not 0.0 <= float(jitter) < 1.0:
            raise ValueError(f"NoisyCosineGate: jitter must be in [0, 1), got {jitter}")
        self.jitter = float(jitter)
        if not float(initial_temperature) > TEMPERATURE_FLOOR:
            raise ValueError(f"NoisyCosineGate: initial_temperature must exceed {TEMPERATURE_FLOOR}, "
                             f"got {initial_temperature}")
        self.initial_temperature = float(initial_temperature)

    def build(self, input_shape):
        width = int(input_shape[1]) * int(input_shape[2])
        self.hidden = build_sublayer(tf.keras.layers.Dense(max(1, width // self.reduction_ratio), activation="relu",
                                                           name="hidden"), (None, width))
        self.project = build_sublayer(tf.keras.layers.Dense(self.dim, name="project"),
                                      (None, max(1, width // self.reduction_ratio)))
        self.choice_embeddings = self.add_weight(name="choice_embeddings", shape=(self.num_choices, self.dim),
                                                 initializer="glorot_uniform")
        # τ = softplus(ρ) + TEMPERATURE_FLOOR starts at the initial temperature
        start = np.log(np.expm1(self.initial_temperature - TEMPERATURE_FLOOR))
        self.temperature_raw = self.add_weight(name="temperature", shape=(),
                                               initializer=tf.keras.initializers.Constant(start))
        # the k in force (``k`` is where it starts): a variable, so that TopKAnnealing can lower it in training
        self.active_k = self.add_weight(name="k", shape=(), dtype=tf.int32, trainable=False,
                                        initializer=tf.keras.initializers.Constant(self.k))
        self.jitter_generator = random_generator()  # checkpointed (tfctr.layers.noise)
        super().build(input_shape)

    def temperature(self):
        """The cosine logits' positive temperature, softplus(raw) + ``TEMPERATURE_FLOOR``."""
        return tf.nn.softplus(self.temperature_raw) + TEMPERATURE_FLOOR

    def call(self, x0, training=False):
        x = tf.stop_gradient(tf.reshape(x0, [-1, x0.shape[1] * x0.shape[2]]))
        if training and self.jitter > 0:
            x = x * tf.cast(self.jitter_generator.uniform(tf.shape(x), 1.0 - self.jitter, 1.0 + self.jitter), x.dtype)
        h = cosine_direction(self.project(self.hidden(x)))
        e = tf.math.l2_normalize(tf.cast(self.choice_embeddings, h.dtype), axis=-1)
        logits = tf.matmul(h, e, transpose_b=True) / tf.cast(self.temperature(), h.dtype)
        return top_k_softmax(logits, top_k_mask(logits, self.active_k)), logits

    def get_config(self):
        config = super().get_config()
        config.update(num_choices=self.num_choices, k=self.k, reduction_ratio=self.reduction_ratio,
                      dim=self.dim, jitter=self.jitter, initial_temperature=self.initial_temperature)
        return config


def dispatch_rows(expert, x0, x, gates):
    """Runs ``expert`` only on the rows with a non-zero gate and scatters its outputs back: ``[B, N, c]``, zero
    on the rows it did not receive. The rows are gathered, computed once and scatter-added in batch order."""
    rows = tf.where(gates > 0)[:, 0]

    def run():
        out = expert((tf.gather(x0, rows), tf.gather(x, rows)))
        return tf.scatter_nd(rows[:, None], out, tf.shape(x, out_type=tf.int64))

    # an expert nobody is routed to is not called at all (some kernels, e.g. Conv1D, reject empty batches)
    return tf.cond(tf.size(rows) > 0, run, lambda: tf.zeros_like(x))


@tf.keras.utils.register_keras_serializable(package="tfctr")
class SparseMoE(tf.keras.layers.Layer):
    """One AdaEnsemble layer: ``X_l = Norm(X_{l-1} + Σ_{j ∈ top-k} G_j · E_j(X_{l-1}, X_0))``.

    ``call((x0, x))`` on slots ``[B, N, c]`` → ``[B, N, c]``. The gate (``NoisyCosineGate`` on X_0) picks k of the
    experts per example; with ``dispatch="sparse"`` each expert runs only on the rows routed to it (gather,
    compute, scatter back), so an expert that gets no row costs nothing; ``dispatch="dense"`` runs every expert
    on every row and multiplies by the gates (XLA-friendly; equal outputs). In training the load-distribution
    regulariser ``load_weight · Σ_j f_j P_j / w_j`` (``prior`` w, uniform by default) is added as a layer loss.
    ``tfctr.training.routing_statistics`` and the ``RoutingMetrics`` callback report where the rows go.

    Args:
        expert_kinds: expert kinds, from ``EXPERTS`` (dense, cross, pin, conv, attention), repeats allowed
            (``experts=`` is its former name, deprecated: ``experts`` holds the expert layers once built).
        k: experts per example (default 3).
        num_subspaces: h of the slot layout (the attention expert needs it to recover fields).
        num_fields: F (the conv expert reduces to ⌊F/2⌋ slots, as the authors' code).
        weight_outputs_by_gates: multiply each expert's output by its gate (paper, default); False sums the
            selected outputs unweighted (the authors' code: the gate then only selects).
        residual, normalize: add X_{l-1}; instance-normalise the sum over the N slots (default off).
        prior: expected loads w_j; load_weight: λ of the regulariser (default 1.0).
        gate_reduction_ratio, gate_dim, jitter, gate_temperature: the gate's r, d, ε and initial τ.
        dispatch: ``"sparse"`` or ``"dense"``.
    """

    def __init__(self, expert_kinds=DEFAULT_EXPERT_KINDS, k=3, num_subspaces=1, num_fields=None,
                 weight_outputs_by_gates=True, residual=True, normalize=False, prior=None, load_weight=1.0,
                 gate_reduction_ratio=16, gate_dim=16, jitter=0.5, gate_temperature=1.0, dispatch="sparse",
                 **kwargs):
        expert_kinds = renamed_argument("SparseMoE", kwargs, "experts", "expert_kinds", expert_kinds,
                                        DEFAULT_EXPERT_KINDS)
        super().__init__(**kwargs)
        self.expert_kinds = [choice("SparseMoE", "expert_kinds", e, EXPERTS) for e in expert_kinds]
        if not self.expert_kinds:
            raise ValueError("SparseMoE: expert_kinds must not be empty")
        self.k = positive_int("SparseMoE", "k", k)
        if self.k > len(self.expert_kinds):
            raise ValueError(f"SparseMoE: k={k} exceeds the {len(self.expert_kinds)} experts")
        self.num_subspaces = positive_int("SparseMoE", "num_subspaces", num_subspaces)
        self.num_fields = None if num_fields is None else positive_int("SparseMoE", "num_fields", num_fields)
        self.weight_outputs_by_gates = bool(weight_outputs_by_gates)
        self.residual, self.normalize = bool(residual), bool(normalize)
        self.prior = check_prior("SparseMoE", prior, len(self.expert_kinds))
        self.load_weight = float(load_weight)
        self.gate_reduction_ratio, self.gate_dim, self.jitter = gate_reduction_ratio, gate_dim, jitter
        self.gate_temperature = float(gate_temperature)
        self.dispatch = choice("SparseMoE", "dispatch", dispatch, {"sparse", "dense"})

    def _expert(self, i, kind):
        kwargs = {"name": f"expert_{i}_{kind}"}
        if kind == "attention":
            kwargs["num_subspaces"] = self.num_subspaces
        if kind == "conv" and self.num_fields:
            kwargs["reduced_slots"] = max(self.num_fields // 2, CONV_MIN_SLOTS)
        return EXPERTS[kind](**kwargs)

    def build(self, input_shape):
        x_shape = pair_shapes("SparseMoE", input_shape, pair_only=True)[1]
        self.gate = build_sublayer(NoisyCosineGate(len(self.expert_kinds), self.k, self.gate_reduction_ratio,
                                                   self.gate_dim, self.jitter, self.gate_temperature, name="gate"),
                                   x_shape)
        self.experts = [build_sublayer(self._expert(i, kind), [x_shape, x_shape])
                        for i, kind in enumerate(self.expert_kinds)]
        # experts create some weights on their first call; call each once now, so that an expert no row is
        # routed to (its call is skipped) still has all its weights for saving and restoring
        probe = tf.zeros([1] + x_shape.as_list()[1:])
        for expert in self.experts:
            expert((probe, probe))
        if self.normalize:
            self.norm = build_sublayer(InstanceNormalization(name="norm"), x_shape)
        super().build(input_shape)

    def call(self, inputs, training=False):
        x0, x = inputs
        gates, logits = self.gate(x0, training=training)
        selected = tf.cast(gates > 0, x.dtype)
        weights = gates if self.weight_outputs_by_gates else selected
        mixed = tf.zeros_like(x)
        for j, expert in enumerate(self.experts):
            if self.dispatch == "sparse":
                out = dispatch_rows(expert, x0, x, gates[:, j])
            else:
                out = expert((x0, x))
            mixed += out * weights[:, j, None, None]
        out = x + mixed if self.residual else mixed
        if self.normalize:
            out = self.norm(out)
        if training:
            self.add_loss(self.load_weight * load_distribution_loss(logits, selected, self.prior))
        return out

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(expert_kinds=self.expert_kinds, k=self.k, num_subspaces=self.num_subspaces,
                      num_fields=self.num_fields, weight_outputs_by_gates=self.weight_outputs_by_gates,
                      residual=self.residual, normalize=self.normalize, prior=self.prior,
                      load_weight=self.load_weight, gate_reduction_ratio=self.gate_reduction_ratio,
                      gate_dim=self.gate_dim, jitter=self.jitter, gate_temperature=self.gate_temperature,
                      dispatch=self.dispatch)
        return config
