"""APG: adaptive parameter generation for dense layers (Yan et al., NeurIPS 2022; METHODS.md §3).

A dense layer ``y = act(x W + b)`` whose weight is generated per example from a condition z:

* v1: ``W_i = reshape(G(z_i))`` ∈ R^{d_in×d_out} (everything generated);
* v2: ``W_i = U_i S_i V_i`` with U_i, S_i, V_i all generated, W_i reconstructed, then ``x W_i``;
* v3: the same generated factors, decomposed feed-forward ``((x U_i) S_i) V_i``;
* v4: only ``S_i = reshape(G(z_i))`` ∈ R^{K×K} generated, shared ``A`` ∈ R^{d_in×K`` and ``Bm`` ∈ R^{K×d_out}:
  ``y = ((x A) S_i) Bm + b`` (paper eq. 9: never materialises a d_in×d_out matrix);
* v5 (default): v4 with over-parameterised ``A = A_l A_r``, ``Bm = B_l B_r`` (inner width P ≫ K) for training;
  ``serving_form()`` folds the products, so the exported layer is exactly v4.

Conditions: self-wise (default; z = the layer input x), or a condition tensor passed with the input
(``layer((x, z))``: group-wise, e.g. a user embedding), or several (``layer((x, [z_1, ..., z_k]))``: mix-wise)
aggregated before the generator (``aggregation="input_concat" | "input_mean" | "input_attention"``) or after it
(``"output_mean" | "output_attention"``, one generator per condition). Attention is additive,
``a_j = softmax_j(v · tanh(z_j W_a + b_a))`` (our design; the paper leaves it open), and needs equal condition
widths, as does mean.

The generator G is linear by default (``generator_units=()``, the paper's single layer) or an MLP with ReLU
hidden layers. The bias is a static learned vector by default, or generated per example (``generate_bias``).

Input ``x`` ``[B, d_in]`` (+ conditions ``[B, d_z]``), output ``[B, units]``.
"""

import warnings

import tensorflow as tf

from tfctr.layers.validation import as_shape_list, choice, fresh, positive_int

_VERSIONS = {"v1", "v2", "v3", "v4", "v5"}


def _as_lists(shape):
    """A (nested) input shape as nested lists of ints/None."""
    if isinstance(shape, tf.TensorShape):
        return shape.as_list()
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, tf.TensorShape)):
        return [_as_lists(s) for s in shape]
    return list(shape)


def zeros_of(shapes):
    """Zeros of batch 1 in the (nested) structure of ``_as_lists`` shapes."""
    if shapes and isinstance(shapes[0], (list, tuple)):
        return [zeros_of(s) for s in shapes]
    return tf.zeros([1, *shapes[1:]])
_AGGREGATIONS = {"input_concat", "input_mean", "input_attention", "output_mean", "output_attention"}


