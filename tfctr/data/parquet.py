"""Parquet -> ``tf.data.Dataset`` of ``(features, label)`` batches, streamed by Arrow record batches.

Files are read record batch by record batch (never a whole file in memory), validated against the
FeatureSpec, encoded by the vectorised ``ArrowEncoder`` and batched. Shuffling permutes the file order every
epoch and shuffles rows inside a window of ``shuffle_buffer`` rows. ``shard=(num_shards, index)`` gives a
worker its part of the input: whole files when there are at least as many files as shards, otherwise every
``num_shards``-th row.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf

from tfctr._hints import did_you_mean
from tfctr.data.encoding import ArrowEncoder, model_input_shape_and_dtype
from tfctr.features import FeatureSpec, SpecError


class DataError(ValueError):
    """Input data that does not match what the FeatureSpec or the caller expects."""

# rows per Arrow record batch read from Parquet: large enough that per-batch overhead is negligible, small
# enough that a batch of Criteo-width rows stays in tens of MB; the training reader reads between the two
# (at least the training batch) and re-slices into training batches
READ_BATCH_ROWS = 65_536
MAX_READ_BATCH_ROWS = 131_072


def resolve_paths(paths) -> list[str]:
    """Expands a file, a directory (all ``*.parquet`` below it), a glob, or a list of those into sorted files."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[str] = []
    for item in paths:
        item = str(item)
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*.parquet"))
            if not found:
                raise DataError(f"directory '{item}' contains no *.parquet files")
            files += found
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise DataError(f"glob '{item}' matches no files")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise DataError(f"Parquet path '{item}' does not exist")
    return files


def read_schema(paths) -> pa.Schema:
    """The Arrow schema of the first file of ``paths``."""
    return _open(resolve_paths(paths)[0]).schema_arrow


# Parquet schema metadata naming the column that holds the true click probability (the oracle); tfctr's
# synthetic writer sets it. Only a column named so, or passed as ``oracle_column``, is kept out of the features.
ORACLE_METADATA_KEY = b"tfctr.oracle_column"


def oracle_column_of(paths) -> str | None:
    """The oracle column the file's schema metadata names (``ORACLE_METADATA_KEY``), or None."""
    name = (read_schema(paths).metadata or {}).get(ORACLE_METADATA_KEY)
    return name.decode() if name else None


def read_sample(paths, columns: list[str], max_rows: int = 100_000) -> pa.Table:
    """The first ``max_rows`` rows of ``columns`` over the files of ``paths`` (for inference, not training)."""
    pieces, rows = [], 0
    for path in resolve_paths(paths):
        for batch in read_batches(path, _open(path), batch_size=min(max_rows, READ_BATCH_ROWS), columns=columns):
            pieces.append(batch.slice(0, max_rows - rows))
            rows += pieces[-1].num_rows
            if rows >= max_rows:
                return pa.Table.from_batches(pieces)
    return pa.Table.from_batches(pieces) if pieces else pa.table({c: [] for c in columns})


def _open(path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"'{path}' is not a readable Parquet file: {err}") from None


def read_batches(path: str, parquet: pq.ParquetFile, **kwargs) -> Iterator[pa.RecordBatch]:
    """``parquet.iter_batches(**kwargs)`` with any read error (a corrupt page, a truncated column chunk)
    raised as a DataError naming the file."""
    batches = parquet.iter_batches(**kwargs)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"'{path}': cannot read its data ({type(err).__name__}: {err})") from None
        yield batch


def open_checked(path: str, spec: FeatureSpec, with_label: bool = True) -> pq.ParquetFile:
    """Opens a Parquet file and checks that it can feed ``spec``: readable, right columns and types, not empty."""
    parquet = _open(path)
    validate_schema(parquet.schema_arrow, spec, f"'{path}'", with_label=with_label)
    if parquet.metadata.num_rows == 0:
        raise DataError(f"'{path}' is empty (0 rows); remove it or pass other files")
    return parquet


