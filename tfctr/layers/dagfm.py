"""The directed acyclic graph factorization machine (DAGFM) of KD-DAGFM (Tian et al., WSDM'23)."""


import numpy as np
import tensorflow as tf

from tfctr.layers.validation import choice, positive_int, renamed_argument

INTERACTION_TYPES = ("inner", "outer", "kernel")
READOUTS = ("layer_sums", "state_sum")


def dag_mask(fields: int) -> np.ndarray:
    """``M[i, j] = 1`` iff there is an edge i → j, i.e. i ≤ j (self-loops included): ``[F, F]`` float32."""
    return np.triu(np.ones((fields, fields), dtype=np.float32))


@tf.keras.utils.register_keras_serializable(package="tfctr")
class DAGFM(tf.keras.layers.Layer):
    """DAGFM: explicit interactions as paths in a DAG over the fields, computed by dynamic programming.

    Each field is a node, with an edge i → j for every i ≤ j. From the field-mixed embeddings
    ``H_0 = C · E`` (``C`` an ``[F, F]`` "connect" matrix initialised to the identity), layer t = 1..L updates
    every node j from its predecessors:

        H_t[j] = H_0[j] ⊙ Σ_{i ≤ j} msg_t(i → j)

    with the message of the interaction type

        inner:   msg = p_ij ⊙ H_{t-1}[i]               p_ij ∈ R^D       (the CIN-like type)
        outer:   msg = <H_{t-1}[i], p_ij> · q_ij       p_ij, q_ij ∈ R^D (a rank-1 matrix per edge; CrossNet-like)
        kernel:  msg = H_{t-1}[i] · W_ij               W_ij ∈ R^{D×D}   (a full bilinear kernel per edge)

    Unrolled, every monotone path i_0 ≤ i_1 ≤ … ≤ i_t = j carries ``e_{i_0} ⊙ … ⊙ e_{i_t}`` times the product of
    its edge parameters, and each interaction of order k is exactly one path of length k − 1, so L layers give
    every interaction up to order L + 1 its own learned weight in O(L·F²·D) (kernel: O(L·F²·D²)) per example.
    The kernel type is named in the paper but absent from its code: this is our reconstruction, with the same
    recursion, masking and readout as the other two.

    Input ``[B, F, D]``. Output:

    * ``readout="layer_sums"`` (the DAGFM student): ``[s_0, …, s_L]`` with ``s_t = Σ_d H_t[:, :, d]``,
      ``[B, F·(L+1)]``; a dense layer on it gives the logit;
    * ``readout="state_sum"`` (the KD-DAGFM+ student, which stacks an MLP on it): ``H_0 + Σ_t H_t``,
      ``[B, F, D]``.

    Training multiplies the edge parameters by the DAG mask, so the entries of non-edges (i > j) stay unused
    and receive no gradient. ``serving_form()`` returns the same layer with the mask already applied to its
    weights and ``apply_mask=False``, which the exporter's folding hook puts in the served graph.

    Args:
        interaction_type: ``"inner"`` (default), ``"outer"`` or ``"kernel"``.
        num_layers: L, propagation layers (default 3: interactions up to order 4).
        connect: learn the field-mixing matrix C (identity-initialised); False uses ``H_0 = E``.
        readout: ``"layer_sums"`` or ``"state_sum"`` (see above). ``output=`` is its former name (deprecated: a
            Keras layer's ``output`` is its output tensor).
        apply_mask: multiply the edge parameters by the DAG mask in ``call`` (True except in the serving form).
        kernel_initializer: initialiser of the edge parameters; default N(0, 2/(F·D)) (kernel type:
            N(0, 2/(F·D·D))), the Xavier-normal (gain √2) scale of the authors' code.
        kernel_regularizer: optional regulariser of the edge parameters.

    Example:
        >>> DAGFM("inner", num_layers=2)(tf.ones([4, 3, 8])).shape
        TensorShape([4, 9])
    """

    def __init__(self, interaction_type="inner", num_layers=3, connect=True, readout="layer_sums", apply_mask=True,
                 kernel_initializer=None, kernel_regularizer=None, **kwargs):
        readout = renamed_argument("DAGFM", kwargs, "output", "readout", readout, "layer_sums")
        super().__init__(**kwargs)
        self.interaction_type = choice("DAGFM", "interaction_type", interaction_type, INTERACTION_TYPES)
        self.num_layers = positive_int("DAGFM", "num_layers", num_layers)
        self.connect = bool(connect)
        self.readout = choice("DAGFM", "readout", readout, READOUTS)
        self.apply_mask = bool(apply_mask)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer) if kernel_initializer else None
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def _initializer(self, fields, dim):
        if self.kernel_initializer is not None:
            return tf.keras.initializers.get(tf.keras.initializers.serialize(self.kernel_initializer))
        fan = fields * dim * (dim if self.interaction_type == "kernel" else 1)
        return tf.keras.initializers.RandomNormal(stddev=float(np.sqrt(2.0 / fan)))

    def _edge_weight(self, name, shape, fields, dim):
        return self.add_weight(name=name, shape=shape, initializer=self._initializer(fields, dim),
                               regularizer=self.kernel_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"DAGFM: expected field embeddings [B, F, D] with known F and D, got {input_shape}")
        fields, dim = int(input_shape[1]), int(input_shape[2])
        self.fields, self.dim = fields, dim
        if self.connect:
            self.connect_kernel = self.add_weight(name="connect", shape=(fields, fields),
                                                  initializer=tf.keras.initializers.Identity())
        mask = dag_mask(fields)
        self.p, self.q = [], []
        for t in range(self.num_layers):
            if self.interaction_type == "inner":  # p[d, i, j]
                self.p.append(self._edge_weight(f"p_{t}", (dim, fields, fields), fields, dim))
            elif self.interaction_type == "outer":  # p[i, d, j] and q[j, i, d]
                self.p.append(self._edge_weight(f"p_{t}", (fields, dim, fields), fields, dim))
                self.q.append(self._edge_weight(f"q_{t}", (fields, fields, dim), fields, dim))
            else:  # W[(i, d), (j, d')]
                self.p.append(self._edge_weight(f"w_{t}", (fields * dim, fields * dim), fields, dim))
        # the mask broadcast to each parameter's layout
        self._p_mask = {"inner": mask[None], "outer": mask[:, None, :],
                        "kernel": np.kron(mask, np.ones((dim, dim), np.float32))}[self.interaction_type]
        self._q_mask = mask.T[:, :, None]
        super().build(input_shape)

    def _masked(self, weight, mask):
        return weight * tf.cast(mask, weight.dtype) if self.apply_mask else weight

    def call(self, inputs):
        # Each type propagates in the layout its contractions want and reads out in that layout, so the only
        # transposes are the one into it and, for the outer type's sums or a state_sum output, one back.
        layout = _LAYOUTS[self.interaction_type]
        step = {"inner": self._inner, "outer": self._outer, "kernel": self._kernel}[self.interaction_type]
        base = layout.enter(inputs, self.connect_kernel if self.connect else None)
        states, h = [base], base
        for t in range(self.num_layers):
            h = base * step(h, t)
            states.append(h)
        if self.readout == "state_sum":
            return layout.leave(tf.add_n(states), self.fields, self.dim)
        return layout.sums_out([layout.node_sums(s, self.fields, self.dim) for s in states])

    def _inner(self, h, t):  # h [D, B, F]: msg[d, b, j] = Σ_i h[d, b, i] p[d, i, j]
        return tf.matmul(h, self._masked(self.p[t], self._p_mask))

    def _outer(self, h, t):  # h [F, B, D]
        scores = tf.matmul(h, self._masked(self.p[t], self._p_mask))  # [i, b, j] = <h_i, p_ij>
        return tf.matmul(tf.transpose(scores, [2, 1, 0]), self._masked(self.q[t], self._q_mask))  # [j, b, d]

    def _kernel(self, h, t):  # h [B, F·D]
        return tf.matmul(h, self._masked(self.p[t], self._p_mask))

    @property
    def needs_folding(self) -> bool:
        """True when the DAG mask is applied in the graph; ``serving_form`` multiplies it into the weights."""
        return self.apply_mask

    def serving_form(self):
        """This layer with the DAG mask multiplied into its edge weights and ``apply_mask=False``."""
        config = dict(self.get_config(), apply_mask=False)
        served = DAGFM.from_config(config)
        served.build(tf.TensorShape([None, self.fields, self.dim]))
        masks = {id(w): self._p_mask for w in self.p}
        masks.update({id(w): self._q_mask for w in self.q})
        values = [w.numpy() * masks[id(w)] if id(w) in masks else w.numpy() for w in self.weights]
        served.set_weights(values)
        return served

    def compute_output_shape(self, input_shape):
        fields = input_shape[1]
        if self.readout == "state_sum":
            return tf.TensorShape(input_shape)
        return tf.TensorShape([input_shape[0], fields * (self.num_layers + 1)])

    def get_config(self):
        config = super().get_config()
        config.update(
            interaction_type=self.interaction_type, num_layers=self.num_layers, connect=self.connect,
            readout=self.readout, apply_mask=self.apply_mask,
            kernel_initializer=(tf.keras.initializers.serialize(self.kernel_initializer)
                                if self.kernel_initializer is not None else None),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


class _Layout:
    """How one interaction type holds the states while propagating: ``enter`` maps E ``[B, F, D]`` to H_0 in the
    layout (applying C when given), ``leave`` maps a state back to ``[B, F, D]``, ``node_sums`` gives the per-node
    sums Σ_d H_t in the layout's own order and ``sums_out`` joins the L + 1 of them into ``[B, F·(L+1)]``."""

    @staticmethod
    def sums_out(sums):
        return tf.concat(sums, axis=1)


class _InnerLayout(_Layout):
    """Propagation layout ``[D, B, F]``: each d is an independent ``[B, F] @ [F, F]`` matmul."""

    @staticmethod
    def enter(x, connect):  # H0[d, b, j] = Σ_f E[b, f, d] C[j, f]
        h = tf.transpose(x, [2, 0, 1])
        return h if connect is None else tf.matmul(h, connect, transpose_b=True)

    @staticmethod
    def leave(h, fields, dim):
        return tf.transpose(h, [1, 2, 0])

    @staticmethod
    def node_sums(h, fields, dim):  # [B, F]
        return tf.reduce_sum(h, axis=0)


class _OuterLayout(_Layout):
    """Propagation layout ``[F, B, D]``: node i's states are contiguous for the per-node scores."""

    @staticmethod
    def enter(x, connect):  # H0[j, b, d] = Σ_f C[j, f] E[b, f, d]
        h = tf.transpose(x, [1, 0, 2])
        if connect is None:
            return h
        shape = tf.shape(h)
        return tf.reshape(tf.matmul(connect, tf.reshape(h, [shape[0], -1])), shape)

    @staticmethod
    def leave(h, fields, dim):
        return tf.transpose(h, [1, 0, 2])

    @staticmethod
    def node_sums(h, fields, dim):  # [F, B]
        return tf.reduce_sum(h, axis=2)

    @staticmethod
    def sums_out(sums):  # [(L+1)·F, B] -> [B, (L+1)·F], one transpose for all layers
        return tf.transpose(tf.concat(sums, axis=0))


class _KernelLayout(_Layout):
    """Propagation layout ``[B, F·D]``: one dense matmul per layer."""

    @staticmethod
    def enter(x, connect):
        h = x if connect is None else tf.einsum("jf,bfd->bjd", connect, x)
        return tf.reshape(h, [-1, h.shape[1] * h.shape[2]])

    @staticmethod
    def leave(h, fields, dim):
        return tf.reshape(h, [-1, fields, dim])

    @staticmethod
    def node_sums(h, fields, dim):  # [B, F]
        return tf.reduce_sum(tf.reshape(h, [-1, fields, dim]), axis=2)


_LAYOUTS = {"inner": _InnerLayout, "outer": _OuterLayout, "kernel": _KernelLayout}
