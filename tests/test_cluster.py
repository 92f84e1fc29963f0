"""Cluster training for real: every task is its own process on 127.0.0.1 with its own TF_CONFIG.

MultiWorkerMirroredStrategy with 2 workers (one killed mid-epoch and the cluster restarted) and
ParameterServerStrategy with a coordinator, 2 workers and 2 parameter servers."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr.data.encoding import arrow_to_serving
from tfctr.training import load_run, train
from tfctr.training.train import predict_split
from tfctr.utils import free_ports

SCRIPT = Path(__file__).parent / "scripts" / "cluster_task.py"
TFCTR = Path(sys.executable).parent / "tfctr"
ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
TIMEOUT = 240


def _cluster(**tasks):
    ports = iter(free_ports(sum(tasks.values())))
    return {job: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for job, n in tasks.items()}


def _start(cluster, task, index, kwargs, report, kill_at=()):
    env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task, "index": index}})}
    command = [sys.executable, str(SCRIPT), json.dumps(kwargs), str(report)] + [str(k) for k in kill_at]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process, timeout=TIMEOUT):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a hung task: the cluster manager kills it
        process.kill()
        output, _ = process.communicate()
    return process.returncode, output


def _weights(report):
    with np.load(f"{report}.npz") as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


@pytest.fixture(scope="module")
def multi_worker(small_data, small_spec, tmp_path_factory):
    """2 workers train dcnv2 for 3 epochs; worker 1 is SIGKILLed in the middle of epoch 1; then the cluster is
    restarted with the same arguments."""
    base = tmp_path_factory.mktemp("multi_worker")
    spec_path = base / "spec.json"
    small_spec.save(spec_path)
    kwargs = dict(train=small_data["train"], valid=small_data["valid"], out=str(base / "run"), model="dcnv2",
                  spec=str(spec_path), epochs=3, batch_size=512, learning_rate=3e-3, embedding_dim=4,
                  strategy="multi_worker", hyper_params={"hidden_units": [16]})
    cluster = _cluster(worker=2)
    first = [_start(cluster, "worker", i, kwargs, base / f"first{i}", kill_at=(1, 3) if i else ()) for i in range(2)]
    first_codes = [_finish(p)[0] for p in first]
    checkpoints = sorted(p.name for p in (base / "run" / "backup").rglob("ckpt-*.index"))
    cluster = _cluster(worker=2)  # the restarted tasks (ports of the dead ones may linger)
    second = [_start(cluster, "worker", i, kwargs, base / f"second{i}") for i in range(2)]
    finished = [_finish(p) for p in second]
    for code, output in finished:
        assert code == 0, output[-4000:]
    return dict(base=base, first_codes=first_codes, checkpoints=checkpoints,
                reports=[json.loads((base / f"second{i}.json").read_text()) for i in range(2)],
                weights=[_weights(base / f"second{i}") for i in range(2)])


def test_killed_worker_stops_the_cluster_after_a_checkpoint(multi_worker):
    assert multi_worker["first_codes"][1] == -signal.SIGKILL
    assert multi_worker["first_codes"][0] != 0  # its peer vanished mid all-reduce: the chief fails too
    assert multi_worker["checkpoints"] == ["ckpt-1.index"]  # the backup of epoch 0


def test_restarted_cluster_resumes_and_both_workers_end_with_identical_weights(multi_worker):
    for report in multi_worker["reports"]:
        # epochs 1 and 2 ran after the restart (epoch 0 was restored, not rerun); the selection knows all three
        assert report["training"]["epochs_run_since_resume"] == 2 and report["training"]["epochs_run"] == 3
        assert all("/job:worker/" in device for device in report["devices"].values())
    first, second = multi_worker["weights"]
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_chief_writes_the_run_and_it_learned(multi_worker, small_data):
    run_dir = multi_worker["base"] / "run"
    assert not (run_dir / "backup").exists() and not (run_dir / "encoded").exists()
    run = load_run(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["strategy"] == "multi_worker" and config["training"]["workers"] == 2
    assert run.metrics["valid"]["model"]["auc"] > 0.62
    chief_weights = multi_worker["weights"][0]
    for saved, trained in zip(run.model.get_weights(), chief_weights):
        np.testing.assert_array_equal(saved, trained)


def test_parameter_servers_shard_the_table_and_the_export_serves(small_data, small_spec, tmp_path):
    spec_path = tmp_path / "spec.json"
    small_spec.save(spec_path)
    kwargs = dict(train=small_data["train"], valid=small_data["valid"], out=str(tmp_path / "run"), model="dcnv2",
                  spec=str(spec_path), epochs=2, batch_size=256, learning_rate=3e-3, embedding_dim=4,
                  strategy="parameter_server", min_shard_bytes=1024, hyper_params={"hidden_units": [16]})
    cluster = _cluster(chief=1, worker=2, ps=2)
    servers = [_start(cluster, job, i, kwargs, tmp_path / f"{job}{i}") for job in ("worker", "ps") for i in range(2)]
    try:
        code, output = _finish(_start(cluster, "chief", 0, kwargs, tmp_path / "chief"))
    finally:
        for process in servers:
            process.kill()
    assert code == 0, output[-4000:]
    assert all(process.wait() == -signal.SIGKILL for process in servers)  # they served until torn down

    devices = json.loads((tmp_path / "chief.json").read_text())["devices"]
    table = {name: device for name, device in devices.items() if "field_embedding/embeddings/part_" in name}
    assert sorted(table.values()) == ["/job:ps/replica:0/task:0/device:CPU:0",
                                      "/job:ps/replica:0/task:1/device:CPU:0"]
    run = load_run(tmp_path / "run")  # the chief's single-device copy: the table's shards joined again
    assert run.metrics["valid"]["model"]["auc"] > 0.62
    table_rows = run.model.get_layer("field_embedding").embeddings.shape[0]
    assert table_rows == sum(f.vocabulary_size for f in run.spec.embedded)

    exported = subprocess.run([str(TFCTR), "export", "--run", str(tmp_path / "run"), "--model-base-path",
                               str(tmp_path / "models"), "--name", "ctr"], env=ENV, capture_output=True, text=True,
                              timeout=TIMEOUT)
    assert exported.returncode == 0, exported.stderr[-3000:]
    loaded = tf.saved_model.load(str(next((tmp_path / "models" / "ctr").iterdir())))
    raw = arrow_to_serving(pq.read_table(small_data["valid"]).slice(0, 300), run.spec)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    np.testing.assert_allclose(served["probability"].numpy().reshape(-1),
                               predict_split(run.model, small_data["valid"], run.spec)[:300], atol=1e-5)


def test_search_fusion_and_distill_run_on_two_synchronous_workers(small_data, small_spec, tmp_path):
    """Both commands take --strategy like train: every worker runs every stage, the chief writes the runs."""
    spec_path = tmp_path / "spec.json"
    small_spec.save(spec_path)
    data = dict(train=small_data["train"], valid=small_data["valid"], batch_size=512, strategy="multi_worker",
                verbose=0)
    train(small_data["train"], small_data["valid"], tmp_path / "teacher", model="deepfm", spec=str(spec_path),
          epochs=2, batch_size=512, learning_rate=3e-3, embedding_dim=4, verbose=0,
          hyper_params={"hidden_units": [16]})
    search = dict(data, out=str(tmp_path / "fusion"), spec=str(spec_path), num_levels=1, epochs=1, retrain_epochs=1,
                  embedding_dim=4)
    kd = dict(data, teacher=str(tmp_path / "teacher"), out=str(tmp_path / "kd"), epochs=1, finetune_epochs=1,
              student_params={"num_layers": 1})
    cluster = _cluster(worker=2)
    script = Path(__file__).parent / "scripts" / "cluster_commands.py"
    workers = []
    for index in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, str(script), json.dumps(search), json.dumps(kd)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for code, output in [_finish(p) for p in workers]:
        assert code == 0 and "finished" in output, output[-4000:]
    for run_dir in (tmp_path / "fusion", tmp_path / "kd" / "distilled", tmp_path / "kd" / "finetuned"):
        config = json.loads((run_dir / "config.json").read_text())["training"]
        assert config["strategy"] == "multi_worker" and config["workers"] == 2
        assert load_run(run_dir).metrics["valid"]["model"]["auc"] > 0.55
    summary = json.loads((tmp_path / "kd" / "summary.json").read_text())
    assert set(summary) == {"teacher", "distilled", "finetuned"}
