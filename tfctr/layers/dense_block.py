"""The dense block: standardised numeric features side by side."""

import tensorflow as tf

from tfctr.layers.validation import as_shape_list, as_tensor_list


@tf.keras.utils.register_keras_serializable(package="tfctr")
class DenseBlock(tf.keras.layers.Layer):
    """Stacks n float features ``[B]`` (or ``[B, 1]``) into the dense block ``[B, n]`` (float32).

    Example:
        >>> DenseBlock()([tf.constant([1.0, 2.0]), tf.constant([3.0, 4.0])]).numpy().tolist()
        [[1.0, 3.0], [2.0, 4.0]]
    """

    def call(self, inputs):
        return tf.stack([tf.reshape(tf.cast(x, self.compute_dtype), [-1]) for x in as_tensor_list(inputs)], axis=1)

    def compute_output_shape(self, input_shape):
        shapes = as_shape_list(input_shape)
        return tf.TensorShape([tf.TensorShape(shapes[0])[0], len(shapes)])
