"""Matplotlib figures of what tfctr learns: an OptFusion architecture and AdaEnsemble's routing.

Matplotlib is optional (``pip install tfctr[bench]``); it is imported when a figure is drawn.
"""

from __future__ import annotations

from tfctr.layers.fusion import node_names


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("tfctr.plots needs matplotlib: pip install matplotlib") from None
    return plt


def _position(name: str, num_levels: int) -> tuple[float, int]:
    if name == "x0":
        return 0.5, 0
    if name == "output":
        return 0.5, num_levels + 2
    kind, level = name.split("_")
    return (0.2 if kind == "cross" else 0.8), int(level) + 1


def _operation_label(node: dict) -> str:
    if "operation" in node:
        return node["operation"]
    if "operations" in node:
        op, weight = max(node["operations"].items(), key=lambda kv: kv[1])
        return f"{op} {weight:.2f}"
    return ""


def fusion_architecture(architecture: dict, title: str = ""):
    """An OptFusion architecture (``architecture.json`` of ``search_fusion``) as a figure: x0 at the bottom, one
    row per level (cross left, MLP right), the output at the top; each node labelled with its operation (soft
    nodes: their largest weight). Returns the matplotlib Figure."""
    plt = _pyplot()
    n = architecture["num_levels"]
    fig, ax = plt.subplots(figsize=(6, 1.3 * (n + 3)))
    kept = ["x0"] + [name for name in node_names(n)[1:] if name in architecture["nodes"]]
    for name in kept:
        x, y = _position(name, n)
        color = "#dbe9f6" if "cross" in name else "#fde2c8" if "mlp" in name else "#e0e0e0"
        ax.annotate(name, (x, y), ha="center", va="center", fontsize=10, bbox={"boxstyle": "round", "fc": color})
    for name, node in architecture["nodes"].items():
        x1, y1 = _position(name, n)
        for source in node["inputs"]:
            x0, y0 = _position(source, n)
            ax.annotate("", (x1, y1 - 0.15), (x0, y0 + 0.15),
                        arrowprops={"arrowstyle": "->", "color": "#555555", "connectionstyle": "arc3,rad=0.1"})
        label = _operation_label(node)
        if label:
            ax.text(x1 + 0.08, y1 - 0.3, label, fontsize=8, color="#aa3300")
    pruned = architecture.get("pruned", [])
    ax.set_title(title + (f"\npruned: {', '.join(pruned)}" if pruned else ""), fontsize=9)
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(-0.7, n + 2.7)
    ax.axis("off")
    fig.tight_layout()
    return fig


def routing(statistics: dict, title: str = ""):
    """AdaEnsemble's routing (``tfctr.training.routing_statistics``) as a figure: the fraction of examples each
    expert receives at every layer, and the distribution of exit depths when there is a controller. Returns the
    matplotlib Figure."""
    plt = _pyplot()
    loads, exits = statistics["expert_loads"], statistics.get("exit_depths")
    fig, axes = plt.subplots(1, 2 if exits else 1, figsize=(10 if exits else 6, 3.5), squeeze=False)
    ax = axes[0][0]
    experts = list(loads[0])
    width = 0.8 / len(loads)
    for layer, layer_loads in enumerate(loads):
        ax.bar([i + layer * width for i in range(len(experts))], [layer_loads[e] for e in experts], width,
               label=f"layer {layer + 1}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(experts))], experts)
    ax.set_ylabel("fraction of the layer's examples")
    ax.set_title("expert loads")
    ax.set_ylim(0, 1.0)
    # beside the axes, not over the bars (loads reach 1.0 where an expert gets every example)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.5)
    if exits:
        ax = axes[0][1]
        ax.bar([str(d + 1) for d in range(len(exits))], exits, color="#aa3300")
        ax.set_xlabel("exit depth")
        ax.set_ylabel("fraction of examples")
        ax.set_title("exit depths")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
