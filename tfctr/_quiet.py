"""Keeps TensorFlow's native log lines off the terminal.

TensorFlow's C++ runtime writes to file descriptor 2 directly, before and regardless of ``TF_CPP_MIN_LOG_LEVEL``
(the absl pre-initialisation notice, cudart/cuInit probes, oneDNN notes). ``native_stderr_hidden`` points that
descriptor at ``/dev/null`` for the duration of a block while Python's ``sys.stderr`` (warnings, errors,
tracebacks) keeps writing to the real stream. ``TFCTR_TF_LOGS=1`` (or ``tfctr --tf-logs``) turns it off.
"""

from __future__ import annotations

import contextlib
import os
import sys

TF_LOGS_VARIABLE = "TFCTR_TF_LOGS"


@contextlib.contextmanager
def native_stderr_hidden():
    """Inside the block, native writes to fd 2 are discarded and ``sys.stderr`` writes to the original fd 2."""
    if os.environ.get(TF_LOGS_VARIABLE, "") not in ("", "0"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (embedded interpreters): nothing to hide
        yield
        return
    python_stderr = sys.stderr
    try:
        on_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # already redirected in Python (e.g. captured): leave it
        on_fd2 = False
    visible = None
    if on_fd2:
        visible = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None))
        sys.stderr = visible
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        if visible is not None:
            visible.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if visible is not None:
            # not closed: logging handlers created inside the block (TensorFlow's, at import) keep writing to it
            sys.stderr = python_stderr
