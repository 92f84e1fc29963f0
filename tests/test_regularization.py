"""Net L2: the penalty covers every network matrix of a model and no embedding table or bias."""

import numpy as np
import pytest

from tfctr import models
from tfctr.training.regularization import add_network_l2, network_weights


@pytest.mark.parametrize("name", ["dcnv2", "xdeepfm", "wdl"])
def test_network_l2_equals_its_definition(name, small_spec):
    model = models.build(name, small_spec, embedding_dim=4, hidden_units=[8])
    add_network_l2(model, 0.01)
    weights = network_weights(model)
    names = [w.name for w in weights]
    assert weights and all(len(w.shape) >= 2 for w in weights)
    assert not any("embedding" in n for n in names)  # field embeddings and the linear part's per-id weights
    assert any("kernel" in n for n in names)
    expected = 0.01 * sum(float(np.sum(np.square(w.numpy()))) for w in weights)
    penalties = [float(loss) for loss in model.losses]
    assert len(penalties) == 1
    np.testing.assert_allclose(penalties[0], expected, rtol=1e-5)


def test_zero_adds_nothing_and_negative_is_refused(small_spec):
    model = models.build("wdl", small_spec, embedding_dim=4, hidden_units=[8])
    add_network_l2(model, 0.0)
    assert model.losses == []
    with pytest.raises(ValueError, match="l2_net"):
        add_network_l2(model, -1.0)


def test_lr_takes_l2_embedding_and_its_old_l2_is_deprecated(small_spec):
    assert models.build("lr", small_spec, l2_embedding=1e-3).get_layer("linear").rows_l2 == 1e-3
    with pytest.warns(DeprecationWarning, match="l2_embedding"):
        old = models.build("lr", small_spec, l2=1e-6)
    assert old.get_layer("linear").rows_l2 == 0.0 and old.get_layer("linear").kernel_regularizer is not None
