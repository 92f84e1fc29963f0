"""The model zoo as the README lists it: every registered model is in the README's table, builds with its
default hyper-parameters (at a small embedding size), and its exported SavedModel answers raw rows with the
in-process predictions."""

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfctr import models
from tfctr.data.encoding import arrow_to_serving
from tfctr.export import export_saved_model
from tfctr.training.train import predict_split

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_models() -> set[str]:
    section = README.read_text().split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}


def test_readme_model_table_lists_exactly_the_registered_models():
    assert _readme_models() == set(models.available())


@pytest.mark.parametrize("name", models.available())
def test_model_exports_and_serves_like_in_process(name, small_data, small_spec, tmp_path):
    hp = {"embedding_dim": 4} if "embedding_dim" in models.hyper_parameters(name) else {}
    model = models.build(name, small_spec, **hp)
    rows = 64
    raw = arrow_to_serving(pq.read_table(small_data["valid"]).slice(0, rows), small_spec)
    expected = predict_split(model, small_data["valid"], small_spec)[:rows]
    loaded = tf.saved_model.load(str(export_saved_model(model, small_spec, tmp_path, name)))
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["probability"]
    np.testing.assert_allclose(served.numpy().ravel(), expected, atol=1e-5, err_msg=name)
