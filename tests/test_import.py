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