@tf.keras.utils.register_keras_serializable(package="tfctr")
class APGDense(tf.keras.layers.Layer):
    """Adaptive-parameter dense layer (see the module docstring for the equations of every version).

    Args:
        units: d_out.
        rank: K (default 4); v2–v5 only.
        version: ``"v1"`` … ``"v5"`` (default ``"v5"``).
        overparam_dim: P, the inner width of the over-parameterisation (default 64); v5 only.
        activation: activation of the output (default none).
        generator_units: hidden widths of the generator MLP (default ``()``: linear).
        generate_bias: generate the bias per example instead of a static one (default False).
        aggregation: how several conditions combine (default ``"input_concat"``).
        kernel_initializer: initialiser of A, Bm (or their factors) and the generator (default Glorot normal).

    Example:
        >>> APGDense(8, rank=2)(tf.ones([3, 5])).shape
        TensorShape([3, 8])
    """

    def __init__(self, units, rank=4, version="v5", overparam_dim=64, activation=None, generator_units=(),
                 generate_bias=False, aggregation="input_concat", kernel_initializer="glorot_normal",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int("APGDense", "units", units)
        self.rank = positive_int("APGDense", "rank", rank)
        self.version = choice("APGDense", "version", version, _VERSIONS)
        self.overparam_dim = positive_int("APGDense", "overparam_dim", overparam_dim)
        if self.version == "v5" and self.overparam_dim < self.rank:
            warnings.warn(f"APGDense '{self.name}': overparam_dim P={self.overparam_dim} is below rank K={self.rank}, "
                          f"so A = A_l A_r and Bm = B_l B_r have rank at most P: the over-parameterisation then "
                          f"restricts the layer instead of easing its training (use P ≥ K, typically P ≫ K)",
                          stacklevel=2)
        self.activation = tf.keras.activations.get(activation)
        self.generator_units = [positive_int("APGDense", "generator_units", u) for u in generator_units]
        self.generate_bias = bool(generate_bias)
        self.aggregation = choice("APGDense", "aggregation", aggregation, _AGGREGATIONS)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def _matrix(self, name, shape):
        return self.add_weight(name=name, shape=shape, initializer=fresh(self.kernel_initializer),
                               regularizer=self.kernel_regularizer)

    # --------------------------------------------------------------------------------------------- shapes
    @staticmethod
    def _split(inputs):
        """(x, [conditions]) from x, (x, z) or (x, [z_1, ..., z_k]); self-wise: the condition is x itself."""
        if isinstance(inputs, (list, tuple)):
            x, conditions = inputs
            return x, list(conditions) if isinstance(conditions, (list, tuple)) else [conditions]
        return inputs, [inputs]

    def _generated_size(self, d_in: int) -> int:
        k, d_out = self.rank, self.units
        size = {"v1": d_in * d_out, "v2": d_in * k + k * k + k * d_out, "v3": d_in * k + k * k + k * d_out}.get(
            self.version, k * k)
        return size + (d_out if self.generate_bias else 0)

    def build(self, input_shape):
        shapes = as_shape_list(input_shape)
        if len(shapes) == 2:  # (x, z) or (x, [z_1, ..., z_k])
            x_shape, condition_shapes = shapes[0], as_shape_list(shapes[1])
        else:
            x_shape, condition_shapes = shapes[0], [shapes[0]]
        self.input_shapes = _as_lists(input_shape)  # what serving_form builds its folded twin with
        d_in = int(tf.TensorShape(x_shape)[-1])
        widths = [int(tf.TensorShape(s)[-1]) for s in condition_shapes]
        mixing = self.aggregation.split("_")[1]
        if len(widths) > 1 and mixing in ("mean", "attention") and len(set(widths)) > 1:
            raise ValueError(f"APGDense: aggregation '{self.aggregation}' needs conditions of equal width, "
                             f"got {widths}")
        k, p, d_out = self.rank, self.overparam_dim, self.units
        if self.version == "v4":
            self.a, self.b = self._matrix("a", (d_in, k)), self._matrix("b", (k, d_out))
        elif self.version == "v5":
            self.a_l, self.a_r = self._matrix("a_l", (d_in, p)), self._matrix("a_r", (p, k))
            self.b_l, self.b_r = self._matrix("b_l", (k, p)), self._matrix("b_r", (p, d_out))
        if not self.generate_bias:
            self.bias = self.add_weight(name="bias", shape=(d_out,), initializer="zeros")
        if len(widths) == 1 or self.aggregation.startswith("output"):
            generator_inputs = widths
        else:
            generator_inputs = [sum(widths) if mixing == "concat" else widths[0]]
        # one flat list (Keras saving walks lists of layers, not lists of lists); generator i is a slice of it
        self.generator_layers = [layer for i, width in enumerate(generator_inputs)
                                 for layer in self._generator(d_in, width, f"generator_{i}")]
        if len(widths) > 1 and mixing == "attention":
            self.attention = tf.keras.layers.Dense(widths[0], activation="tanh", name="attention_hidden")
            self.attention_score = tf.keras.layers.Dense(1, use_bias=False, name="attention_score")
            self.attention.build((None, widths[0]))
            self.attention_score.build((None, widths[0]))
        super().build(input_shape)

    def _generator(self, d_in, width, name):
        """The generator MLP, built now (so that every weight exists before a saved model restores it)."""
        layers = [tf.keras.layers.Dense(u, activation="relu", kernel_initializer=fresh(self.kernel_initializer),
                                        kernel_regularizer=self.kernel_regularizer, name=f"{name}_hidden_{i}")
                  for i, u in enumerate(self.generator_units)]
        layers.append(tf.keras.layers.Dense(self._generated_size(d_in),
                                            kernel_initializer=fresh(self.kernel_initializer),
                                            kernel_regularizer=self.kernel_regularizer, name=f"{name}_out"))
        for layer in layers:
            layer.build((None, width))
            width = layer.units
        return layers

    @property
    def generators(self) -> list:
        """The generator MLPs, each a list of Dense layers."""
        depth = len(self.generator_units) + 1
        return [self.generator_layers[i:i + depth] for i in range(0, len(self.generator_layers), depth)]

    # --------------------------------------------------------------------------------------------- forward
    @staticmethod
    def _run(generator, z):
        for layer in generator:
            z = layer(z)
        return z

    def _attention_weights(self, conditions):
        scores = tf.concat([self.attention_score(self.attention(z)) for z in conditions], axis=1)  # [B, k]
        return tf.nn.softmax(scores, axis=1)

    def _generate(self, conditions):
        """The generated parameters ``[B, size]`` from the condition(s), aggregated as configured."""
        if len(conditions) == 1:
            return self._run(self.generators[0], conditions[0])
        where, how = self.aggregation.split("_")
        if where == "input":
            if how == "concat":
                z = tf.concat(conditions, axis=1)
            elif how == "mean":
                z = tf.add_n(conditions) / len(conditions)
            else:
                z = tf.einsum("bk,bkd->bd", self._attention_weights(conditions), tf.stack(conditions, axis=1))
            return self._run(self.generators[0], z)
        generated = tf.stack([self._run(g, z) for g, z in zip(self.generators, conditions)], axis=1)  # [B, k, s]
        if how == "mean":
            return tf.reduce_mean(generated, axis=1)
        return tf.einsum("bk,bks->bs", self._attention_weights(conditions), generated)

    def shared_factors(self):
        """(A, Bm) of v4/v5: v5 multiplies its factors (what ``serving_form`` stores once)."""
        if self.version == "v4":
            return self.a, self.b
        return tf.matmul(self.a_l, self.a_r), tf.matmul(self.b_l, self.b_r)

    def call(self, inputs):
        x, conditions = self._split(inputs)
        params = self._generate(conditions)
        d_in, k, d_out = x.shape[-1], self.rank, self.units
        if self.generate_bias:
            bias, params = params[:, :d_out], params[:, d_out:]
        else:
            bias = self.bias
        if self.version == "v1":
            out = tf.einsum("bi,bio->bo", x, tf.reshape(params, [-1, d_in, d_out]))
        elif self.version in ("v2", "v3"):
            u = tf.reshape(params[:, :d_in * k], [-1, d_in, k])
            s = tf.reshape(params[:, d_in * k:d_in * k + k * k], [-1, k, k])
            v = tf.reshape(params[:, d_in * k + k * k:], [-1, k, d_out])
            if self.version == "v2":  # reconstruct W_i = U_i S_i V_i, then x W_i
                out = tf.einsum("bi,bio->bo", x, tf.matmul(tf.matmul(u, s), v))
            else:
                out = tf.einsum("bk,bko->bo", tf.einsum("bj,bjk->bk", tf.einsum("bi,bik->bk", x, u), s), v)
        else:
            a, b = self.shared_factors()
            s = tf.reshape(params, [-1, k, k])
            out = tf.matmul(tf.einsum("bj,bjk->bk", tf.matmul(x, a), s), b)
        return self.activation(out + bias)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(as_shape_list(input_shape)[0])[:-1].concatenate([self.units])

    # --------------------------------------------------------------------------------------------- serving
    @property
    def needs_folding(self) -> bool:
        """Only v5 has a cheaper serving form (its factors multiplied once)."""
        return self.version == "v5"

    def serving_form(self):
        """v5 → the equivalent v4 layer with A = A_l A_r and Bm = B_l B_r stored once; other versions as they are
        (a copy with the same weights)."""
        config = self.get_config()
        weights = self.get_weights()
        if self.version == "v5":  # build order: a_l, a_r, b_l, b_r, then what v4 has after its a, b
            config["version"] = "v4"
            weights = [w.numpy() for w in self.shared_factors()] + weights[4:]
        folded = APGDense.from_config(config)
        folded(zeros_of(self.input_shapes))  # builds the generator's sublayers too
        folded.set_weights(weights)
        return folded

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, rank=self.rank, version=self.version, overparam_dim=self.overparam_dim,
            activation=tf.keras.activations.serialize(self.activation), generator_units=self.generator_units,
            generate_bias=self.generate_bias, aggregation=self.aggregation,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=tf.keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
