"""The GPU check script runs end to end on the CPU (``--cpu-smoke``), so it is ready for a GPU machine; the CPU
feature detection behind the training log's precision line; bfloat16 numerics against float32."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.hardware import cpu_features, precision_note

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--cpu-smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=480, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cpu"] and "cpu_flags" in result["machine"]
    for by_precision in [*result["training"].values(), result["distill"]]:
        assert set(by_precision) == {"float32", "mixed"}
        for run in by_precision.values():
            assert 0.0 < run["auc"] < 1.0 and run["logloss"] > 0
    for run in result["training"]["xdeepfm"].values():
        assert run["examples_per_second"] > 0
    for check in result["export"].values():  # the exported model, in a process without GPU, predicts the same
        assert check["within_tolerance"] and check["cpu_process_devices"] == ["CPU"]


AMX_CPU = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx2 avx512f " \
          "avx512_bf16 amx_bf16 amx_tile\nprocessor\t: 1\nmodel name\t: other\n"
AVX2_CPU = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n"


def test_cpu_features_tell_bfloat16_hardware_apart():
    amx, epyc = cpu_features(AMX_CPU), cpu_features(AVX2_CPU)
    assert amx.model == "Intel(R) Xeon(R) Platinum 8481C" and amx.bfloat16 and "amx_tile" in amx.flags
    assert epyc.model == "AMD EPYC 7B13" and not epyc.bfloat16
    assert not cpu_features("flags\t: amx_bf16\n").bfloat16  # AMX-BF16 needs the tiles too
    assert "float16" in precision_note(True, 1) and "bfloat16" not in precision_note(False, 1)
    assert "in hardware" in precision_note(True, 0, amx) and "emulated" in precision_note(True, 0, epyc)
    # float32 on a CPU with bfloat16 hardware points at the faster path; elsewhere it only says what runs
    assert "--mixed-precision trained" in precision_note(False, 0, amx)
    assert "--mixed-precision trained" not in precision_note(False, 0, epyc)


def test_bfloat16_predictions_stay_within_a_stated_tolerance_of_float32(small_data, small_spec):
    # the same weights computed in mixed bfloat16: 8 bits of mantissa give |Δp| of a few 1e-3 (0.004 measured)
    tf.random.set_seed(0)
    full = models.build("dcnv2", small_spec, embedding_dim=8, hidden_units=[32, 16])
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = models.build("dcnv2", small_spec, embedding_dim=8, hidden_units=[32, 16])
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(full.get_weights())
    x = next(iter(parquet_dataset(small_data["valid"], small_spec, 512, with_label=False)))
    gap = np.abs(full(x).numpy() - mixed(x).numpy())
    assert mixed(x).dtype == tf.float32 and gap.max() < 0.01, gap.max()


def test_a_mixed_precision_run_loads_back(small_data, small_spec, tmp_path):
    # layers that build their own sublayers (LinearLogit's table) get the global policy: load_run restores the
    # policy the run was trained under, or lr's float32 table would meet its bfloat16 bias
    from tfctr.runs import load_run, saved_precision_policy

    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = models.build("lr", small_spec)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    model.save(tmp_path / "model.keras")
    small_spec.save(tmp_path / "spec.json")
    assert saved_precision_policy(tmp_path / "model.keras") == "mixed_bfloat16"
    x = next(iter(parquet_dataset(small_data["valid"], small_spec, 64, with_label=False)))
    np.testing.assert_array_equal(load_run(tmp_path).model(x).numpy(), model(x).numpy())
    assert tf.keras.mixed_precision.global_policy().name == "float32"


def test_cin_runs_eagerly_on_distributed_variables(small_data, small_spec):
    # the distiller compares student and teacher eagerly; a CIN kernel passed into its custom gradient as a
    # mirrored variable used to fail there
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        model = models.build("xdeepfm", small_spec, embedding_dim=4, cin_layer_sizes=[4], hidden_units=[])
    x = next(iter(parquet_dataset(small_data["valid"], small_spec, 64, with_label=False)))
    assert np.all(np.isfinite(model(x, training=False).numpy()))
