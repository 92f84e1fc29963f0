"""From a FeatureSpec to Keras inputs, field embeddings, the dense block, the linear part and the head."""

import tensorflow as tf

from tfctr.data.encoding import model_input_shape_and_dtype
from tfctr.features import FeatureSpec, ListFeature
from tfctr.layers import DenseBlock, FieldEmbedding, LinearLogit
from tfctr.models import recipe

EMBEDDING_LAYER = "field_embedding"  # the name of every model's FieldEmbedding (distillation and search read it)


def model_inputs(spec: FeatureSpec) -> dict:
    """One ``tf.keras.Input`` per feature, named after it, with the shape and dtype the data pipeline yields."""
    inputs = {}
    for feature in spec.features:
        shape, dtype = model_input_shape_and_dtype(feature)
        inputs[feature.name] = tf.keras.Input(shape=shape, dtype=dtype, name=feature.name)
    return inputs


def _embedding_args(spec: FeatureSpec):
    embedded = spec.embedded
    sizes = [f.vocabulary_size for f in embedded]
    poolings = [f.pooling if isinstance(f, ListFeature) else None for f in embedded]
    return embedded, sizes, poolings


def embed_fields(spec: FeatureSpec, inputs: dict, embedding_dim: int, l2_embedding: float = 0.0):
    """Field embeddings ``[B, F, D]`` of the embedded features and the dense block ``[B, n]`` (or None).

    The table starts as N(0, ``recipe.EMBEDDING_STDDEV``²); ``l2_embedding`` penalises the rows each batch uses
    (``FieldEmbedding(rows_l2=)``), not the whole table."""
    embedded, sizes, poolings = _embedding_args(spec)
    initializer = tf.keras.initializers.RandomNormal(stddev=recipe.EMBEDDING_STDDEV)
    fields = FieldEmbedding(sizes, embedding_dim, poolings, embeddings_initializer=initializer,
                            rows_l2=l2_embedding, name=EMBEDDING_LAYER)([inputs[f.name] for f in embedded])
    return fields, dense_block(spec, inputs)


def dense_block(spec: FeatureSpec, inputs: dict):
    """The standardised numeric features as ``[B, n]``, or None when the spec has none."""
    return DenseBlock(name="dense_block")([inputs[f.name] for f in spec.dense]) if spec.dense else None


def linear_logit(spec: FeatureSpec, inputs: dict, dense, l2_embedding: float = 0.0, l2_table: float = 0.0):
    """The first-order logit ``[B, 1]`` over every feature (ids and the dense block). ``l2_embedding`` penalises
    the id weights each batch uses; ``l2_table`` is Keras' L2 on the whole table and the dense weights."""
    embedded, sizes, poolings = _embedding_args(spec)
    layer = LinearLogit(sizes, poolings, num_dense=len(spec.dense), rows_l2=l2_embedding,
                        kernel_regularizer=tf.keras.regularizers.l2(l2_table) if l2_table else None, name="linear")
    return layer([inputs[f.name] for f in embedded] + ([dense] if dense is not None else []))


def flat_input(fields, dense):
    """``x0 = [flatten(E), dense]`` of width ``F·D + n``: the input of MLPs and cross networks."""
    flat = tf.keras.layers.Flatten(name="flatten_fields")(fields)
    return flat if dense is None else tf.keras.layers.Concatenate(name="x0")([flat, dense])


def head(inputs: dict, logit_terms: list, name: str):
    """Sums the logit terms (each ``[B, 1]``) into layer ``"logit"`` and returns the model with output
    ``"probability"`` = sigmoid(logit), computed in float32 so it is safe under mixed precision."""
    logit = logit_terms[0] if len(logit_terms) == 1 else tf.keras.layers.Add(name="logit_sum")(logit_terms)
    logit = tf.keras.layers.Activation("linear", dtype="float32", name="logit")(logit)
    probability = tf.keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
    return tf.keras.Model(inputs=inputs, outputs=probability, name=name)


def logit_model(model: tf.keras.Model) -> tf.keras.Model:
    """A model sharing ``model``'s weights that returns the logit ``[B, 1]`` (what distillation matches)."""
    return tf.keras.Model(model.inputs, model.get_layer("logit").output, name=f"{model.name}_logit")
