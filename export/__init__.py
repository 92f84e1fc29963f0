"""tfctr.export: SavedModels for TF Serving (raw-feature signatures, atomic versioned layout)."""

from tfctr.export.saved_model import export_saved_model, next_version

__all__ = ["export_saved_model", "next_version"]
