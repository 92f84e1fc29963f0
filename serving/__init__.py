"""tfctr.serving: a TF-Serving-compatible gRPC server (``tfctr serve``) and a client for it and for TF Serving."""

from tfctr.serving.client import Client
from tfctr.serving.repository import ModelRepository
from tfctr.serving.server import make_server, serve

__all__ = ["Client", "ModelRepository", "make_server", "serve"]
