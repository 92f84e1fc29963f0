"""TensorBoard holds what a run computed: per-step losses with ``log_every``, the learning rate, the exact metrics
of ``metrics.json``, and each method's own signals (AdaEnsemble gates, OptFusion α/β, the distillation share,
APG generated-weight norms), read back from the event files."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tfctr import models
from tfctr.data import parquet_dataset
from tfctr.layers.apg import APGDense
from tfctr.training import Distiller, FusionSearch, train
from tfctr.training.distill import copy_embedding
from tfctr.training.signals import MethodSignals, apg_signals, first_features


def read_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """tag → [(step, value)] of every event file under ``directory``."""
    scalars: dict[str, list] = {}
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars":  # graphs, model configs
                    continue
                scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return scalars


@pytest.fixture(scope="module")
def adaensemble_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "ada"
    result = train(small_data["train"], small_data["valid"], out, model="adaensemble", test=small_data["test"],
                   epochs=2, batch_size=2048, verbose=0, log_every=2,
                   hyper_params=dict(embedding_dim=4, num_layers=2, expert_kinds=["cross", "pin", "dense"], k=2,
                                     gate_reduction_ratio=4, controller=True))
    return out, result


def test_run_logs_hold_steps_learning_rate_and_exact_metrics(adaensemble_run):
    out, result = adaensemble_run
    train_tags, valid_tags = read_scalars(out / "logs" / "train"), read_scalars(out / "logs" / "validation")
    steps = [step for step, _ in train_tags["batch_loss"]]  # every 2nd of 6 steps an epoch, 2 epochs
    assert steps == [2, 4, 6, 8, 10, 12]
    assert [v for _, v in train_tags["epoch_learning_rate"]] == pytest.approx([1e-3, 1e-3])
    assert len(valid_tags["epoch_auc"]) == 2
    exact = read_scalars(out / "logs" / "exact")
    metrics = json.loads((out / "metrics.json").read_text())
    selected = metrics["training"]["selection"]["selected_epoch"]
    for split in ("valid", "test"):
        for name in ("auc", "logloss"):
            [(step, value)] = exact[f"exact/{split}_{name}"]
            assert step == selected and value == pytest.approx(metrics[split]["model"][name], abs=1e-6)
    assert exact["exact/test_bayes_optimal_auc"][0][1] == pytest.approx(metrics["test"]["bayes_optimal"]["auc"],
                                                                         abs=1e-6)


def test_adaensemble_gates_are_logged(adaensemble_run):
    out, result = adaensemble_run
    tags = read_scalars(out / "logs" / "train")
    for layer in (1, 2):
        loads = [tags[f"epoch_expert_load/layer_{layer}/{j}_{kind}"][-1][1]
                 for j, kind in enumerate(["cross", "pin", "dense"])]
        assert sum(loads) == pytest.approx(2.0, abs=1e-6)  # every example that reaches a layer picks k = 2
        assert tags[f"epoch_gate_temperature/layer_{layer}"][-1][1] > 0
    depths = [tags[f"epoch_exit_depth/{d}"][-1][1] for d in (1, 2)]
    assert sum(depths) == pytest.approx(1.0, abs=1e-6)


def _batches(spec, path):
    return parquet_dataset(path, spec, 512).take(2)


def test_fusion_search_logs_alpha_and_beta(small_data, small_spec):
    network = models.build("optfusion_search", small_spec, embedding_dim=4, num_levels=1)
    search = FusionSearch(network, tf.keras.optimizers.Adam(0.1))
    search.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    history = search.fit(_batches(small_spec, small_data["train"]), epochs=1, verbose=0, callbacks=[MethodSignals()])
    supernet = network.get_layer("fusion")
    alpha, beta = supernet.alpha.numpy(), tf.nn.softmax(supernet.beta, axis=1).numpy()
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["fusion_alpha/cross_0/x0"] == pytest.approx(alpha[1, 0])
    names = supernet.names
    assert logs[f"fusion_alpha/{names[-1]}/{names[1]}"] == pytest.approx(alpha[-1, 1])
    for o, operation in enumerate(["add", "product", "concat", "attention"]):
        assert logs[f"fusion_beta/{names[2]}/{operation}"] == pytest.approx(beta[0, o])


def test_distillation_share_is_the_logit_matching_part_of_the_loss(small_data, small_spec):
    teacher = models.build("xdeepfm", small_spec, embedding_dim=4, cin_layer_sizes=[4], hidden_units=[8])
    student = models.build("dagfm", small_spec, embedding_dim=4, num_layers=1)
    copy_embedding(teacher, student)
    distiller = Distiller(student, teacher, alpha=0.5, beta=2.0)
    distiller.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    history = distiller.fit(_batches(small_spec, small_data["train"]), epochs=1, verbose=0,
                            callbacks=[MethodSignals()])
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["kd_loss_share"] == pytest.approx(2.0 * logs["kd_mse"] / logs["loss"])
    assert 0 < logs["kd_loss_share"] < 1


def test_apg_norms_are_the_generated_parameters_norms(small_data, small_spec):
    model = models.build("apg_wdl", small_spec, embedding_dim=4, hidden_units=[8, 4])
    features = first_features(parquet_dataset(small_data["valid"], small_spec, 256))
    signals = apg_signals(model, features)
    layers = [m for m in model.submodules if isinstance(m, APGDense)]
    assert sorted(signals) == sorted(f"apg_generated_norm/{layer.name}" for layer in layers) and len(layers) == 2
    assert all("_generate" not in vars(layer) for layer in layers)  # the recording wrappers are gone
    # the first APG layer is self-wise on the MLP's input: recompute its generated parameters directly
    first = layers[0]
    mlp_input = tf.keras.Model(model.inputs, model.get_layer("mlp").input)(features)
    expected = float(tf.reduce_mean(tf.norm(first._generate([mlp_input]), axis=1)))
    assert signals[f"apg_generated_norm/{first.name}"] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(list(signals.values())).all()
