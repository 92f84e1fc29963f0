"""Server-side batching: concurrent Predict requests for the same model version and signature run as one call.

Leader/follower, no extra thread: the first request of a batch waits up to ``timeout_ms`` (or until
``max_batch_size`` rows are queued), takes everything queued, concatenates the inputs, runs the signature once
and hands each request its rows of the outputs. Requests are checked before they queue; a request whose values
still fail inside the graph (e.g. a serialized tf.Example that does not parse, sent to the ``classify``
signature through Predict) fails the merged call, which is then run again one request at a time, so the error
reaches only the request that caused it and its batch-mates are answered.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from tfctr.serving.requests import call_signature


@dataclass
class _Pending:
    arrays: dict
    rows: int
    done: threading.Event = field(default_factory=threading.Event)
    outputs: dict | None = None
    error: BaseException | None = None


class Batcher:
    """Merges concurrent signature calls.

    Args:
        max_batch_size: rows that end the wait at once (default 256).
        timeout_ms: how long the first request of a batch waits for others (default 2 ms).
    """

    def __init__(self, max_batch_size: int = 256, timeout_ms: float = 2.0):
        if max_batch_size < 1 or timeout_ms < 0:
            raise ValueError(f"max_batch_size must be >= 1 and timeout_ms >= 0, got {max_batch_size}, {timeout_ms}")
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self._lock = threading.Condition()
        self._queues: dict = {}
        self.calls = 0  # signature calls made
        self.requests = 0  # requests answered

    def call(self, loaded, signature: str, arrays: dict) -> dict:
        key = (id(loaded), signature)
        item = _Pending(arrays, len(next(iter(arrays.values()))))
        with self._lock:
            queue = self._queues.setdefault(key, [])
            queue.append(item)
            leader = len(queue) == 1
            self._lock.notify_all()
        if leader:
            self._lead(key, loaded, signature)
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.outputs

    def _lead(self, key, loaded, signature) -> None:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while sum(p.rows for p in self._queues[key]) < self.max_batch_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            batch = self._queues.pop(key)
        calls = 1
        try:
            merged = {name: np.concatenate([p.arrays[name] for p in batch]) for name in batch[0].arrays}
            outputs = call_signature(loaded, signature, merged)
            start = 0
            for pending in batch:
                pending.outputs = {k: v[start:start + pending.rows] for k, v in outputs.items()}
                start += pending.rows
        except Exception as err:
            if len(batch) == 1:
                batch[0].error = err
            else:  # one member's values broke the merged call: each member alone, so only its own error is its
                calls += len(batch)
                for pending in batch:
                    try:
                        pending.outputs = call_signature(loaded, signature, pending.arrays)
                    except Exception as alone:
                        pending.error = alone
        finally:
            with self._lock:
                self.calls += calls
                self.requests += len(batch)
            for pending in batch:
                pending.done.set()
