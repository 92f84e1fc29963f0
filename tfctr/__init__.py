"""tfctr: click-through-rate prediction models, layers, training, export and serving on TensorFlow.

Importing tfctr pins the Keras 2 API (``tf-keras``) as ``tf.keras`` by setting ``TF_USE_LEGACY_KERAS=1``
before TensorFlow is first imported. TensorFlow reads that variable once, so if it was already imported
with Keras 3 behind ``tf.keras`` tfctr refuses to load rather than fail later in obscure ways.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _check_keras_2():
    if "tensorflow" not in sys.modules:
        import tensorflow  # noqa: F401  (first import, with the variable set)
    import tensorflow as tf

    keras_module = str(getattr(tf.keras, "__name__", ""))
    if not keras_module.startswith("tf_keras"):
        raise ImportError(
            "tfctr needs the Keras 2 API from tf-keras, but TensorFlow was already imported with Keras 3 "
            f"as tf.keras ({keras_module}). Import tfctr before tensorflow, or set the environment variable "
            "TF_USE_LEGACY_KERAS=1 before anything imports tensorflow, and make sure tf-keras is installed."
        )


_check_keras_2()

from tfctr.features import (  # noqa: E402
    CategoricalFeature,
    FeatureSpec,
    ListFeature,
    NumericFeature,
)
from tfctr.utils import set_seed  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CategoricalFeature",
    "FeatureSpec",
    "ListFeature",
    "NumericFeature",
    "set_seed",
    "__version__",
]
