"""Field embeddings: per-feature ids -> the ``[B, F, D]`` field embedding tensor."""

import tensorflow as tf

from tfctr.layers._validation import as_shape_list, as_tensor_list, choice, positive_int, positive_int_list


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
        embeddings_regularizer: optional regulariser of the table.

    Example:
        >>> layer = FieldEmbedding([10, 5], 4)
        >>> layer([tf.constant([1, 2]), tf.constant([0, 4])]).shape
        TensorShape([2, 2, 4])
    """

    def __init__(self, vocabulary_sizes, embedding_dim, poolings=None, embeddings_initializer="uniform",
                 embeddings_regularizer=None, **kwargs):
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
        offsets, total = [], 0
        for size in self.vocabulary_sizes:
            offsets.append(total)
            total += size
        self._offsets = offsets
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

    def call(self, inputs):
        inputs = as_tensor_list(inputs)
        if len(inputs) != len(self.vocabulary_sizes):
            raise ValueError(f"FieldEmbedding expects {len(self.vocabulary_sizes)} id tensors, got {len(inputs)}")
        parts = []
        if self._single:
            ids = tf.stack([tf.reshape(tf.cast(inputs[i], tf.int32), [-1]) for i in self._single], axis=1)
            ids = ids + tf.constant([self._offsets[i] for i in self._single], dtype=tf.int32)
            parts.append(tf.nn.embedding_lookup(self.embeddings, ids))
        for i in self._pooled:
            ids = tf.cast(inputs[i], tf.int32)
            mask = tf.cast(ids >= 0, self.embeddings.dtype)[..., None]
            vectors = tf.nn.embedding_lookup(self.embeddings, tf.maximum(ids, 0) + self._offsets[i]) * mask
            pooled = tf.reduce_sum(vectors, axis=1)
            if self.poolings[i] == "mean":
                pooled = pooled / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            parts.append(pooled[:, None, :])
        stacked = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        if self._restore != list(range(len(self._restore))):
            stacked = tf.gather(stacked, self._restore, axis=1)
        return stacked

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
        )
        return config
