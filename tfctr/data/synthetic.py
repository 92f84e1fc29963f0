"""Criteo-like synthetic CTR data with a known true click probability.

Rows have heavy-tailed integer counts ``I1..I{n_numeric}`` (some missing), Zipf-distributed hex categoricals
``C1..C{n_categorical}``, optionally multi-valued ``tags`` lists, a ``label`` and the true click probability
``true_ctr``. The label is drawn from a logistic model

    logit(x) = b + sum_f w_f(x_f)                                  first order, every field
                 + s2 * sum_{(i,j) in P} <v_i(x_i), v_j(x_j)>       second order, a few field pairs
                 + s3 * sum_{(i,j,k) in T} sum_r v_i(x_i)_r v_j(x_j)_r v_k(x_k)_r   third order, a few triples
                 + su * sum_{f in U} u_{g(x_C1), f}(x_f)                    user-dependent, optional

The optional user-dependent part treats ``C1`` as the user id: every user value belongs to one of
``n_user_groups`` hidden groups g, and each group has its own value weights u_g for the next
``n_user_dependent_fields`` fields, so the same item value pushes the CTR up for one group and down for another
(the per-user pattern APG's adaptive parameters are meant to capture).

with random value weights w, latent vectors v (rank r) and numeric effects through smooth functions of
log(1 + x). ``true_ctr`` = sigmoid(logit), so the AUC/logloss of ``true_ctr`` on a split is the Bayes-optimal
reference any model trained on it can be compared with. Everything is deterministic from ``seed``: the model
parameters from ``seed``, the rows of each split from ``(seed, split)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfctr.data.parquet import ORACLE_METADATA_KEY

TRUE_CTR_COLUMN = "true_ctr"
LABEL_COLUMN = "label"
_SPLIT_OFFSETS = {"train": 1, "valid": 2, "test": 3}


@dataclasses.dataclass
class SyntheticConfig:
    """Shape and signal of the synthetic data.

    Args:
        n_categorical: number of categorical fields ``C1..``.
        n_numeric: number of integer count fields ``I1..``.
        n_list: number of multi-valued fields ``tags``, ``tags2``, ... (lists of 0..``max_list_length`` tokens).
        vocabulary_size: distinct values per categorical field.
        cross_vocabulary_size: distinct values of the categorical fields that take part in the second- and
            third-order terms (``None``: ``vocabulary_size``). A few hundred makes every cross learnable from
            ~1M rows, so models that learn crosses can approach the Bayes-optimal AUC.
        categorical_dtype: ``"string"`` (hex strings, as Criteo) or ``"int64"`` (integer ids spread over a
            large range, as most warehouse tables, MovieLens and Avazu-style ids store them).
        zipf_exponent: value frequency ~ 1 / rank^zipf_exponent.
        missing_rate: fraction of nulls in numeric fields and in categorical fields.
        n_pairs, n_triples: number of field pairs / triples with a second- / third-order effect.
        rank: latent rank r of the interaction vectors.
        first_order_scale, second_order_scale, third_order_scale: standard deviations of the three parts of the
            logit (measured on a calibration sample).
        base_ctr: mean click probability (calibrated on a sample of 20,000 rows).
        n_user_groups: hidden user groups of the user-dependent part (0 = no such part; needs ``C1`` and at
            least one more categorical field).
        n_user_dependent_fields: fields ``C2..`` whose value weights depend on the user's group.
        user_dependent_scale: standard deviation of the user-dependent part of the logit.
        seed: seed of the model parameters and of the rows.
    """

    n_categorical: int = 26
    n_numeric: int = 13
    n_list: int = 0
    vocabulary_size: int = 1000
    cross_vocabulary_size: int | None = None
    categorical_dtype: str = "string"
    max_list_length: int = 5
    zipf_exponent: float = 1.1
    missing_rate: float = 0.05
    n_pairs: int = 8
    n_triples: int = 4
    rank: int = 4
    first_order_scale: float = 0.8
    second_order_scale: float = 0.8
    third_order_scale: float = 0.8
    base_ctr: float = 0.25
    n_user_groups: int = 0
    n_user_dependent_fields: int = 6
    user_dependent_scale: float = 0.8
    seed: int = 0

    def __post_init__(self):
        if self.categorical_dtype not in ("string", "int64"):
            raise ValueError(f"SyntheticConfig: categorical_dtype must be 'string' or 'int64', "
                             f"got {self.categorical_dtype!r}")
        if self.cross_vocabulary_size is not None and not 1 <= self.cross_vocabulary_size <= self.vocabulary_size:
            raise ValueError(f"SyntheticConfig: cross_vocabulary_size must be in [1, vocabulary_size="
                             f"{self.vocabulary_size}], got {self.cross_vocabulary_size}")
        if self.n_user_groups and self.n_categorical < 2:
            raise ValueError(f"SyntheticConfig: n_user_groups={self.n_user_groups} needs n_categorical >= 2 "
                             f"(C1 is the user), got {self.n_categorical}")


def _calibrated_bias(logits: np.ndarray, target: float) -> float:
    """The b with mean(sigmoid(b + logits)) = target, by bisection (the mean is increasing in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(mid + logits)))) < target else (lo, mid)
    return (lo + hi) / 2


