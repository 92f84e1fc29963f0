"""Field embeddings: per-feature ids -> the ``[B, F, D]`` field embedding tensor."""

import tensorflow as tf

from tfctr.layers.validation import (
    as_shape_list,
    as_tensor_list,
    choice,
    non_negative,
    positive_int,
    positive_int_list,
)

# Tables up to this many floats (16 MB) get dense gradients under ``dense_gradients=None``.
DENSE_GRADIENT_MAX_ELEMENTS = 1 << 22


@tf.custom_gradient
def gather_with_dense_gradient(table, ids):
    """``tf.gather(table, ids)`` whose gradient w.r.t. ``table`` is a dense ``[V, D]`` tensor (the upstream rows
    summed per id with one ``unsorted_segment_sum``) instead of ``IndexedSlices``.

    tf.keras optimizers first deduplicate ``IndexedSlices`` (``Unique`` + a segment sum) and then update the
    table with scatter ops, and Adam additionally decays its whole ``m``/``v`` every step; for tables of a few
    MB the dense gradient and the fused dense update are several times cheaper and give the same update.

    table ``[V, D]``, ids int ``[...]`` → ``[..., D]``.
    """
    rows = tf.gather(table, ids)

    def grad(upstream):
        table_shape = tf.shape(table)
        flat = tf.reshape(upstream, [-1, table_shape[1]])
        return tf.math.unsorted_segment_sum(flat, tf.reshape(ids, [-1]), table_shape[0]), None

    return rows, grad


def _as_batch_vector(ids):
    """Ids of one single-valued field as ``[B]`` (``[B]`` or ``[B, 1]`` in; no op when already ``[B]``: at batch
    1 each op of the served graph counts)."""
    return ids if ids.shape.rank == 1 else tf.reshape(ids, [-1])


