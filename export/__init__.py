"""tfctr.export: SavedModels for TF Serving (raw-feature signatures, atomic versioned layout)."""

from tfctr.export.folding import fold_for_serving, has_serving_form
from tfctr.export.saved_model import export_saved_model, next_version

__all__ = ["export_saved_model", "fold_for_serving", "has_serving_form", "next_version"]