def _value_codes(field: int, size: int, seed: int) -> np.ndarray:
    """Distinct 32-bit codes of the ``size`` values of a field, scattered over the range (not in rank order)."""
    ranks = np.arange(size, dtype=np.uint64)
    return (ranks * np.uint64(2654435761) + np.uint64(field * 97 + seed * 7919 + 1)) & np.uint64(0xFFFFFFFF)


def _vocabulary(field: int, size: int, seed: int, dtype: str) -> pa.Array:
    codes = _value_codes(field, size, seed)
    if dtype == "int64":
        return pa.array(codes.astype(np.int64))
    return pa.array([f"{c:08x}" for c in codes.tolist()], type=pa.string())


class SyntheticCTR:
    """The true CTR model of a ``SyntheticConfig``; ``sample(n, split)`` draws rows from it."""

    def __init__(self, config: SyntheticConfig = SyntheticConfig()):
        self.config = c = config
        rng = np.random.default_rng([c.seed, 0])
        self.cat_names = [f"C{i + 1}" for i in range(c.n_categorical)]
        self.num_names = [f"I{i + 1}" for i in range(c.n_numeric)]
        self.list_names = ["tags" if i == 0 else f"tags{i + 1}" for i in range(c.n_list)]
        self.value_probs = self._zipf(c.vocabulary_size)
        # per categorical/list field: value weights (slot 0 of each table = missing) and latent vectors
        n_embedded = c.n_categorical + c.n_list
        self.weights = rng.normal(size=(n_embedded, c.vocabulary_size + 1))
        self.latent = rng.normal(size=(n_embedded, c.vocabulary_size + 1, c.rank)) / np.sqrt(c.rank)
        self.num_shift = rng.normal(1.5, 0.5, size=c.n_numeric)
        self.num_weight = rng.normal(size=c.n_numeric)
        self.num_mu = rng.uniform(0.5, 3.0, size=c.n_numeric)
        n_fields = n_embedded
        self.pairs = [tuple(rng.choice(n_fields, 2, replace=False)) for _ in range(c.n_pairs)] if n_fields >= 2 else []
        self.triples = ([tuple(rng.choice(n_fields, 3, replace=False)) for _ in range(c.n_triples)]
                        if n_fields >= 3 else [])
        crossed = {int(f) for term in self.pairs + self.triples for f in term if f < c.n_categorical}
        self.field_sizes = [c.cross_vocabulary_size if f in crossed and c.cross_vocabulary_size
                            else c.vocabulary_size for f in range(c.n_categorical)]
        self.vocabularies = [_vocabulary(f, size, c.seed, c.categorical_dtype)
                             for f, size in enumerate(self.field_sizes)]
        # drawn from their own stream so that data without the user-dependent part is unchanged by it
        user_rng = np.random.default_rng([c.seed, 1])
        self.user_group = user_rng.integers(0, max(c.n_user_groups, 1), size=c.vocabulary_size + 1)
        self.user_fields = list(range(1, min(1 + c.n_user_dependent_fields, c.n_categorical))) \
            if c.n_user_groups else []
        self.group_weights = user_rng.normal(size=(max(c.n_user_groups, 1), len(self.user_fields),
                                                   c.vocabulary_size + 1))
        self.scales = (1.0, 1.0, 1.0, 1.0)
        self.bias = 0.0
        parts = self._logit_parts(*self._draw(20_000, np.random.default_rng([c.seed, 99])))
        stds = [max(float(np.std(part)), 1e-9) for part in parts]
        targets = (c.first_order_scale, c.second_order_scale, c.third_order_scale,
                   c.user_dependent_scale if c.n_user_groups else 0.0)
        self.scales = tuple(t / s for t, s in zip(targets, stds))
        logits = sum(scale * part for scale, part in zip(self.scales, parts))
        self.bias = _calibrated_bias(logits, c.base_ctr)

    def _zipf(self, size: int) -> np.ndarray:
        p = 1.0 / np.arange(1, size + 1) ** self.config.zipf_exponent
        return p / p.sum()

    def _draw(self, n: int, rng: np.random.Generator):
        c = self.config
        if all(size == c.vocabulary_size for size in self.field_sizes):
            cats = rng.choice(c.vocabulary_size, size=(n, c.n_categorical), p=self.value_probs) + 1
        else:
            cats = np.stack([rng.choice(size, size=n, p=self._zipf(size)) for size in self.field_sizes], axis=1) + 1
        cats[rng.random(cats.shape) < c.missing_rate] = 0
        counts = np.floor(np.exp(rng.normal(self.num_mu, 1.5, size=(n, c.n_numeric)))).astype(np.float64)
        counts[rng.random(counts.shape) < c.missing_rate] = np.nan
        lists = []
        for _ in range(c.n_list):
            lengths = rng.integers(0, c.max_list_length + 1, size=n)
            tokens = rng.choice(c.vocabulary_size, size=int(lengths.sum()), p=self.value_probs) + 1
            lists.append((lengths, tokens))
        return cats, counts, lists

    def _field_values(self, table: int, cats, lists, values_of):
        """Per-example weight or latent vector of embedded field ``table`` (lists: mean over tokens)."""
        c = self.config
        if table < c.n_categorical:
            return values_of(table, cats[:, table])
        lengths, tokens = lists[table - c.n_categorical]
        rows = np.repeat(np.arange(len(lengths)), lengths)
        token_values = values_of(table, tokens)
        total = np.zeros((len(lengths),) + token_values.shape[1:])
        np.add.at(total, rows, token_values)
        return total / np.maximum(lengths, 1).reshape((-1,) + (1,) * (token_values.ndim - 1))

    def _logit_parts(self, cats, counts, lists):
        c = self.config
        n_embedded = c.n_categorical + c.n_list
        first = sum(self._field_values(f, cats, lists, lambda t, v: self.weights[t, v]) for f in range(n_embedded))
        logs = np.log1p(np.nan_to_num(counts, nan=0.0))
        numeric = np.where(np.isnan(counts), -0.5, np.tanh(logs - self.num_shift)) * self.num_weight
        first = first + numeric.sum(axis=1)
        latent = {}

        def vec(f):
            if f not in latent:
                latent[f] = self._field_values(f, cats, lists, lambda t, v: self.latent[t, v])
            return latent[f]

        second = sum((np.sum(vec(i) * vec(j), axis=1) for i, j in self.pairs), np.zeros(len(cats)))
        third = sum((np.sum(vec(i) * vec(j) * vec(k), axis=1) for i, j, k in self.triples), np.zeros(len(cats)))
        groups = self.user_group[cats[:, 0]]
        user = sum((self.group_weights[groups, slot, cats[:, f]] for slot, f in enumerate(self.user_fields)),
                   np.zeros(len(cats)))
        return first, second, third, user

    def true_logit(self, cats, counts, lists) -> np.ndarray:
        """The generating logit of each row: bias + the scaled first-, second-, third-order and user parts."""
        parts = self._logit_parts(cats, counts, lists)
        return self.bias + sum(scale * part for scale, part in zip(self.scales, parts))

    def sample(self, n: int, split: str = "train") -> pa.Table:
        """Draws ``n`` rows of ``split`` (train/valid/test or any name) as an Arrow table."""
        c = self.config
        offset = _SPLIT_OFFSETS.get(split, sum(map(ord, split)) + 10)
        rng = np.random.default_rng([self.config.seed, offset])
        cats, counts, lists = self._draw(n, rng)
        ctr = 1.0 / (1.0 + np.exp(-self.true_logit(cats, counts, lists)))
        label = (rng.random(n) < ctr).astype(np.int8)
        columns = {LABEL_COLUMN: pa.array(label)}
        for i, name in enumerate(self.num_names):
            values = counts[:, i]
            columns[name] = pa.array(np.nan_to_num(values, nan=0).astype(np.int64), mask=np.isnan(values))
        for i, name in enumerate(self.cat_names):
            indices = pa.array(np.maximum(cats[:, i] - 1, 0).astype(np.int32), mask=cats[:, i] == 0)
            values = pa.DictionaryArray.from_arrays(indices, self.vocabularies[i])
            columns[name] = values.cast(self.vocabularies[i].type)
        for i, name in enumerate(self.list_names):
            lengths, tokens = lists[i]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            token_words = _vocabulary(0, c.vocabulary_size, c.seed, "string")
            words = pa.DictionaryArray.from_arrays(pa.array((tokens - 1).astype(np.int32)), token_words)
            words = words.cast(pa.string())
            columns[name] = pa.ListArray.from_arrays(pa.array(offsets), words)
        columns[TRUE_CTR_COLUMN] = pa.array(ctr)
        return pa.table(columns).replace_schema_metadata({ORACLE_METADATA_KEY: TRUE_CTR_COLUMN.encode()})


def write_synthetic(
    out_dir,
    n_train: int = 100_000,
    n_valid: int = 20_000,
    n_test: int = 20_000,
    config: SyntheticConfig = SyntheticConfig(),
    files_per_split: int = 1,
) -> dict[str, str]:
    """Writes ``train``/``valid``/``test`` Parquet data under ``out_dir`` and returns the path of each split.

    With ``files_per_split > 1`` each split is a directory of that many files (for sharded reading).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = SyntheticCTR(config)
    paths = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        if n <= 0:
            continue
        table = model.sample(n, split)
        if files_per_split == 1:
            path = out / f"{split}.parquet"
            pq.write_table(table, path)
        else:
            path = out / split
            path.mkdir(exist_ok=True)
            bounds = np.linspace(0, n, files_per_split + 1).astype(int)
            for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                pq.write_table(table.slice(lo, hi - lo), path / f"part-{part:03d}.parquet")
        paths[split] = str(path)
    return paths
