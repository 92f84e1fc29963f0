"""FeatureSpec: what each raw column is, how it becomes model input, and the statistics fitted for it.

A spec is declared (or inferred from a Parquet schema, with overrides), fitted on training data in one
streaming pass, and saved as JSON beside every run and export. It drives the Parquet reader, the Keras
inputs and embedding sizes, the serving signature and the serving-time preprocessing.

Id conventions (the same in training and serving, see ``tfctr.data.encoding``):

* ``CategoricalFeature`` with a vocabulary: id 0 is the out-of-vocabulary (OOV) bucket, ids 1..V are the
  vocabulary in descending frequency. Values seen fewer than ``min_count`` times in training, and values
  never seen, map to 0 by design. A missing value (null) is replaced by ``""`` (strings) or ``-1`` (ints)
  before lookup, so missingness is a category of its own when it is frequent enough.
* ``CategoricalFeature`` with ``hash_bins=N``: id = FarmHash64(value as string) mod N, ids 0..N-1.
* ``NumericFeature`` with ``transform="log_square"`` or ``"quantile"``: id 0 = missing (null or NaN),
  ids 1..len(boundaries)+1 = bucket ``1 + #{b in boundaries : b <= x}``; values outside the fitted range
  fall into the first or last bucket. ``log_square`` is the Criteo-winning transform: integer buckets for
  x <= 2 and ``floor(ln(x)^2)`` buckets above, written as explicit boundaries ``e^sqrt(k)``.
* ``NumericFeature`` with ``transform="standardize"``: a float ``(x - mean) / std``; missing gives 0.0,
  the training mean.
* ``ListFeature``: a list of tokens mapped like a categorical feature, padded with -1 to ``max_length``
  (longer lists keep their first ``max_length`` tokens), pooled by mean or sum inside the model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tfctr._hints import did_you_mean

PADDING_ID = -1
MISSING_STRING = ""
MISSING_INT = -1


class SpecError(ValueError):
    """A FeatureSpec that is invalid or does not match the data it is applied to."""


def _check_choice(name: str, field: str, value, choices) -> None:
    if value not in choices:
        raise SpecError(f"feature '{name}': {field}={value!r}, expected one of {sorted(choices)}")


@dataclasses.dataclass
class CategoricalFeature:
    """A single-valued categorical column (string or integer ids).

    Args:
        name: column name.
        dtype: ``"string"`` or ``"int64"``: the raw type the feature is served with.
        min_count: values seen fewer times than this in training map to the OOV id 0.
        hash_bins: if set, hash values into this many bins instead of fitting a vocabulary.
        vocabulary: fitted vocabulary in id order (id = position + 1); ``None`` until fitted.
    """

    name: str
    dtype: str = "string"
    min_count: int = 1
    hash_bins: int | None = None
    vocabulary: list | None = None
    kind = "categorical"

    def __post_init__(self):
        _check_choice(self.name, "dtype", self.dtype, {"string", "int64"})
        if self.min_count < 1:
            raise SpecError(f"feature '{self.name}': min_count must be >= 1, got {self.min_count}")
        if self.hash_bins is not None and self.hash_bins < 1:
            raise SpecError(f"feature '{self.name}': hash_bins must be >= 1, got {self.hash_bins}")

    @property
    def fitted(self) -> bool:
        """True once the vocabulary is known (or the feature is hashed, which needs no fitting)."""
        return self.hash_bins is not None or self.vocabulary is not None

    @property
    def vocabulary_size(self) -> int:
        """Number of embedding rows this feature needs (vocabulary + OOV, or hash bins)."""
        if self.hash_bins is not None:
            return self.hash_bins
        if self.vocabulary is None:
            raise SpecError(f"feature '{self.name}' is not fitted yet: call FeatureSpec.fit first")
        return len(self.vocabulary) + 1

    @property
    def is_embedded(self) -> bool:
        """Always True: a categorical is one field of the embedding tensor."""
        return True

    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a Parquet column of ``arrow_type`` can feed this feature (strings or integers per ``dtype``)."""
        if self.dtype == "string":
            return _is_string_like(arrow_type)
        return pa.types.is_integer(arrow_type)


