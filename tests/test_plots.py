"""tfctr.plots draws what it is given: one bar per (layer, expert) load and per exit depth, one box per kept
fusion node."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from tfctr import plots  # noqa: E402


def test_routing_bars_are_the_statistics():
    statistics = {"expert_loads": [{"dense": 0.6, "cross": 0.4}, {"dense": 0.3, "cross": 0.7}],
                  "exit_depths": [0.25, 0.75]}
    figure = plots.routing(statistics)
    loads_axis, exits_axis = figure.axes
    heights = [patch.get_height() for patch in loads_axis.patches]
    np.testing.assert_allclose(heights, [0.6, 0.4, 0.3, 0.7])  # layer by layer, experts in order
    np.testing.assert_allclose([p.get_height() for p in exits_axis.patches], [0.25, 0.75])
    assert len(plots.routing({"expert_loads": statistics["expert_loads"], "exit_depths": None}).axes) == 1


def test_fusion_architecture_draws_every_kept_node():
    architecture = {"num_levels": 1, "pruned": ["mlp_0"], "nodes": {
        "cross_0": {"inputs": ["x0"], "operation": "add"},
        "output": {"inputs": ["cross_0", "x0"], "operations": {"add": 0.7, "concat": 0.3}}}}
    figure = plots.fusion_architecture(architecture)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert {"x0", "cross_0", "output", "add", "add 0.70"} <= set(texts) and "mlp_0" not in texts
    assert "pruned: mlp_0" in figure.axes[0].get_title()
