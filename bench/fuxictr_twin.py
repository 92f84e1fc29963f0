"""FuxiCTR (PyTorch) twins of tfctr models, for the benchmarks that measure tfctr next to FuxiCTR.

Runs only inside ``bench/.venv-fuxictr`` (torch + fuxictr from PyPI; no TensorFlow, no tfctr), one model per
process, in one of two modes:

    # training speed, the twin of train_throughput.py's run_one (timed as bench/measure.py times tfctr)
    bench/.venv-fuxictr/bin/python bench/fuxictr_twin.py --one dcnv2 --data bench/.data/encoded_...npz
    # test AUC/logloss after one epoch (bench/fuxictr_quality.py)
    bench/.venv-fuxictr/bin/python bench/fuxictr_twin.py --epoch deepfm --data bench/.data/encoded_...npz \
        --batch-size 10000 --embedding-dim 40 --hidden-units 300 300 300 --seed 0

FuxiCTR's pip package ships its layers and ``BaseModel`` (whose ``train_step`` runs every step here: zero_grad,
forward, loss, backward, gradient clipping at norm 10, Adam step); its models live in its ``model_zoo`` folder,
outside the package, so each model here is put together from the package's layers the way its model zoo composes
them: DCNv2 = embeddings -> (CrossNetV2 || MLP) -> concat -> linear; DeepFM = FM (first order + inner products) +
MLP; WideDeep = first order + MLP. The speed protocol is ``measure.py``'s: 3 warm-up steps, then consecutive
batches for at least ``--min-seconds`` or 40 steps, each batch converted from NumPy inside the timed loop.

The data is tfctr's encoding of the rows (``x_<field>`` id arrays, vocabulary sizes in ``sizes``; with
``--epoch``, ``train_``/``test_`` prefixed arrays), so both libraries see the same ids.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.layers import CrossNetV2, FactorizationMachine, FeatureEmbedding, LogisticRegression, MLP_Block
from fuxictr.pytorch.models import BaseModel
from rss import peak_rss_mb

HIDDEN = [256, 128, 64]  # train_throughput.HIDDEN, the speed configuration
LABEL = "label"


def feature_map(names, sizes, embedding_dim: int, directory: Path) -> FeatureMap:
    """A FuxiCTR feature map of categorical fields with the given vocabulary sizes (ids < size; size 0: a numeric
    field, embedded as value × a learnt vector), each embedded in ``embedding_dim``."""
    features = [{name: {"source": "", "type": "categorical", "vocab_size": int(size)} if size else
                 {"source": "", "type": "numeric"}} for name, size in zip(names, sizes)]
    path = directory / "feature_map.json"
    path.write_text(json.dumps({"dataset_id": "throughput", "labels": [LABEL], "features": features}))
    mapping = FeatureMap("throughput", str(directory))
    mapping.load(str(path), {"embedding_dim": embedding_dim})
    return mapping


class ThroughputModel(BaseModel):
    """BaseModel with its training settings as FuxiCTR's defaults give them (Adam, binary cross-entropy)."""

    def __init__(self, mapping, embedding_dim, hidden_units=HIDDEN):
        super().__init__(mapping, model_id=type(self).__name__, gpu=-1, verbose=0, model_root=tempfile.gettempdir(),
                         metrics=["logloss", "AUC"])
        self.embedding_layer = FeatureEmbedding(mapping, embedding_dim)
        self.build(mapping, list(hidden_units))
        self.compile("adam", "binary_crossentropy", 1e-3)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):
        x = self.get_inputs(inputs)
        return {"y_pred": self.output_activation(self.logit(x, self.embedding_layer(x)))}


class DCNv2(ThroughputModel):
    def build(self, mapping, hidden_units):
        width = mapping.sum_emb_out_dim()
        self.cross = CrossNetV2(width, 3)
        self.mlp = MLP_Block(input_dim=width, hidden_units=hidden_units, hidden_activations="ReLU")
        self.fc = torch.nn.Linear(width + hidden_units[-1], 1)

    def logit(self, x, embeddings):
        flat = embeddings.flatten(start_dim=1)
        return self.fc(torch.cat([self.cross(flat), self.mlp(flat)], dim=-1))


class DeepFM(ThroughputModel):
    def build(self, mapping, hidden_units):
        self.fm = FactorizationMachine(mapping)
        self.mlp = MLP_Block(input_dim=mapping.sum_emb_out_dim(), output_dim=1, hidden_units=hidden_units,
                             hidden_activations="ReLU")

    def logit(self, x, embeddings):
        return self.fm(x, embeddings) + self.mlp(embeddings.flatten(start_dim=1))


