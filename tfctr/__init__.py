"""tfctr: click-through-rate prediction models, layers, training, export and serving on TensorFlow.

``import tfctr`` is all a user needs: the subpackages ``tfctr.layers``, ``tfctr.models``, ``tfctr.data``,
``tfctr.training``, ``tfctr.export``, ``tfctr.serving`` (and the modules ``metrics``, ``plots``) load on first
use, and every tfctr layer is registered with Keras at import, so ``tf.keras.models.load_model`` reads a saved
tfctr model after a bare ``import tfctr``.

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
        from tfctr._quiet import native_stderr_hidden

        with native_stderr_hidden():  # TensorFlow's native start-up lines (TFCTR_TF_LOGS=1 shows them)
            import tensorflow  # noqa: F401  (first import, with the variable set)
    import tensorflow as tf

    keras_module = str(getattr(tf.keras, "__name__", ""))
    if not keras_module.startswith("tf_keras"):
        raise ImportError(
            "tfctr needs the Keras 2 API from tf-keras, but TensorFlow was already imported with Keras 3 "
            f"as tf.keras ({keras_module}). Import tfctr before tensorflow, or set the environment variable "
            "TF_USE_LEGACY_KERAS=1 before anything imports tensorflow, and make sure tf-keras is installed."
        )


def _help_only() -> bool:
    """True inside ``tfctr --help`` (the ``tfctr_command`` entry point): its parser needs no TensorFlow."""
    return bool(getattr(sys.modules.get("tfctr_command"), "HELP_ONLY", False))


if not _help_only():
    _check_keras_2()

    import tfctr.layers  # noqa: F401  (registers every layer for tf.keras.models.load_model)
    from tfctr.features import (
        CategoricalFeature,
        FeatureSpec,
        ListFeature,
        NumericFeature,
    )
    from tfctr.utils import set_seed

from tfctr._version import __version__  # noqa: E402

_LAZY_SUBMODULES = ("data", "export", "metrics", "models", "plots", "serving", "training")


def __getattr__(name):
    """Imports a subpackage on first access (``tfctr.models.build(...)`` after ``import tfctr``)."""
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"tfctr.{name}")
    raise AttributeError(f"module 'tfctr' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_SUBMODULES))

__all__ = [
    "CategoricalFeature",
    "FeatureSpec",
    "ListFeature",
    "NumericFeature",
    "set_seed",
    "__version__",
]
