"""Converters from the public CTR formats to Parquet, streamed (constant memory).

* Criteo (Display Advertising Challenge / Terabyte): TSV without header, ``label``, 13 integer counts
  ``I1..I13`` and 26 hexadecimal categoricals ``C1..C26``; empty fields become nulls.
* Avazu: CSV with header ``id,click,hour,C1,banner_pos,...``; ``click`` becomes ``label`` (int8), ``hour``
  (YYMMDDHH) is kept as a string and split into ``hour_of_day`` and ``weekday``; ``id`` is dropped (unique per
  row, no signal); every other column is a string categorical.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

CRITEO_INT_COLUMNS = [f"I{i}" for i in range(1, 14)]
CRITEO_CAT_COLUMNS = [f"C{i}" for i in range(1, 27)]


def _stream_to_parquet(reader, out_path, transform) -> int:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer = None
    try:
        for batch in reader:
            table = transform(pa.Table.from_batches([batch]))
            if writer is None:
                writer = pq.ParquetWriter(out_path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if rows == 0:
        raise ValueError(f"no rows to convert; nothing written to {out_path}")
    return rows


def criteo_to_parquet(tsv_path, out_path, block_size: int = 1 << 24) -> int:
    """Converts a Criteo TSV file to Parquet and returns the number of rows."""
    names = ["label"] + CRITEO_INT_COLUMNS + CRITEO_CAT_COLUMNS
    types = {"label": pa.int8(), **{c: pa.int64() for c in CRITEO_INT_COLUMNS},
             **{c: pa.string() for c in CRITEO_CAT_COLUMNS}}
    reader = pcsv.open_csv(
        tsv_path,
        read_options=pcsv.ReadOptions(column_names=names, block_size=block_size),
        parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    return _stream_to_parquet(reader, out_path, lambda table: table)


def _avazu_transform(table: pa.Table) -> pa.Table:
    hour = pc.cast(table.column("hour"), pa.string())
    stamps = pc.strptime(hour, format="%y%m%d%H", unit="s")
    columns = {"label": pc.cast(table.column("click"), pa.int8()),
               "hour_of_day": pc.cast(pc.hour(stamps), pa.string()),
               "weekday": pc.cast(pc.day_of_week(stamps), pa.string())}
    for name in table.column_names:
        if name not in ("id", "click", "hour"):
            columns[name] = pc.cast(table.column(name), pa.string())
    return pa.table(columns)


def avazu_to_parquet(csv_path, out_path, block_size: int = 1 << 24) -> int:
    """Converts an Avazu CSV file to Parquet and returns the number of rows."""
    header = Path(csv_path).open().readline().strip().split(",")
    missing = [c for c in ("id", "click", "hour") if c not in header]
    if missing:
        raise ValueError(f"'{csv_path}' is not an Avazu CSV: columns {missing} are missing from its header")
    types = {c: pa.string() for c in header}
    types["click"] = pa.int8()
    reader = pcsv.open_csv(csv_path, read_options=pcsv.ReadOptions(block_size=block_size),
                           convert_options=pcsv.ConvertOptions(column_types=types))
    return _stream_to_parquet(reader, out_path, _avazu_transform)


__all__ = ["avazu_to_parquet", "criteo_to_parquet"]
