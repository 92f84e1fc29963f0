"""Draws an OptFusion architecture (the JSON of ``tfctr search-fusion``'s architecture.json) with matplotlib:
x0 at the bottom, one row per level (cross left, MLP right), the output at the top; each arrow labelled with
the operation of the node it enters (soft nodes: their largest weight).

    python bench/plot_fusion.py RUN_DIR/architecture.json out.png
"""

import json
import sys

from tfctr.layers.fusion import node_names


def _position(name, num_levels):
    if name == "x0":
        return 0.5, 0
    if name == "output":
        return 0.5, num_levels + 2
    kind, level = name.split("_")
    return (0.2 if kind == "cross" else 0.8), int(level) + 1


def _operation_label(node):
    if "operation" in node:
        return node["operation"]
    if "operations" in node:
        op, weight = max(node["operations"].items(), key=lambda kv: kv[1])
        return f"{op} {weight:.2f}"
    return ""


def draw_architecture(architecture: dict, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = architecture["num_levels"]
    fig, ax = plt.subplots(figsize=(6, 1.3 * (n + 3)))
    kept = ["x0"] + [name for name in node_names(n)[1:] if name in architecture["nodes"]]
    for name in kept:
        x, y = _position(name, n)
        ax.annotate(name, (x, y), ha="center", va="center", fontsize=10,
                    bbox={"boxstyle": "round", "fc": "#dbe9f6" if "cross" in name else "#fde2c8"
                          if "mlp" in name else "#e0e0e0"})
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw_architecture(json.loads(open(sys.argv[1]).read()), sys.argv[2])