@tf.keras.utils.register_keras_serializable(package="tfctr")
class FieldEmbedding(tf.keras.layers.Layer):
    """Embeds F categorical fields into ``E ∈ R^{B×F×D}``.

    Field f with vocabulary size V_f owns rows ``[o_f, o_f + V_f)`` of one table ``T ∈ R^{(Σ V_f)×D}``
    (o_f = Σ_{g<f} V_g), so all single-valued fields are looked up with one gather: ``E[b, f] = T[o_f + id_bf]``.
    A multi-valued field takes ids ``[B, L]`` padded with -1 and is pooled over its non-padding tokens:
    ``E[b, f] = Σ_t T[o_f + id_bft]`` (``"sum"``) or that sum divided by the token count (``"mean"``; an empty
    list gives the zero vector).

    Input: a list of F int tensors, ``[B]`` for single-valued fields and ``[B, L_f]`` for pooled fields.
    Output: ``[B, F, D]``.

    Args:
        vocabulary_sizes: rows per field (vocabulary + OOV, as ``FeatureSpec`` computes them).
        embedding_dim: D.
        poolings: per field ``None`` (single id) or ``"mean"``/``"sum"`` (list of ids); all ``None`` by default.
        embeddings_initializer: initialiser of the table (default: uniform in ±0.05, as Keras Embedding).
        embeddings_regularizer: optional regulariser of the whole table, applied to every row at every step
            (Keras' meaning; rarely what a CTR model wants, see ``rows_l2``).
        rows_l2: λ of the L2 penalty on the rows used by the batch, the meaning CTR libraries give to
            embedding regularisation: ``λ Σ_{j ∈ rows(batch)} ||T_j||²`` over the distinct table rows the batch
            looks up (padding excluded), added as a layer loss. Rows the batch does not use are not decayed.
            Default 0 (none).
        dense_gradients: the table's gradient as a dense ``[ΣV_f, D]`` tensor (True) or as ``IndexedSlices``
            (False). ``None`` (default) chooses dense for tables of at most ``DENSE_GRADIENT_MAX_ELEMENTS``
            floats (16 MB) and sparse above; the update is the same, only its cost differs (see
            ``gather_with_dense_gradient``). Large tables trained with a truly sparse optimizer (Adagrad, SGD,
            FTRL) want ``False``.

    Example:
        >>> layer = FieldEmbedding([10, 5], 4)
        >>> layer([tf.constant([1, 2]), tf.constant([0, 4])]).shape
        TensorShape([2, 2, 4])
    """

    def __init__(self, vocabulary_sizes, embedding_dim, poolings=None, embeddings_initializer="uniform",
                 embeddings_regularizer=None, dense_gradients=None, rows_l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_sizes = positive_int_list("FieldEmbedding", "vocabulary_sizes", vocabulary_sizes)
        self.embedding_dim = positive_int("FieldEmbedding", "embedding_dim", embedding_dim)
        poolings = [None] * len(self.vocabulary_sizes) if poolings is None else list(poolings)
        if len(poolings) != len(self.vocabulary_sizes):
            raise ValueError(f"FieldEmbedding: poolings has {len(poolings)} entries for "
                             f"{len(self.vocabulary_sizes)} fields")
        self.poolings = [None if p is None else choice("FieldEmbedding", f"poolings[{i}]", p, {"mean", "sum"})
                         for i, p in enumerate(poolings)]
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
        self.dense_gradients = None if dense_gradients is None else bool(dense_gradients)
        self.rows_l2 = non_negative("FieldEmbedding", "rows_l2", rows_l2)
        offsets, total = [], 0
        for size in self.vocabulary_sizes:
            offsets.append(total)
            total += size
        self._offsets = offsets
        self._dense = (total * self.embedding_dim <= DENSE_GRADIENT_MAX_ELEMENTS if dense_gradients is None
                       else self.dense_gradients)
        self._single = [i for i, p in enumerate(self.poolings) if p is None]
        self._pooled = [i for i, p in enumerate(self.poolings) if p is not None]
        # position of each field in concat(single fields, pooled fields)
        order = self._single + self._pooled
        self._restore = [order.index(i) for i in range(len(order))]

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(sum(self.vocabulary_sizes), self.embedding_dim),
            initializer=self.embeddings_initializer, regularizer=self.embeddings_regularizer)
        super().build(input_shape)

    def _lookup(self, ids):
        if self._dense:
            return gather_with_dense_gradient(tf.convert_to_tensor(self.embeddings), ids)
        return tf.nn.embedding_lookup(self.embeddings, ids)

    def call(self, inputs):
        inputs = as_tensor_list(inputs)
        if len(inputs) != len(self.vocabulary_sizes):
            raise ValueError(f"FieldEmbedding expects {len(self.vocabulary_sizes)} id tensors, got {len(inputs)}")
        parts, used_rows = [], []
        if self._single:
            ids = tf.stack([_as_batch_vector(tf.cast(inputs[i], tf.int32)) for i in self._single], axis=1)
            ids = ids + tf.constant([self._offsets[i] for i in self._single], dtype=tf.int32)
            parts.append(self._lookup(ids))
            used_rows.append(tf.reshape(ids, [-1]))
        for i in self._pooled:
            ids = tf.cast(inputs[i], tf.int32)
            mask = tf.cast(ids >= 0, self.embeddings.dtype)[..., None]
            vectors = self._lookup(tf.maximum(ids, 0) + self._offsets[i]) * mask
            used_rows.append(tf.boolean_mask(ids, ids >= 0) + self._offsets[i])
            pooled = tf.reduce_sum(vectors, axis=1)
            if self.poolings[i] == "mean":
                pooled = pooled / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            parts.append(pooled[:, None, :])
        stacked = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        if self._restore != list(range(len(self._restore))):
            stacked = tf.gather(stacked, self._restore, axis=1)
        if self.rows_l2:
            self.add_loss(self.rows_penalty(tf.concat(used_rows, axis=0)))
        return stacked

    def rows_penalty(self, rows):
        """``rows_l2 · Σ_j ||T_j||²`` over the distinct table rows ``j`` in the int tensor ``rows`` (a scalar)."""
        distinct = tf.unique(tf.reshape(rows, [-1])).y
        return self.rows_l2 * tf.reduce_sum(tf.square(tf.gather(self.embeddings, distinct)))

    def compute_output_shape(self, input_shape):
        batch = tf.TensorShape(as_shape_list(input_shape)[0])[0]
        return tf.TensorShape([batch, len(self.vocabulary_sizes), self.embedding_dim])

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_sizes=self.vocabulary_sizes,
            embedding_dim=self.embedding_dim,
            poolings=self.poolings,
            embeddings_initializer=tf.keras.initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=tf.keras.regularizers.serialize(self.embeddings_regularizer),
            dense_gradients=self.dense_gradients,
            rows_l2=self.rows_l2,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfctr")
class SelectField(tf.keras.layers.Layer):
    """One field's embedding out of the field embeddings: ``[B, F, D]`` → ``[B, D]`` (field ``index``). A model
    uses it to condition a layer on one feature, e.g. APG's group-wise weights generated from the user id's
    embedding."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"SelectField: index must be a field position ≥ 0, got {index!r}")
        self.index = index

    def build(self, input_shape):
        if len(input_shape) != 3 or not self.index < int(input_shape[1]):
            raise ValueError(f"SelectField: field {self.index} of field embeddings [B, F, D]; got {input_shape}")
        super().build(input_shape)

    def call(self, fields):
        return fields[:, self.index, :]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], input_shape[2]])

    def get_config(self):
        return {**super().get_config(), "index": self.index}
