"""The data work of a FeatureSpec: inferring it from Parquet files and fitting it on the training split.

``infer_spec(paths)`` reads the schema and a sample of the integer columns (identifiers or counts, see
``tfctr.features.integer_kind``) and returns ``FeatureSpec.infer``'s spec; ``fit_spec(spec, paths)`` learns
every unfitted feature's vocabulary, list length or numeric transform in one streaming pass over the files.
The spec itself (``tfctr.features``) is a plain description that reads no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tfctr.data.encoding import fill_missing_category
from tfctr.data.parquet import READ_BATCH_ROWS, iter_record_batches, oracle_column_of, read_sample, read_schema
from tfctr.features import (
    MISSING_STRING,
    CategoricalFeature,
    Feature,
    FeatureSpec,
    ListFeature,
    SpecError,
    log_square_boundaries,
    quantile_boundaries,
)


def infer_spec(paths, label: str = "label", overrides: dict | None = None, exclude: Iterable[str] = ()) -> FeatureSpec:
    """The spec ``FeatureSpec.infer`` gives for the schema of the Parquet file(s) ``paths``, its integer columns
    told apart as identifiers or counts on a sample of their values. A column the files' metadata names as the
    true CTR (``tfctr.data.parquet.oracle_column_of``: tfctr's synthetic data) is never a feature. Not fitted:
    see ``fit_spec``."""
    schema = read_schema(paths)
    oracle = oracle_column_of(paths)
    exclude = list(exclude) + ([oracle] if oracle and oracle not in exclude else [])
    skipped = {label, *exclude, *(overrides or {})}
    integers = [f.name for f in schema if pa.types.is_integer(f.type) and f.name not in skipped]
    sample = read_sample(paths, integers) if integers else None
    return FeatureSpec.infer(schema, label=label, overrides=overrides, exclude=exclude, sample=sample)


def fit_spec(spec: FeatureSpec, paths, batch_size: int = READ_BATCH_ROWS, sample_size: int = 100_000,
             seed: int = 0) -> FeatureSpec:
    """Fits the vocabularies and bucket statistics of ``spec``'s unfitted features in one streaming pass over
    the Parquet file(s) ``paths`` (the training split only). Returns ``spec``, fitted in place.

    Quantile boundaries come from a uniform reservoir sample of ``sample_size`` values per feature (``seed``).
    """
    fitters = {f.name: _Fitter(f, sample_size, seed) for f in spec.features if not f.fitted}
    rows = 0
    for batch, _ in iter_record_batches(paths, spec, batch_size=batch_size, check_label=False):
        rows += batch.num_rows
        for name, fitter in fitters.items():
            fitter.update(batch.column(name))
    if rows == 0:
        raise SpecError(f"cannot fit the FeatureSpec: no rows in {paths}")
    for fitter in fitters.values():
        fitter.finish()
    return spec


class _Fitter:
    """Streaming statistics for one feature: value counts, range, moments and a reservoir sample."""

    def __init__(self, feature: Feature, sample_size: int, seed: int):
        self.feature = feature
        self.counts: dict = {}
        self.lo, self.hi = math.inf, -math.inf
        self.n, self.total, self.total_sq = 0, 0.0, 0.0
        self.longest = 0
        self.sample = np.empty(0)
        self.seen = 0
        self.sample_size = sample_size
        self.rng = np.random.default_rng(seed)

    def update(self, column: pa.ChunkedArray | pa.Array) -> None:
        f = self.feature
        if isinstance(f, ListFeature):
            lengths = pc.fill_null(pc.list_value_length(column), 0)
            self.longest = max(self.longest, int(pc.max(lengths).as_py() or 0))
            tokens = pc.drop_null(pc.cast(pc.list_flatten(column), pa.string()))
            tokens = tokens.filter(pc.not_equal(tokens, MISSING_STRING))
            if f.hash_bins is None:
                bad = pc.any(pc.match_substring(tokens, pattern=f.separator)).as_py() if len(tokens) else False
                if bad:
                    raise SpecError(f"list feature '{f.name}': a token contains the separator {f.separator!r}; "
                                    "choose another separator")
                self._count(tokens)
        elif isinstance(f, CategoricalFeature):
            if f.hash_bins is None:
                self._count(fill_missing_category(column, f))
        else:
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            values = values[~np.isnan(values)]
            if values.size:
                self.lo, self.hi = min(self.lo, values.min()), max(self.hi, values.max())
                self.n += values.size
                self.total += float(values.sum())
                self.total_sq += float(np.square(values).sum())
                if f.transform == "quantile":
                    self._reservoir(values)

    def _count(self, values) -> None:
        counts = pc.value_counts(values)
        for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
            self.counts[value] = self.counts.get(value, 0) + count

    def _reservoir(self, values: np.ndarray) -> None:
        """Algorithm R, vectorised per batch: keeps a uniform sample of everything seen so far."""
        room = self.sample_size - self.sample.size
        if room > 0:
            self.sample = np.concatenate([self.sample, values[:room]])
            self.seen += min(room, values.size)
            values = values[room:]
        if values.size:
            positions = self.seen + np.arange(1, values.size + 1)
            slots = (self.rng.random(values.size) * positions).astype(np.int64)
            keep = slots < self.sample_size
            self.sample[slots[keep]] = values[keep]
            self.seen += values.size

    def finish(self) -> None:
        f = self.feature
        if isinstance(f, CategoricalFeature):
            if f.hash_bins is None:
                kept = [(v, c) for v, c in self.counts.items() if c >= f.min_count]
                kept.sort(key=lambda vc: (-vc[1], str(vc[0])))
                f.vocabulary = [v for v, _ in kept]
            if isinstance(f, ListFeature) and f.max_length is None:
                f.max_length = max(1, self.longest)
            return
        if self.n == 0:
            raise SpecError(f"numeric feature '{f.name}': every training value is missing, nothing to fit")
        if f.transform == "standardize":
            f.mean = self.total / self.n
            f.std = math.sqrt(max(self.total_sq / self.n - f.mean**2, 0.0)) or 1.0
        elif f.transform == "log_square":
            f.boundaries = log_square_boundaries(self.lo, self.hi)
        else:
            f.boundaries = quantile_boundaries(self.sample, f.num_buckets)
