"""Draws an OptFusion architecture (the JSON of ``tfctr search-fusion``'s architecture.json) to a PNG with
``tfctr.plots.fusion_architecture``.

    python bench/plot_fusion.py RUN_DIR/architecture.json out.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")

from tfctr.plots import fusion_architecture  # noqa: E402


def draw_architecture(architecture: dict, path, title: str = "") -> None:
    figure = fusion_architecture(architecture, title)
    figure.savefig(path, dpi=110)
    matplotlib.pyplot.close(figure)


if __name__ == "__main__":
    draw_architecture(json.loads(open(sys.argv[1]).read()), sys.argv[2])
