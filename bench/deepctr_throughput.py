"""The DeepCTR twin of each configuration of ``train_throughput.py``, measured by the same ``measure.py``.

Runs only inside ``bench/.venv-deepctr`` (tensorflow + tf-keras + deepctr; no tfctr), one model per process:

    bench/.venv-deepctr/bin/python bench/deepctr_throughput.py --one dcnv2 --data bench/.data/encoded_...npz
"""

import argparse
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from measure import measure_model  # noqa: E402

HIDDEN = (256, 128, 64)
NO_L2 = {"l2_reg_linear": 0, "l2_reg_embedding": 0}


def builders(columns):
    from deepctr import models as m

    args = (columns, columns)
    return {
        "wdl": lambda: m.WDL(*args, dnn_hidden_units=HIDDEN, **NO_L2),
        "deepfm": lambda: m.DeepFM(*args, dnn_hidden_units=HIDDEN, **NO_L2),
        "dcn": lambda: m.DCN(*args, cross_num=3, cross_parameterization="vector", dnn_hidden_units=HIDDEN,
                             l2_reg_cross=0, **NO_L2),
        "dcnv2": lambda: m.DCN(*args, cross_num=3, cross_parameterization="matrix", dnn_hidden_units=HIDDEN,
                               l2_reg_cross=0, **NO_L2),
        "xdeepfm_cin32": lambda: m.xDeepFM(*args, cin_layer_size=(32, 32), dnn_hidden_units=HIDDEN, **NO_L2),
        "xdeepfm_cin128": lambda: m.xDeepFM(*args, cin_layer_size=(128, 128), dnn_hidden_units=HIDDEN, **NO_L2),
        "autoint": lambda: m.AutoInt(*args, att_layer_num=3, att_head_num=2, att_embedding_size=8,
                                     dnn_hidden_units=HIDDEN, **NO_L2),
        "fibinet": lambda: m.FiBiNET(*args, dnn_hidden_units=HIDDEN, **NO_L2),
        "pnn": lambda: m.PNN(columns, dnn_hidden_units=HIDDEN, use_inner=True, l2_reg_embedding=0),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--min-seconds", type=float, default=15.0)
    args = parser.parse_args()
    from deepctr.feature_column import SparseFeat

    data = np.load(args.data)
    names = [str(n) for n in data["names"]]
    columns = [SparseFeat(n, int(s), embedding_dim=args.embedding_dim) for n, s in zip(names, data["sizes"])]
    inputs = {n: data[f"x_{n}"] for n in names}
    available = builders(columns)  # DeepCTR has no LR and no xDeepInt
    if args.one not in available:
        print(json.dumps({"unsupported": f"DeepCTR has no {args.one}"}))
        return
    model = available[args.one]()
    model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
    print(json.dumps(measure_model(model, inputs, data["label"], args.batch_size, args.min_seconds)))


if __name__ == "__main__":
    main()