@dataclasses.dataclass
class ListFeature(CategoricalFeature):
    """A multi-valued categorical column (Parquet ``list<string>`` or ``list<int>``), pooled in the model.

    Tokens are handled as strings (integer tokens by their decimal form). At serving time the list is sent as
    one string per example with tokens joined by ``separator`` (``""`` = empty list).

    Args:
        max_length: number of tokens kept per example (the first ones); fitted to the longest list seen in
            training when ``None``.
        pooling: ``"mean"`` or ``"sum"`` of the token embeddings.
        separator: token separator of the serving input; tokens containing it are rejected when fitting.
    """

    dtype: str = "string"
    max_length: int | None = None
    pooling: str = "mean"
    separator: str = "|"
    kind = "list"

    def __post_init__(self):
        super().__post_init__()
        _check_choice(self.name, "pooling", self.pooling, {"mean", "sum"})
        if self.dtype != "string":
            raise SpecError(f"list feature '{self.name}': tokens are handled as strings, dtype must be 'string'")
        if self.max_length is not None and self.max_length < 1:
            raise SpecError(f"list feature '{self.name}': max_length must be >= 1, got {self.max_length}")

    @property
    def fitted(self) -> bool:
        """True once the vocabulary and ``max_length`` (the padded list length) are known."""
        return super().fitted and self.max_length is not None

    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a Parquet column of ``arrow_type`` can feed this feature (a list of strings or integers)."""
        if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
            return False
        value_type = arrow_type.value_type
        return _is_string_like(value_type) or pa.types.is_integer(value_type)


@dataclasses.dataclass
class NumericFeature:
    """A numeric column, bucketised for embedding or standardised into the dense block.

    Args:
        name: column name.
        transform: ``"log_square"`` (Criteo count buckets), ``"quantile"`` (equal-frequency buckets) or
            ``"standardize"`` (a float input of the dense block).
        num_buckets: number of quantile buckets (``transform="quantile"`` only); a value that holds at least
            1/num_buckets of the training data gets a bucket of its own (see ``quantile_boundaries``).
        boundaries: fitted bucket boundaries, ascending.
        mean, std: fitted moments (``transform="standardize"`` only).
    """

    name: str
    transform: str = "log_square"
    num_buckets: int = 16
    boundaries: list | None = None
    mean: float | None = None
    std: float | None = None
    kind = "numeric"
    dtype = "float64"

    def __post_init__(self):
        _check_choice(self.name, "transform", self.transform, {"log_square", "quantile", "standardize"})
        if self.num_buckets < 2:
            raise SpecError(f"feature '{self.name}': num_buckets must be >= 2, got {self.num_buckets}")

    @property
    def is_embedded(self) -> bool:
        """True for bucketised numerics (one embedded field); False for standardised ones (a dense column)."""
        return self.transform != "standardize"

    @property
    def fitted(self) -> bool:
        """True once the bucket boundaries (or, standardised, the mean and std) are known."""
        if self.transform == "standardize":
            return self.mean is not None and self.std is not None
        return self.boundaries is not None

    @property
    def vocabulary_size(self) -> int:
        """Embedding rows: one per bucket plus id 0 for a missing value."""
        if not self.is_embedded:
            raise SpecError(f"feature '{self.name}' is standardised, it has no vocabulary")
        if self.boundaries is None:
            raise SpecError(f"feature '{self.name}' is not fitted yet: call FeatureSpec.fit first")
        return len(self.boundaries) + 2

    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a Parquet column of ``arrow_type`` can feed this feature (integer, float or boolean)."""
        return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)


Feature = CategoricalFeature | ListFeature | NumericFeature
_KINDS = {"categorical": CategoricalFeature, "list": ListFeature, "numeric": NumericFeature}


