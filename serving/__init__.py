"""tfctr.serving: clients and servers speaking TF Serving's gRPC API (built in the export/serving issue)."""
