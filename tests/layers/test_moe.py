import numpy as np
import pytest
import tensorflow as tf

from layer_test_case import check_layer
from tfctr.layers import AdaEnsembleNetwork, CrossExpert, NoisyCosineGate, SparseMoE, SubspaceSplit
from tfctr.layers.moe import cosine_direction, dispatch_rows, load_distribution_loss, top_k_mask
from tfctr.training import TopKAnnealing, annealing_schedule

B, F, D, H = 5, 4, 2, 2  # bit-wise split of D = 2: N = F·H = 8 slots of c = 1
EXPERTS = ["dense", "cross", "pin", "conv", "attention"]


def _slots(seed=0, batch=B):
    return SubspaceSplit(H)(tf.random.stateless_normal([batch, F, D], seed=[seed, 3]))


def _gate_np(layer, x0, k):
    flat = x0.reshape(len(x0), -1)
    w1, b1 = layer.hidden.get_weights()
    w2, b2 = layer.project.get_weights()
    h = np.maximum(flat @ w1 + b1, 0) @ w2 + b2
    h /= np.sqrt(np.maximum((h ** 2).sum(axis=1, keepdims=True), 1e-12))  # as tf.math.l2_normalize
    e = layer.choice_embeddings.numpy()
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    tau = np.log1p(np.exp(layer.temperature_raw.numpy())) + 1e-3
    logits = h @ e.T / tau
    gates = np.zeros_like(logits)
    for b in range(len(logits)):
        top = np.argsort(-logits[b])[:k]
        z = np.exp(logits[b, top] - logits[b, top].max())
        gates[b, top] = (z / z.sum() + 1e-6) / (1 + k * 1e-6)  # every selected gate floored
    return gates, logits


@pytest.mark.parametrize("k, temperature", [(1, 1.0), (3, 0.25), (5, 1.0)])
def test_noisy_cosine_gate_against_numpy(k, temperature):
    x0 = _slots().numpy()
    layer, (gates, logits) = check_layer(
        NoisyCosineGate, {"num_choices": 5, "k": k, "reduction_ratio": 2, "dim": 3, "initial_temperature": temperature},
        tf.constant(x0), numpy_reference=lambda layer, x: _gate_np(layer, x, k),
        invalid_kwargs=[{"k": 6}, {"jitter": 1.0}, {"num_choices": 0}, {"initial_temperature": 0.0}])
    assert np.all((gates > 0).sum(axis=1) == k) and np.allclose(gates.sum(axis=1), 1, atol=1e-6)
    assert layer.temperature().numpy() == pytest.approx(temperature, abs=1e-6)  # τ starts where it is told
    assert np.abs(logits).max() <= 1 / temperature + 1e-5  # cosine logits scaled by 1/τ
    # jitter only in training, and never a gradient into X_0
    np.testing.assert_array_equal(layer(tf.constant(x0))[1].numpy(), layer(tf.constant(x0))[1].numpy())
    assert not np.allclose(layer(tf.constant(x0), training=True)[1].numpy(), logits)
    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(layer(x)[1])
    assert tape.gradient(out, x) is None


def test_exactly_k_non_zero_gates_at_the_smallest_temperature():
    gate = NoisyCosineGate(6, k=3, reduction_ratio=2, dim=4)
    x0 = _slots(batch=64)
    gate(x0)
    gate.temperature_raw.assign(-30.0)  # τ = softplus(−30) + 1e-3 ≈ 1e-3: logits differ by up to 2000
    assert float(gate.temperature()) == pytest.approx(1e-3, rel=1e-6)
    gates, logits = gate(x0)
    assert np.all((gates.numpy() > 0).sum(axis=1) == 3)
    np.testing.assert_allclose(gates.numpy().sum(axis=1), 1.0, atol=1e-6)
    # the largest top-k logit still takes (almost) all the weight
    np.testing.assert_array_equal(np.argmax(gates, axis=1), np.argmax(logits, axis=1))
    moe = SparseMoE(["dense", "cross", "pin", "conv", "attention", "dense"], k=3, gate_reduction_ratio=2,
                    weight_outputs_by_gates=False, num_subspaces=H, num_fields=F)
    moe((x0, x0))
    moe.gate.temperature_raw.assign(-30.0)
    dense = SparseMoE.from_config({**moe.get_config(), "dispatch": "dense"})
    dense((x0, x0))
    dense.set_weights(moe.get_weights())
    np.testing.assert_allclose(moe((x0, x0)).numpy(), dense((x0, x0)).numpy(), atol=1e-5)