def _is_string_like(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def log_square_boundaries(lo: float, hi: float) -> list[float]:
    """Bucket boundaries of the Criteo transform for counts seen in [lo, hi].

    The transform maps x <= 2 to floor(x) and x > 2 to floor(ln(x)^2). As ascending boundaries: every integer in
    (floor(lo), 2], then e^sqrt(k) for k = 1, 2, ... up to the bucket that holds ``hi``.
    """
    bounds = [float(v) for v in range(int(math.floor(lo)) + 1, 3)] if lo <= 2 else []
    if hi > 2:
        top = int(math.floor(math.log(hi) ** 2))
        bounds += [math.exp(math.sqrt(k)) for k in range(1, top + 1) if math.exp(math.sqrt(k)) > max(lo, 2.0)]
    return bounds


def quantile_boundaries(sample: np.ndarray, num_buckets: int) -> list[float]:
    """Equal-frequency bucket boundaries of ``sample`` that keep its atoms apart.

    A value holding at least 1/``num_buckets`` of the sample (an atom: the zeros of a capital-gain column, a
    round number) gets a bucket of its own, bounded by ``a`` and the next float above it; the remaining values
    are cut at their own quantiles into the buckets left. Plain quantiles would merge a 90% atom with everything
    near it into one or two buckets and lose the rest of the column.
    """
    values, counts = np.unique(sample, return_counts=True)
    atoms = values[counts >= len(sample) / num_buckets]
    rest = sample[~np.isin(sample, atoms)]
    cuts = []
    if rest.size:
        n_rest = max(num_buckets - 2 * len(atoms), 2)
        cuts = list(np.quantile(rest, np.arange(1, n_rest) / n_rest))
    atom_edges = [edge for atom in atoms for edge in (atom, np.nextafter(atom, np.inf))]
    return [float(b) for b in np.unique(np.array(cuts + atom_edges, dtype=np.float64))]


class FeatureSpec:
    """The ordered set of features a model consumes, plus the label column.

    Args:
        features: the features, in model order.
        label: name of the label column (values must be 0 or 1).
    """

    def __init__(self, features: Iterable[Feature], label: str = "label"):
        self.features = list(features)
        self.label = label
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"duplicate feature names in FeatureSpec: {duplicates}")
        if label in names:
            raise SpecError(f"the label column '{label}' is also declared as a feature")

    # ----------------------------------------------------------------------------------------- inspection
    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"no feature '{name}' in the FeatureSpec{did_you_mean(name, self.names)}")

    @property
    def names(self) -> list[str]:
        """Feature (column) names in spec order, the label excluded."""
        return [f.name for f in self.features]

    @property
    def embedded(self) -> list[Feature]:
        """Features that become one field of the ``[B, F, D]`` embedding tensor, in order."""
        return [f for f in self.features if f.is_embedded]

    @property
    def dense(self) -> list[NumericFeature]:
        """Standardised numeric features, the columns of the dense block ``[B, n_dense]``."""
        return [f for f in self.features if not f.is_embedded]

    @property
    def fitted(self) -> bool:
        """True when every feature is fitted."""
        return all(f.fitted for f in self.features)

    def require_fitted(self) -> None:
        """Raises ``SpecError`` naming the features that are not fitted yet."""
        missing = [f.name for f in self.features if not f.fitted]
        if missing:
            raise SpecError(f"FeatureSpec is not fitted for features {missing}: call tfctr.data.fit_spec(spec, paths) "
                            "first")

    def describe(self) -> str:
        """A table of the features, one row each: column, kind, transform, raw dtype, embedding rows."""
        rows = [("column", "kind", "transform", "dtype", "rows")]
        for f in self.features:
            if isinstance(f, NumericFeature):
                transform, dtype = f.transform, "float64"
            else:
                transform = f"hash {f.hash_bins}" if f.hash_bins else f"vocabulary, min_count {f.min_count}"
                dtype = f.dtype
            size = str(f.vocabulary_size) if f.is_embedded and f.fitted else ("dense" if not f.is_embedded else "-")
            rows.append((f.name, f.kind, transform, dtype, size))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:] + [f"label: {self.label}"])

    def __repr__(self) -> str:
        body = ", ".join(f"{f.name}:{f.kind}" for f in self.features)
        return f"FeatureSpec(label={self.label!r}, features=[{body}])"

    # ----------------------------------------------------------------------------------------- inference
    @classmethod
    def infer(
        cls,
        schema: pa.Schema,
        label: str = "label",
        overrides: dict | None = None,
        exclude: Iterable[str] = (),
        sample: pa.Table | None = None,
    ) -> FeatureSpec:
        """Infers a spec from an Arrow schema (``tfctr.data.infer_spec`` does it from Parquet files).

        Strings and dictionaries become vocabulary categoricals, floats become ``quantile`` numerics, booleans
        categorical ints, lists ``ListFeature``. Integers are either identifiers (categorical ints) or counts
        (``log_square`` numerics), told apart by ``integer_kind`` on the column's values in ``sample``; an
        integer column without a sample is taken as counts. ``describe()`` prints what was inferred.

        Args:
            schema: the Arrow schema of the data.
            label: the label column (excluded from features; must exist).
            overrides: column name -> a Feature instance, or a dict of constructor arguments (``kind`` picks the
                class) replacing the inferred feature.
            exclude: columns that are not features (ids, timestamps, true CTR of synthetic data).
            sample: a table of some rows of the integer columns (their values decide identifier or count).
        """
        overrides = dict(overrides or {})
        exclude = set(exclude)
        if label not in schema.names:
            raise SpecError(f"label column '{label}' is not in the schema; columns are {schema.names}")
        unknown = (set(overrides) | exclude) - set(schema.names)
        if unknown:
            raise SpecError(f"overrides/exclude name columns that are not in the schema: {sorted(unknown)}")
        features = []
        for field in schema:
            if field.name == label or field.name in exclude:
                continue
            if field.name in overrides:
                features.append(_feature_from_override(field.name, overrides[field.name]))
            elif sample is not None and field.name in sample.column_names:
                features.append(_infer_integer(field.name, sample.column(field.name)))
            else:
                features.append(_infer_feature(field))
        return cls(features, label=label)

    # ----------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """A JSON-ready dict: the label and every feature with its kind and fitted state."""
        return {
            "label": self.label,
            "features": [{"kind": f.kind, **dataclasses.asdict(f)} for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        """The inverse of ``to_dict``."""
        features = [_feature_from_override(d["name"], d) for d in data["features"]]
        return cls(features, label=data["label"])

    def to_json(self) -> str:
        """``to_dict`` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """The inverse of ``to_json``."""
        return cls.from_dict(json.loads(text))

    def save(self, path) -> None:
        """Writes ``to_json()`` to ``path`` (a run directory's ``spec.json``)."""
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path) -> FeatureSpec:
        """Reads a spec written by ``save``."""
        return cls.from_json(Path(path).read_text())

    def __eq__(self, other) -> bool:
        return isinstance(other, FeatureSpec) and self.to_dict() == other.to_dict()


def _feature_from_override(name: str, value) -> Feature:
    if isinstance(value, (CategoricalFeature, NumericFeature)):
        if value.name != name:
            raise SpecError(f"override for column '{name}' is a feature named '{value.name}'")
        return value
    args = dict(value)
    kind = args.pop("kind", "categorical")
    if kind not in _KINDS:
        raise SpecError(f"feature '{name}': kind={kind!r}, expected one of {sorted(_KINDS)}")
    args["name"] = name
    try:
        return _KINDS[kind](**args)
    except TypeError as err:
        raise SpecError(f"feature '{name}': invalid arguments for a {kind} feature: {err}") from None


def _infer_feature(field: pa.Field) -> Feature:
    t = field.type
    if _is_string_like(t):
        return CategoricalFeature(field.name, dtype="string")
    if pa.types.is_boolean(t):
        return CategoricalFeature(field.name, dtype="int64")
    if pa.types.is_integer(t):
        return NumericFeature(field.name, transform="log_square")
    if pa.types.is_floating(t):
        return NumericFeature(field.name, transform="quantile")
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return ListFeature(field.name)
    raise SpecError(f"column '{field.name}' has Arrow type {t}, which tfctr cannot infer a feature for; "
                    "pass an override or exclude it")


MIN_INFERENCE_ROWS = 100
_IDENTIFIER_NAME = re.compile(r"(^|[_\W])(id|ids|key|uid|hash)$|[a-z0-9]Id$|^id[_\W]", re.IGNORECASE)


def integer_kind(name: str, values: np.ndarray) -> tuple[str, str]:
    """Whether an integer column holds identifiers (``"categorical"``) or counts (``"count"``), and why.

    Identifiers: a name like ``user_id``, ``itemId`` or ``key``; at most two distinct values (a flag); or a
    value frequency that does not fall as the value grows. With fewer than ``MIN_INFERENCE_ROWS`` values (and
    no id-like name) there is no evidence either way and the column is taken as counts, as from a schema alone.
    Counts (clicks, views, the Criteo I-fields) are mostly small with a thinning tail: over the distinct values,
    the rank correlation between a value and how often it occurs is clearly negative (≤ -0.3). Ids are arbitrary
    codes whose frequency has nothing to do with their size.
    """
    if _IDENTIFIER_NAME.search(name):
        return "categorical", "the name looks like an identifier"
    values = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if values.size < MIN_INFERENCE_ROWS:
        return "count", f"only {values.size} values, too few to tell: counts assumed"
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size <= 2:
        return "categorical", f"{distinct.size} distinct value(s)"
    value_rank = np.arange(distinct.size)  # np.unique returns the values sorted
    count_rank = np.argsort(np.argsort(counts, kind="stable"), kind="stable")
    rho = float(np.corrcoef(value_rank, count_rank)[0, 1]) if counts.min() != counts.max() else 0.0
    if rho <= -0.3:
        return "count", f"frequency falls as the value grows (rank correlation {rho:.2f})"
    return "categorical", f"frequency unrelated to the value (rank correlation {rho:.2f}): identifiers"


def _infer_integer(name: str, column) -> Feature:
    values = pc.drop_null(column).to_numpy(zero_copy_only=False)
    kind, _ = integer_kind(name, values)
    return CategoricalFeature(name, dtype="int64") if kind == "categorical" else NumericFeature(name, "log_square")
