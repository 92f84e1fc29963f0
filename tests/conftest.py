import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import tfctr  # noqa: E402,F401  (pins legacy Keras before anything else imports TensorFlow)
from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.data.synthetic import SyntheticConfig, write_synthetic  # noqa: E402

SMALL = SyntheticConfig(n_categorical=6, n_numeric=3, n_list=1, vocabulary_size=30, n_pairs=3, n_triples=1,
                        first_order_scale=1.2, second_order_scale=0.8, third_order_scale=0.4, seed=3)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """Small synthetic splits with signal (9 fields + a list field), shared by the whole session."""
    return write_synthetic(tmp_path_factory.mktemp("small_data"), 12_000, 3_000, 3_000, SMALL)


@pytest.fixture(scope="session")
def small_spec(small_data):
    """A spec fitted on ``small_data`` with one standardised numeric (so models get a dense block)."""
    spec = infer_spec(small_data["train"], exclude=["true_ctr"],
                      overrides={"I3": {"kind": "numeric", "transform": "standardize"}})
    return fit_spec(spec, small_data["train"])