def test_top_k_mask_breaks_ties_to_exactly_k():
    logits = tf.constant([[1.0, 1.0, 1.0, 0.0], [0.0, 2.0, 2.0, 2.0]])
    mask = top_k_mask(logits, 2).numpy()
    assert mask.sum(axis=1).tolist() == [2, 2]


def test_load_distribution_loss_on_hand_built_routings():
    n = 4
    selected = tf.constant([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], tf.float32)  # f = 3/4, 1/4
    uniform_logits = tf.zeros([4, n])  # P_j = 1/4 each
    # uniform prior: n · Σ f_j P_j = 4 · (3/4 + 1/4) / 4 = 1, the Switch loss at balance of P
    assert float(load_distribution_loss(uniform_logits, selected)) == pytest.approx(1.0)
    prior = [0.5, 0.25, 0.125, 0.125]
    expected = (0.75 * 0.25 / 0.5) + (0.25 * 0.25 / 0.25)
    assert float(load_distribution_loss(uniform_logits, selected, prior)) == pytest.approx(expected)
    skewed = tf.constant([[3.0, 0, 0, 0]] * 4)
    p0 = np.exp(3) / (np.exp(3) + 3)
    assert float(load_distribution_loss(skewed, selected)) == pytest.approx(4 * (0.75 * p0 + 0.25 * (1 - p0) / 3),
                                                                           rel=1e-6)
    with tf.GradientTape() as tape:  # the gradient flows through P only
        logits = tf.Variable(skewed)
        loss = load_distribution_loss(logits, selected)
    assert np.any(tape.gradient(loss, logits).numpy() != 0)


@pytest.mark.parametrize("seed", range(6))
def test_dispatch_never_drops_or_duplicates_rows(seed):
    rng = np.random.default_rng(seed)
    batch = [1, 1, 4, 7, 7, 16][seed]
    x, x0 = _slots(seed, batch), _slots(seed + 10, batch)
    expert = CrossExpert()
    full = expert((x0, x)).numpy()
    for pattern in ("random", "none", "all"):
        gates = {"random": rng.random(batch) * (rng.random(batch) < 0.5), "none": np.zeros(batch),
                 "all": rng.random(batch) + 0.1}[pattern].astype(np.float32)
        out = dispatch_rows(expert, x0, x, tf.constant(gates)).numpy()
        np.testing.assert_allclose(out, np.where(gates[:, None, None] > 0, full, 0.0), rtol=1e-6, atol=1e-6)


def _dense_mixture_np(layer, x, x0):
    gates, _ = layer.gate(x0)
    outputs = [expert((x0, x)).numpy() for expert in layer.experts]
    return x.numpy() + sum(gates.numpy()[:, j, None, None] * outputs[j] for j in range(len(outputs)))


