"""Data: the FeatureSpec inferred and fitted from Parquet (``infer_spec``, ``fit_spec``), Parquet streaming into
tf.data, feature encoding (training and serving), synthetic data, converters."""

from tfctr.data.encoding import ArrowEncoder, RawFeatureEncoder, arrow_to_serving
from tfctr.data.fitting import fit_spec, infer_spec
from tfctr.data.parquet import DataError, parquet_dataset, read_columns, read_schema, resolve_paths, shard_rows
from tfctr.data.synthetic import SyntheticConfig, SyntheticCTR, write_synthetic

__all__ = ["ArrowEncoder", "DataError", "RawFeatureEncoder", "SyntheticCTR", "SyntheticConfig",
           "arrow_to_serving", "fit_spec", "infer_spec", "parquet_dataset", "read_columns", "read_schema",
           "resolve_paths", "shard_rows", "write_synthetic"]
