"""The models a server serves: the latest integer version of each configured name under a base path.

A background poller loads a newly dropped version completely, then swaps it in with one reference assignment,
so requests in flight finish on the version they started with and none is dropped. A version that fails to load
(e.g. still being copied: ``saved_model.pb`` there, variables still arriving) is tried again with back-off
(0.5 s, doubling, at most ``MAX_RETRY_SECONDS``) until it loads or is removed. When the served version's directory
is deleted, the newest remaining version is served instead (as TF Serving's latest-version policy); with none
left, the last one stays served and a warning is logged. Only configured model names resolve; nothing a request
says becomes a path.
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


@dataclass
class LoadedVersion:
    """One loaded SavedModel version: its signatures (callables) and signature definitions (protos)."""

    version: int
    path: Path
    module: object  # the loaded SavedModel: keeps its variables alive
    signatures: dict
    signature_defs: dict = field(default_factory=dict)
    warmup_requests: int = 0  # warm-up records replayed before it was served


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
            signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
            signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
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
    """Serves ``base_path/<name>/<latest version>`` for each configured name, reloading when a version appears.

    Args:
        base_path: the directory holding one subdirectory per model name.
        names: the model names to serve (the only names requests may use).
        poll_seconds: how often to look for new versions (0 = never, load once).
    """

    def __init__(self, base_path, names, poll_seconds: float = 1.0):
        self.base_path = Path(base_path)
        self.names = list(names)
        self._current: dict[str, LoadedVersion] = {}
        for name in self.names:
            versions = integer_versions(self.base_path / name)
            if not versions:
                raise FileNotFoundError(f"no SavedModel version under {self.base_path / name}")
            self._current[name] = load_version(self.base_path / name, versions[-1])
        self._retries: dict[tuple[str, int], tuple[int, float]] = {}  # (name, version) -> (failures, next try)
        self._stop = threading.Event()
        self._poller = None
        if poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True)
            self._poller.start()

    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        """The loaded model ``name`` (at ``version`` when given); KeyError naming what is served otherwise."""
        if name not in self._current:
            raise KeyError(f"model '{name}' is not served here; served models are {self.names}")
        loaded = self._current[name]
        if version is not None and version != loaded.version:
            raise KeyError(f"version {version} of model '{name}' is not loaded; the served version is "
                           f"{loaded.version}")
        return loaded

    def _poll(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            for name in self.names:
                self.refresh(name)

    def refresh(self, name: str) -> None:
        """Serves the newest version of ``name`` (a newer one, or the newest remaining when the served version's
        directory is gone), trying a version that failed to load again once its back-off has passed."""
        current = self._current[name]
        versions = integer_versions(self.base_path / name)
        gone = not (current.path / "saved_model.pb").exists()
        candidates = [v for v in versions if v > current.version or (gone and v != current.version)]
        if not candidates:
            if gone:
                tf.get_logger().warning(f"version {current.version} of '{name}' was removed and no other version "
                                        f"is left; still serving it")
            return
        newest = max(candidates)
        failures, next_try = self._retries.get((name, newest), (0, 0.0))
        if time.monotonic() < next_try:
            return
        try:
            self._current[name] = load_version(self.base_path / name, newest)
            self._retries.pop((name, newest), None)
        except Exception as err:  # a broken version must not take the server down: tried again later
            delay = min(MAX_RETRY_SECONDS, 0.5 * 2 ** failures)
            self._retries[(name, newest)] = (failures + 1, time.monotonic() + delay)
            tf.get_logger().error(f"could not load version {newest} of '{name}' (attempt {failures + 1}, next in "
                                  f"{delay:.1f} s): {err}")

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
