"""SavedModel export in TF Serving's layout: ``base_path/name/<version>/``, written atomically.

The exported graph takes raw features by name (the serving dtypes of ``tfctr.data.encoding``), runs the
spec's preprocessing as TF ops (``RawFeatureEncoder``, vocabularies inside the graph) and the model with
``training=False``, and returns ``probability`` and ``logit``, each ``[B]``. The spec is written to
``assets.extra/spec.json``. A version is built in a hidden temporary directory beside its final place and
renamed into it, so a server watching ``base_path/name`` never sees half a version.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tfctr.data.encoding import RawFeatureEncoder, serving_dtype
from tfctr.features import FeatureSpec
from tfctr.models import logit_model


class ServingModule(tf.Module):
    """Raw features -> ``{"probability", "logit"}``: the spec's preprocessing followed by the model."""

    def __init__(self, model: tf.keras.Model, spec: FeatureSpec):
        super().__init__(name="tfctr_serving")
        self.encoder = RawFeatureEncoder(spec)
        self.logit_model = logit_model(model)
        self.spec = spec

    def predict(self, raw: dict) -> dict:
        logit = tf.reshape(tf.cast(self.logit_model(self.encoder(raw), training=False), tf.float32), [-1])
        return {"probability": tf.sigmoid(logit), "logit": logit}

    def signature(self):
        specs = {f.name: tf.TensorSpec([None], serving_dtype(f), name=f.name) for f in self.spec.features}
        return tf.function(self.predict, input_signature=[specs]).get_concrete_function()


def next_version(model_dir) -> int:
    """1 + the largest integer version under ``model_dir`` (1 when there is none)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] \
        if model_dir.exists() else []
    return max(versions, default=0) + 1


def export_saved_model(model_or_run, spec: FeatureSpec | None, base_path, name: str,
                       version: int | None = None) -> Path:
    """Exports a model (or a run directory of ``tfctr train``) to ``base_path/name/<version>/``.

    Args:
        model_or_run: a ``tf.keras.Model`` with a ``"logit"`` layer, or a run directory.
        spec: the fitted FeatureSpec of the model (``None`` for a run directory: its own spec is used).
        base_path: TF Serving's ``--model_base_path`` parent directory.
        name: the model name (a directory under base_path).
        version: a positive integer; the next free integer by default. An existing version is never replaced.

    Returns:
        The path of the written version.
    """
    if isinstance(model_or_run, (str, os.PathLike)):
        from tfctr.training import load_run

        run = load_run(model_or_run)
        model, spec = run.model, spec or run.spec
    else:
        model = model_or_run
    if spec is None:
        raise ValueError("export_saved_model needs the FeatureSpec of the model")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"model name {name!r} must be letters, digits, '_', '.' or '-'")
    model_dir = Path(base_path) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"version {version} of model '{name}' already exists at {final}")

    module = ServingModule(model, spec)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        tf.saved_model.save(module, str(staging), signatures={"serving_default": module.signature()})
        (staging / "assets.extra").mkdir(exist_ok=True)
        spec.save(staging / "assets.extra" / "spec.json")
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
