import os
import subprocess
import sys


def test_import_refuses_keras_3():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = "import tensorflow as tf; tf.keras.layers; import tfctr"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "ImportError: tfctr needs the Keras 2 API from tf-keras" in done.stderr


def test_import_pins_legacy_keras():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    code = "import tfctr, tensorflow as tf; print(tf.keras.__name__)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("tf_keras")


def test_bare_import_exposes_the_subpackages_and_loads_every_saved_model(small_data, small_spec, tmp_path):
    """After ``pip install`` a user writes ``import tfctr`` and nothing else: the subpackages resolve, and
    ``tf.keras.models.load_model`` reads every registered model (their layers are registered at import)."""
    import numpy as np

    from tfctr import models
    from tfctr.data import parquet_dataset

    small_spec.save(tmp_path / "spec.json")
    x, _ = next(iter(parquet_dataset(small_data["valid"], small_spec, 32)))
    for name in models.available():
        model = models.build(name, small_spec)
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", model(x).numpy())
    code = f"""
import pathlib, numpy as np, tensorflow as tf
import tfctr
spec = tfctr.FeatureSpec.load("{tmp_path / 'spec.json'}")
x, _ = next(iter(tfctr.data.parquet_dataset("{small_data['valid']}", spec, 32)))
assert callable(tfctr.models.build) and callable(tfctr.training.train) and callable(tfctr.export.export_saved_model)
assert callable(tfctr.serving.serve) and callable(tfctr.serving.Client)
for name in tfctr.models.available():
    model = tf.keras.models.load_model("{tmp_path}/" + name + ".keras")
    np.testing.assert_allclose(model(x).numpy(), np.load("{tmp_path}/" + name + ".npy"), atol=1e-6)
print("loaded", len(tfctr.models.available()))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"loaded {len(models.available())}"