def validate_schema(schema: pa.Schema, spec: FeatureSpec, source: str, with_label: bool = True) -> None:
    """Raises a DataError naming the file and column when the schema cannot feed the spec."""
    for feature in spec.features:
        if feature.name not in schema.names:
            raise DataError(f"{source}: column '{feature.name}' required by the FeatureSpec is missing"
                            f"{did_you_mean(feature.name, schema.names)}; columns are {schema.names}")
        arrow_type = schema.field(feature.name).type
        if not feature.accepts(arrow_type):
            raise DataError(
                f"{source}: column '{feature.name}' has Arrow type {arrow_type}, but the FeatureSpec declares "
                f"a {feature.kind} feature" + (f" of dtype {feature.dtype}" if feature.kind != "numeric" else "")
                + " and cannot read it"
            )
    if with_label:
        if spec.label not in schema.names:
            raise DataError(f"{source}: label column '{spec.label}' is missing"
                            f"{did_you_mean(spec.label, schema.names)}")
        label_type = schema.field(spec.label).type
        if not (pa.types.is_integer(label_type) or pa.types.is_floating(label_type)
                or pa.types.is_boolean(label_type)):
            raise DataError(f"{source}: label column '{spec.label}' has Arrow type {label_type}, expected "
                            "an integer, float or boolean column of 0/1 values")


def check_labels(labels: pa.Array, column: str, source: str) -> np.ndarray:
    """Returns labels as float32, or raises naming the column when a value is null or not 0/1."""
    if labels.null_count:
        raise DataError(f"{source}: label column '{column}' has {labels.null_count} null values")
    values = pc.cast(labels, pa.float32()).to_numpy(zero_copy_only=False)
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise DataError(f"{source}: label column '{column}' must be 0 or 1, found {values[bad][:5].tolist()}")
    return values


def iter_record_batches(
    paths, spec: FeatureSpec, batch_size: int = READ_BATCH_ROWS, check_label: bool = True, columns=None,
    shard: tuple[int, int] | None = None, file_order=None,
) -> Iterator[tuple[pa.RecordBatch, np.ndarray | None]]:
    """Streams validated record batches (the spec's columns, plus ``columns``) and their labels.

    Yields ``(record_batch, labels)`` where labels are float32 0/1 (``None`` when ``check_label`` is False and
    the files have no label column).
    """
    files = resolve_paths(paths)
    if file_order is not None:
        files = [files[i] for i in file_order]
    if shard is not None and len(files) >= shard[0]:
        files, shard = files[shard[1]::shard[0]], None
    wanted = spec.names + list(columns or [])
    rows_seen = 0
    for path in files:
        parquet = open_checked(path, spec, with_label=check_label)
        schema = parquet.schema_arrow
        missing_extra = [c for c in columns or [] if c not in schema.names]
        if missing_extra:
            raise DataError(f"'{path}': requested columns {missing_extra} are missing")
        has_label = spec.label in schema.names
        read = wanted + ([spec.label] if has_label and spec.label not in wanted else [])
        for batch in read_batches(path, parquet, batch_size=batch_size, columns=read):
            if shard is not None:  # rows whose global index is congruent to the shard index
                first = (shard[1] - rows_seen) % shard[0]
                rows_seen += batch.num_rows
                batch = batch.take(pa.array(np.arange(first, batch.num_rows, shard[0])))
                if batch.num_rows == 0:
                    continue
            labels = None
            if has_label and check_label:
                labels = check_labels(batch.column(spec.label), spec.label, f"'{path}'")
            yield batch, labels