def test_sparse_moe_with_all_experts_equals_the_dense_mixture():
    x, x0 = _slots(1), _slots(2)
    args = {"expert_kinds": EXPERTS, "k": 5, "num_subspaces": H, "num_fields": F, "gate_reduction_ratio": 2}
    layer, out = check_layer(SparseMoE, args, (x0, x),
                             numpy_reference=lambda layer, v: _dense_mixture_np(layer, x, x0), atol=1e-5,
                             invalid_kwargs=[{"k": 6}, {"expert_kinds": ["mlp"]}, {"dispatch": "masked"},
                                             {"prior": [0.5, 0.5]}])
    dense = SparseMoE(**dict(args, dispatch="dense"))
    dense((x0, x))
    dense.set_weights(layer.get_weights())
    np.testing.assert_allclose(dense((x0, x)).numpy(), out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k,weighted", [(1, True), (3, True), (3, False)])
def test_sparse_and_dense_dispatch_agree_at_any_k(k, weighted):
    x, x0 = _slots(3), _slots(4)
    args = {"expert_kinds": EXPERTS, "k": k, "num_subspaces": H, "num_fields": F, "gate_reduction_ratio": 2,
            "weight_outputs_by_gates": weighted}
    sparse, dense = SparseMoE(**args), SparseMoE(**dict(args, dispatch="dense"))
    out = sparse((x0, x)).numpy()
    dense((x0, x))
    dense.set_weights(sparse.get_weights())
    np.testing.assert_allclose(dense((x0, x)).numpy(), out, rtol=1e-5, atol=1e-6)
    gates, _ = sparse.gate(x0)
    weights = gates.numpy() if weighted else (gates.numpy() > 0).astype(np.float32)
    expected = x.numpy() + sum(weights[:, j, None, None] * e((x0, x)).numpy() for j, e in enumerate(sparse.experts))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    sparse((x0, x), training=True)
    assert len(sparse.losses) == 1  # the load regulariser, in training only


def _network(**kwargs):
    args = dict(num_layers=3, expert_kinds=["cross", "pin", "dense"], k=2, num_subspaces=H, num_fields=F,
                gate_reduction_ratio=2, jitter=0.0)
    return AdaEnsembleNetwork(**dict(args, **kwargs))


def test_early_exit_returns_each_examples_chosen_depth_in_order():
    x0 = _slots(5, 64)
    network = _network()
    out = network(x0).numpy()
    depths = network.exit_depths(x0).numpy()
    per_depth = network.depth_logits(x0).numpy()
    np.testing.assert_allclose(out[:, 0], per_depth[np.arange(64), depths], rtol=1e-5, atol=1e-5)
    network.depth_gate.choice_embeddings.assign(tf.random.stateless_normal([3, 16], seed=[1, 2]) * 5)
    depths = network.exit_depths(x0).numpy()
    np.testing.assert_allclose(network(x0).numpy()[:, 0], per_depth[np.arange(64), depths], rtol=1e-5, atol=1e-5)
    # training's forward value is the same chosen-depth logit (straight-through)
    np.testing.assert_allclose(network(x0, training=True).numpy()[:, 0], per_depth[np.arange(64), depths],
                               rtol=1e-5, atol=1e-5)
    without = _network(controller=False)
    without(x0)
    assert [e.name for e in without.estimators] == ["estimator_2"]  # no estimator that nothing reads
    for mine, theirs in zip(without.moes + without.estimators, network.moes + [network.estimator(2)]):
        mine.set_weights(theirs.get_weights())
    np.testing.assert_allclose(without(x0).numpy()[:, 0], per_depth[:, -1], rtol=1e-5, atol=1e-5)


def _moved(gradients):
    return any(g is not None and np.any(tf.convert_to_tensor(g).numpy() != 0) for g in gradients)


@pytest.mark.parametrize("mode", ["straight_through", "routed", "prior_only"])
def test_the_controller_learns_from_the_ctr_loss_unless_prior_only(mode):
    x0 = _slots(6, 32)
    network = _network(depth_training=mode, depth_load_weight=0.0)
    network(x0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(network(x0, training=True))
    assert _moved(tape.gradient(loss, network.depth_gate.trainable_variables)) == (mode != "prior_only")


@pytest.mark.parametrize("mode", ["straight_through", "routed"])
def test_routed_estimators_learn_only_from_their_own_examples(mode):
    x0 = _slots(8, 48)
    network = _network(depth_training=mode, depth_load_weight=0.0)
    network(x0)
    row = x0[:1]  # one example: it reaches exactly one of the 3 estimators
    unused = sorted({0, 1, 2} - {int(network.exit_depths(row)[0])})
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(network(row, training=True))
    gradients = tape.gradient(loss, [network.estimators[d].trainable_variables for d in unused])
    assert all(_moved(g) == (mode == "straight_through") for g in gradients)


def test_network_round_trips_with_early_exit():
    # k = every expert: with fewer, a random routing can leave an expert without rows (and its weights without
    # gradient) in the harness's gradient check
    check_layer(AdaEnsembleNetwork, dict(num_layers=2, expert_kinds=["cross", "attention", "conv"], k=3,
                                         num_subspaces=H, num_fields=F, gate_reduction_ratio=2,
                                         depth_prior=[0.3, 0.7], expert_prior=[0.2, 0.3, 0.5]),
                _slots(7, 16), invalid_kwargs=[{"depth_training": "gumbel"}, {"depth_prior": [1.0]}])


def test_top_k_annealing_schedule():
    schedule = annealing_schedule(5, 3, 10)
    assert schedule == [(10, 5), (20, 4), (30, 3)]
    callback = TopKAnnealing(schedule)
    assert [callback.k_at(s) for s in (0, 9, 10, 25, 30, 1000)] == [5, 5, 4, 3, 3, 3]
    inputs = tf.keras.Input((8, 1))
    model = tf.keras.Model(inputs, tf.keras.layers.Flatten()(
        SparseMoE(["cross", "pin", "dense", "cross", "pin"], k=5, gate_reduction_ratio=2)((inputs, inputs))))
    model.compile("sgd", "mse")
    seen = []
    record = tf.keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(int(model.layers[-2].gate.active_k.numpy())))
    x = np.random.default_rng(0).normal(size=(64, 8, 1)).astype(np.float32)
    model.fit(x, x.reshape(64, 8), batch_size=2, epochs=1, verbose=0, callbacks=[callback, record])
    assert seen[:10] == [5] * 10 and seen[10:20] == [4] * 10 and seen[-1] == 3
    # a resumed run (the optimizer's step restored, here to 15) continues the schedule where it stopped
    model.optimizer.iterations.assign(15)
    seen.clear()
    model.fit(x[:20], x[:20].reshape(20, 8), batch_size=2, epochs=1, verbose=0, callbacks=[callback, record])
    assert seen[:5] == [4] * 5 and seen[5:] == [3] * 5


def test_gate_temperature_reaches_every_gate_and_survives_config():
    network = AdaEnsembleNetwork(num_layers=2, expert_kinds=["dense", "cross"], k=1, num_subspaces=H, num_fields=F,
                                 gate_temperature=0.5)
    network(_slots())
    gates = [moe.gate for moe in network.moes] + [network.depth_gate]
    assert [round(float(g.temperature()), 6) for g in gates] == [0.5] * 3
    rebuilt = AdaEnsembleNetwork.from_config(network.get_config())
    rebuilt(_slots())
    assert float(rebuilt.moes[1].gate.temperature()) == pytest.approx(0.5, abs=1e-6)


def test_a_row_with_no_gate_direction_gets_no_gradient_and_the_others_keep_theirs():
    # x0 = 0 on row 0: its hidden ReLU layer and (bias still 0) its h are exactly zero
    gate = NoisyCosineGate(4, k=2, reduction_ratio=2, jitter=0.0)
    x0 = tf.concat([tf.zeros([1, 3, 4]), tf.random.stateless_normal([3, 3, 4], seed=[1, 2])], axis=0)
    gate(x0)
    with tf.GradientTape() as tape:
        gates, logits = gate(x0, training=True)
        loss = tf.reduce_sum(logits * tf.random.stateless_normal(logits.shape, seed=[3, 4]))
    grads = dict(zip([v.name for v in gate.trainable_variables], tape.gradient(loss, gate.trainable_variables)))
    bias = next(g for name, g in grads.items() if "project/bias" in name)
    assert np.all(np.isfinite(bias.numpy())) and np.abs(bias.numpy()).max() < 100.0  # l2_normalize gave 1e6
    np.testing.assert_array_equal(logits.numpy()[0], np.zeros(4))  # no direction: zero logits, top-k by index
    assert np.count_nonzero(gates.numpy()[0]) == 2
    # on the rows with a direction the gradient is l2_normalize's exactly (a random row's 6 ReLUs can all be zero
    # too, with probability 1/64 each: those rows are left out)
    h = gate.project(gate.hidden(tf.reshape(x0[1:], [3, -1])))
    h = tf.boolean_mask(h, tf.reduce_any(h != 0, axis=1))
    assert h.shape[0] > 0
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(h)
        ours, theirs = cosine_direction(h), tf.math.l2_normalize(h, axis=-1)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours, h).numpy(), tape.gradient(theirs, h).numpy(), rtol=1e-5)


def test_former_argument_names_still_load_with_a_deprecation_warning():
    """Configs saved before the renames (SparseMoE/AdaEnsembleNetwork ``experts``, NoisyCosineGate
    ``temperature``) rebuild the same layer; giving both names is an error."""
    moe = SparseMoE(["cross", "pin"], k=1)
    old = {key: value for key, value in moe.get_config().items() if key != "expert_kinds"}
    with pytest.warns(DeprecationWarning, match="SparseMoE\\(experts=\\) is deprecated"):
        assert SparseMoE.from_config(dict(old, experts=["cross", "pin"])).expert_kinds == ["cross", "pin"]
    with pytest.raises(TypeError, match="not both"):
        SparseMoE(["dense"], experts=["cross"])
    with pytest.warns(DeprecationWarning, match="AdaEnsembleNetwork\\(experts=\\)"):
        assert AdaEnsembleNetwork(experts=["dense", "pin"], k=1).expert_kinds == ["dense", "pin"]
    with pytest.warns(DeprecationWarning, match="NoisyCosineGate\\(temperature=\\)"):
        assert NoisyCosineGate(4, temperature=0.3).initial_temperature == 0.3