class WideDeep(ThroughputModel):
    def build(self, mapping, hidden_units):
        self.wide = LogisticRegression(mapping, use_bias=False)
        self.mlp = MLP_Block(input_dim=mapping.sum_emb_out_dim(), output_dim=1, hidden_units=hidden_units,
                             hidden_activations="ReLU")

    def logit(self, x, embeddings):
        return self.wide(x) + self.mlp(embeddings.flatten(start_dim=1))


MODELS = {"dcnv2": DCNv2, "deepfm": DeepFM, "wdl": WideDeep}


def _batch(inputs: dict, rows) -> dict:
    """Torch tensors of the given rows: ids as int64, numeric columns as float32."""
    return {k: torch.from_numpy(v[rows].astype(np.int64 if v.dtype.kind in "iu" else np.float32))
            for k, v in inputs.items()}


def batches(inputs: dict, labels: np.ndarray, batch_size: int):
    for start in range(0, len(labels) - batch_size + 1, batch_size):
        batch = _batch(inputs, slice(start, start + batch_size))
        batch[LABEL] = torch.from_numpy(labels[start:start + batch_size])
        yield batch


def training_examples_per_second(model, inputs, labels, batch_size, warmup=3, min_seconds=15.0, max_steps=40):
    model.train()
    stream = batches(inputs, labels, batch_size)
    for _ in range(warmup):
        model.train_step(next(stream))
    steps, start = 0, time.perf_counter()
    for batch in stream:
        model.train_step(batch)
        steps += 1
        elapsed = time.perf_counter() - start
        if steps >= max_steps or (steps >= 3 and elapsed >= min_seconds):
            break
    return {"examples_per_second": steps * batch_size / (time.perf_counter() - start), "timed_steps": steps}


def inference_latency_ms(model, inputs, batch_size, repeats=30):
    model.eval()
    batch = next(batches(inputs, np.zeros(batch_size, np.float32), batch_size))
    times = []
    with torch.no_grad():
        model(batch)
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)["y_pred"].numpy()
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def one_epoch_test_metrics(model, data, batch_size: int, seed: int) -> dict:
    """Trains one epoch over the shuffled ``train_`` rows (the last, smaller batch included, as FuxiCTR's data
    loader does), then returns test AUC and logloss."""
    from sklearn.metrics import log_loss, roc_auc_score

    train = {n: data[f"train_{n}"] for n in data["names"]}
    labels = data["train_label"].astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(labels))
    model.train()
    start = time.perf_counter()
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        model.train_step({**_batch(train, rows), LABEL: torch.from_numpy(labels[rows])})
    seconds = time.perf_counter() - start
    test = {n: data[f"test_{n}"] for n in data["names"]}
    truth = data["test_label"]
    model.eval()
    with torch.no_grad():
        predicted = np.concatenate([model(_batch(test, slice(first, first + 8192)))["y_pred"].numpy().ravel()
                                    for first in range(0, len(truth), 8192)])
    return {"auc": float(roc_auc_score(truth, predicted)), "logloss": float(log_loss(truth, predicted)),
            "train_seconds": seconds, "steps": -(-len(order) // batch_size)}


def main():
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--one", help="training speed of this model")
    mode.add_argument("--epoch", help="test metrics of this model after one epoch")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--hidden-units", type=int, nargs="+", default=HIDDEN)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=15.0)
    parser.add_argument("--mixed", action="store_true", help="not measured for FuxiCTR")
    parser.add_argument("--clipnorm", type=float, default=10.0, help="BaseModel.fit's max_gradient_norm")
    args = parser.parse_args()
    name = args.one or args.epoch
    if name not in MODELS or args.mixed:
        print(json.dumps({"unsupported": f"no FuxiCTR twin of {name} here"}))
        return
    torch.manual_seed(args.seed)
    data = np.load(args.data)
    names = [str(n) for n in data["names"]]
    with tempfile.TemporaryDirectory() as directory:
        mapping = feature_map(names, data["sizes"], args.embedding_dim, Path(directory))
        model = MODELS[name](mapping, args.embedding_dim, args.hidden_units)
    model._max_gradient_norm = args.clipnorm  # BaseModel.fit sets it (default 10) before its train_step runs
    for group in model.optimizer.param_groups:
        group["lr"] = args.learning_rate
    if args.epoch:
        result = one_epoch_test_metrics(model, data, args.batch_size, args.seed)
    else:
        inputs = {n: data[f"x_{n}"] for n in names}
        labels = data["label"].astype(np.float32)
        result = training_examples_per_second(model, inputs, labels, args.batch_size, min_seconds=args.min_seconds)
        result.update(latency_ms_batch_1=inference_latency_ms(model, inputs, 1),
                      latency_ms_batch_1024=inference_latency_ms(model, inputs, 1024))
    result.update(parameters=sum(p.numel() for p in model.parameters()), peak_rss_mb=peak_rss_mb(),
                  torch=torch.__version__, torch_threads=torch.get_num_threads())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