def parquet_dataset(
    paths,
    spec: FeatureSpec,
    batch_size: int = 1024,
    shuffle: bool = False,
    shuffle_buffer: int = 262_144,
    seed: int = 0,
    shard: tuple[int, int] | None = None,
    drop_remainder: bool = False,
    with_label: bool = True,
    prefetch: int = 2,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` yielding ``(features, label)`` batches (or ``features`` if ``with_label=False``).

    Args:
        paths: Parquet file(s), directories or globs.
        spec: a fitted FeatureSpec.
        batch_size: rows per batch (the last batch is smaller unless ``drop_remainder``).
        shuffle: shuffle file order and rows (within windows of ``shuffle_buffer`` rows), anew every epoch.
        seed: seed of the shuffle; epoch e uses ``seed + e``.
        first_epoch: the epoch e of the first pass (a run resumed at epoch e reads the rows in the order the
            uninterrupted run read them in that epoch).
        shard: ``(num_shards, index)``: read only this worker's part of the files.
        drop_remainder: drop the last incomplete batch.
        with_label: yield labels (the label column must then exist and hold 0/1).
    """
    spec.require_fitted()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    files = resolve_paths(paths)
    if shard is not None and len(files) >= shard[0]:  # whole files: shuffling then permutes this shard's files
        files, shard = files[shard[1]::shard[0]], None
    rows = sum(open_checked(path, spec, with_label=with_label).metadata.num_rows for path in files)
    if shard is not None:  # every num_shards-th row
        rows = len(range(shard[1], rows, shard[0]))
    encoder = ArrowEncoder(spec)
    window = max(shuffle_buffer, batch_size) if shuffle else batch_size
    epoch = [first_epoch]

    def generate():
        rng = np.random.default_rng(seed + epoch[0])
        epoch[0] += 1
        order = rng.permutation(len(files)) if shuffle else None
        read_size = min(max(batch_size, READ_BATCH_ROWS), MAX_READ_BATCH_ROWS)
        pending: list[tuple[dict, np.ndarray]] = []
        pending_rows = 0
        for batch, labels in iter_record_batches(files, spec, read_size, check_label=with_label,
                                                 shard=shard, file_order=order):
            pending.append((encoder.encode(batch), labels))
            pending_rows += batch.num_rows
            if pending_rows >= window:
                features, labels_all = _concat(pending)
                if shuffle:
                    features, labels_all = _permute(features, labels_all, rng)
                full = (pending_rows // batch_size) * batch_size
                yield from _split(features, labels_all, 0, full, batch_size, with_label)
                rest = _slice(features, labels_all, full, pending_rows)
                pending, pending_rows = ([rest], pending_rows - full) if pending_rows > full else ([], 0)
        if pending_rows and not (drop_remainder and pending_rows < batch_size):
            features, labels_all = _concat(pending)
            if shuffle:
                features, labels_all = _permute(features, labels_all, rng)
            end = (pending_rows // batch_size) * batch_size if drop_remainder else pending_rows
            yield from _split(features, labels_all, 0, end, batch_size, with_label)

    feature_signature = {}
    for feature in spec.features:
        shape, dtype = model_input_shape_and_dtype(feature)
        feature_signature[feature.name] = tf.TensorSpec((None, *shape), dtype)
    signature = (feature_signature, tf.TensorSpec((None,), tf.float32)) if with_label else feature_signature
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # the batches of one pass are known: Keras then runs exactly that many steps from the first epoch (with an
    # unknown count its first epoch ends on a failed extra step that still counts an optimizer iteration)
    batches = rows // batch_size + (0 if drop_remainder or rows % batch_size == 0 else 1)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(prefetch)


def _concat(pending):
    if len(pending) == 1:
        return pending[0]
    features = {k: np.concatenate([p[0][k] for p in pending]) for k in pending[0][0]}
    labels = None if pending[0][1] is None else np.concatenate([p[1] for p in pending])
    return features, labels


def _permute(features, labels, rng):
    order = rng.permutation(len(next(iter(features.values()))))
    return {k: v[order] for k, v in features.items()}, (None if labels is None else labels[order])


def _slice(features, labels, start, end):
    return {k: v[start:end] for k, v in features.items()}, (None if labels is None else labels[start:end])


def _split(features, labels, start, end, batch_size, with_label):
    for lo in range(start, end, batch_size):
        hi = min(lo + batch_size, end)
        part, part_labels = _slice(features, labels, lo, hi)
        yield (part, part_labels) if with_label else part


def shard_rows(paths, num_shards: int, index: int) -> int:
    """Rows that ``shard=(num_shards, index)`` reads from ``paths`` (whole files, or every num_shards-th row)."""
    counts = [_open(p).metadata.num_rows for p in resolve_paths(paths)]
    if len(counts) >= num_shards:
        return sum(counts[index::num_shards])
    return len(range(index, sum(counts), num_shards))


def read_columns(paths, columns: list[str]) -> dict[str, np.ndarray]:
    """Reads whole columns (e.g. labels, the true CTR of synthetic data) in file order, as NumPy arrays."""
    out: dict[str, list] = {c: [] for c in columns}
    for path in resolve_paths(paths):
        schema = _open(path).schema_arrow
        for c in columns:
            if c not in schema.names:
                raise DataError(f"'{path}': column '{c}' is missing")
        try:
            table = pq.read_table(path, columns=columns)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"'{path}': cannot read columns {columns} ({type(err).__name__}: {err})") from None
        for c in columns:
            out[c].append(table.column(c).to_numpy())
    return {c: np.concatenate(v) for c, v in out.items()}


__all__ = ["DataError", "SpecError", "iter_record_batches", "parquet_dataset", "read_columns", "read_schema",
           "resolve_paths", "shard_rows", "validate_schema"]
