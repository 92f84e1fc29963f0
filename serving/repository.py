"""The models a server serves: for each configured model, the versions its version policy selects under its base
path (by default the latest integer version), and its version labels (``serving.model_config``).

A background poller loads a newly dropped version completely, then swaps the model's set of served versions in
with one reference assignment, so requests in flight finish on the version they started with and none is dropped.
A version that fails to load (e.g. still being copied: ``saved_model.pb`` there, variables still arriving) is tried
again with back-off (0.5 s, doubling, at most ``MAX_RETRY_SECONDS``) until it loads or is removed; meanwhile the
versions served before stay served. When a served version's directory is deleted, the policy is applied to what
remains (the latest policy serves the newest remaining version, as TF Serving); with nothing left, the last
versions stay served and a warning is logged. Only configured model names resolve; nothing a request says becomes
a path.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfctr.serving.model_config import ModelConfig
from tfctr.serving.packed_call import PackedSignature, packable


@dataclass
class LoadedVersion:
    """One loaded SavedModel version: its signatures (callables) and signature definitions (protos)."""

    version: int
    path: Path
    module: object  # the loaded SavedModel: keeps its variables alive
    signatures: dict
    signature_defs: dict = field(default_factory=dict)
    warmup_requests: int = 0  # warm-up records replayed before it was served
    input_dtypes: dict = field(default_factory=dict)  # per signature: {input name: tf.DType}, read at load
    packed: dict = field(default_factory=dict)  # per signature of [batch] inputs: its PackedSignature


INT64_MAX = 2 ** 63 - 1
MAX_RETRY_SECONDS = 60.0


def integer_versions(model_dir: Path) -> list[int]:
    """The version directories of a model (integer names, as TF Serving's, within int64; others are skipped
    and logged: a version of 2^63 would break every answer that reports it)."""
    if not model_dir.is_dir():
        return []
    versions = []
    for p in model_dir.iterdir():
        if p.is_dir() and re.fullmatch(r"\d+", p.name) and (p / "saved_model.pb").exists():
            if int(p.name) > INT64_MAX:
                tf.get_logger().warning(f"ignoring version directory {p}: the version is beyond int64")
                continue
            versions.append(int(p.name))
    return sorted(versions)


def load_version(model_dir: Path, version: int) -> LoadedVersion:
    path = model_dir / str(version)
    loaded = tf.saved_model.load(str(path))
    meta_graph = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes()).meta_graphs[0]
    # internal signatures (``__saved_model_init_op``) are not served: a request naming one gets NOT_FOUND
    public = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    result = LoadedVersion(version, path, loaded, dict(loaded.signatures), public)
    for name, signature_def in public.items():
        dtypes = {k: tf.dtypes.as_dtype(v.dtype) for k, v in signature_def.inputs.items()}
        result.input_dtypes[name] = dtypes
        if packable(signature_def):
            result.packed[name] = PackedSignature(result.signatures[name], dtypes)
    result.warmup_requests = replay_warmup(result)
    return result


def replay_warmup(loaded: LoadedVersion) -> int:
    """Runs the requests of ``assets.extra/tf_serving_warmup_requests`` (Predict, Classify, Regress logs) on the
    loaded version, as TF Serving does before a version becomes AVAILABLE, so the first real request does not pay
    for tracing and allocation. A request that fails makes the load fail. Returns how many ran."""
    path = loaded.path / "assets.extra" / "tf_serving_warmup_requests"
    if not path.exists():
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            name = request.model_spec.signature_name or "serving_default"
            arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            if name in loaded.packed:  # the path requests take, traced and run once before the first of them
                loaded.packed[name](arrays)
            else:
                loaded.signatures[name](**{k: tf.constant(v) for k, v in arrays.items()})
        elif kind in ("classify_log", "regress_log"):
            request = getattr(log, kind).request
            default = "classify" if kind == "classify_log" else "regress"
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
            loaded.signatures[request.model_spec.signature_name or default](inputs=tf.constant(examples))
        else:
            continue
        count += 1
    return count


class ModelRepository:
    """Serves the versions each ``ModelConfig`` selects, reloading as versions appear and disappear.

    Args:
        base_path, names: serve ``base_path/<name>`` for each of ``names`` with the latest-version policy (as
            ``tfctr serve --model-base-path --model-name``), or
        configs: ``ModelConfig``s (e.g. from ``read_model_config_file``) instead.
        poll_seconds: how often to look for new versions (0 = never, load once).
    """

    def __init__(self, base_path=None, names=(), poll_seconds: float = 1.0, configs=None):
        if configs is None:
            configs = [ModelConfig(name, Path(base_path) / name) for name in names]
        self.configs = {config.name: config for config in configs}
        self.names = list(self.configs)
        self._served: dict[str, dict[int, LoadedVersion]] = {}
        for config in configs:
            wanted = config.wanted(integer_versions(config.base_path))
            if not wanted:
                raise FileNotFoundError(f"no SavedModel version under {config.base_path}"
                                        + ("" if config.policy == "latest" else f" that the {config.policy} version "
                                           f"policy serves (versions {list(config.versions) or 'all'})"))
            self._served[config.name] = {v: load_version(config.base_path, v) for v in wanted}
        self._retries: dict[tuple[str, int], tuple[int, float]] = {}  # (name, version) -> (failures, next try)
        self._stop = threading.Event()
        self._poller = None
        if poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True)
            self._poller.start()

    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        """The loaded model ``name`` at ``version`` (default: its newest served version); KeyError when that is
        not served."""
        served = self._served[name]
        return served[max(served) if version is None else version]

    def served_versions(self, name: str) -> list[int]:
        return sorted(self._served[name])

    def labels(self, name: str) -> dict:
        """Version label → version of model ``name``."""
        return dict(self.configs[name].labels)

    def _poll(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            for name in self.names:
                self.refresh(name)

    def _load(self, name: str, version: int) -> LoadedVersion | None:
        """Loads a version, or None when it failed (tried again after a back-off) or is backing off."""
        failures, next_try = self._retries.get((name, version), (0, 0.0))
        if time.monotonic() < next_try:
            return None
        try:
            loaded = load_version(self.configs[name].base_path, version)
        except Exception as err:  # a broken version must not take the server down: tried again later
            delay = min(MAX_RETRY_SECONDS, 0.5 * 2 ** failures)
            self._retries[(name, version)] = (failures + 1, time.monotonic() + delay)
            tf.get_logger().error(f"could not load version {version} of '{name}' (attempt {failures + 1}, next in "
                                  f"{delay:.1f} s): {err}")
            return None
        self._retries.pop((name, version), None)
        return loaded

    def refresh(self, name: str) -> None:
        """Serves the versions the policy selects among those on disk now: new ones are loaded first, versions no
        longer selected (or deleted) are dropped once something selected is loaded."""
        config, served = self.configs[name], self._served[name]
        wanted = config.wanted(integer_versions(config.base_path))
        kept = {v: served[v] for v in wanted if v in served and (served[v].path / "saved_model.pb").exists()}
        new = dict(kept)
        for version in wanted:
            if version not in new:
                loaded = self._load(name, version)
                if loaded is not None:
                    new[version] = loaded
        if not new:
            if not any((v.path / "saved_model.pb").exists() for v in served.values()):
                tf.get_logger().warning(f"the served versions {sorted(served)} of '{name}' were removed and no "
                                        "other version loads; still serving them")
            return
        if new.keys() != served.keys():
            self._served[name] = new

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
