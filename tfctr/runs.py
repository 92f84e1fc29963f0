"""The run directory, what ``tfctr train``, ``distill`` and ``search-fusion`` write and ``export`` reads.

A run directory holds ``spec.json`` (the fitted FeatureSpec), ``model.keras``, ``config.json`` (model, hyper-
parameters, training options, versions), ``metrics.json`` (exact metrics and the model selection), ``logs/``
(TensorBoard) and, while a run is unfinished, ``backup/`` (``BackupAndRestore``). A ``distill`` output holds one
run per stage (``distilled/``, ``finetuned/``) and ``summary.json``. This module knows that layout and nothing of
how a run is trained, so that export depends on it and not on training.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import tensorflow as tf

from tfctr.features import FeatureSpec
from tfctr.utils import global_policy


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns: the run directory, the trained model, its spec and its metrics."""

    run_dir: Path
    model: tf.keras.Model
    spec: FeatureSpec
    metrics: dict


def prepare_run_dir(run_dir: Path, overwrite: bool, finished: str = "model.keras"):
    """Refuses a run directory that holds a finished run (its file ``finished`` and no ``backup/`` to resume)
    unless ``overwrite``, and then removes it (its logs too, so TensorBoard shows one run)."""
    if (run_dir / finished).exists() and not (run_dir / "backup").exists():
        if not overwrite:
            raise FileExistsError(f"'{run_dir}' holds a finished run; choose another --out, or pass --overwrite "
                                  "(overwrite=True) to replace it")
        shutil.rmtree(run_dir)


def save_run(run_dir: Path, net: tf.keras.Model, spec: FeatureSpec, metrics: dict, config: dict):
    """Writes the files of a run directory: ``spec.json``, ``model.keras``, ``config.json``, ``metrics.json``."""
    spec.save(run_dir / "spec.json")
    net.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))


def final_stage(run_dir: Path) -> Path:
    """The run directory itself, or for the output of ``tfctr distill`` (which holds one run per stage) its last
    stage: ``finetuned`` when it exists, else ``distilled``."""
    if not (run_dir / "model.keras").exists():
        for stage in ("finetuned", "distilled"):
            if (run_dir / stage / "model.keras").exists():
                return run_dir / stage
    return run_dir


def load_run(run_dir) -> TrainResult:
    """Loads the model, spec and metrics of a run directory written by ``train`` (or ``search-fusion``; for a
    ``distill`` output, its final stage)."""
    import tfctr.layers  # noqa: F401  (registers the layers for deserialisation)

    run_dir = final_stage(Path(run_dir))
    for name in ("spec.json", "model.keras"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"'{run_dir}' is not a tfctr run directory: {name} is missing")
    with _policy_of(run_dir / "model.keras"):
        model = tf.keras.models.load_model(run_dir / "model.keras")
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return TrainResult(run_dir, model, FeatureSpec.load(run_dir / "spec.json"), metrics)


def saved_precision_policy(path) -> str | None:
    """The mixed-precision policy (``mixed_float16`` / ``mixed_bfloat16``) a ``.keras`` model was built under, or
    None for float32: the first layer policy of that kind in the file's config."""
    with zipfile.ZipFile(path) as archive:
        pending = [json.loads(archive.read("config.json"))]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("class_name") in ("Policy", "DTypePolicy"):
                name = node.get("config", {}).get("name", "")
                if name.startswith("mixed_"):
                    return name
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return None


def _policy_of(path):
    """Loads under the global policy the model was trained under: layers that build sublayers of their own give
    them the global policy, so a mixed-precision model loaded under float32 would mix float32 sublayers into
    layers computing in float16 / bfloat16."""
    return global_policy(saved_precision_policy(path))

