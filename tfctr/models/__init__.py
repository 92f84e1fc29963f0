"""Model builders registered by name: ``tfctr.models.build("dcnv2", spec, **hp)``."""

from tfctr.models import baselines, ensemble, fusion, students, teachers  # noqa: F401  (registers the models)
from tfctr.models.inputs import logit_model, model_inputs
from tfctr.models.registry import (
    available,
    build,
    canonical_hyper_parameters,
    hyper_parameters,
    register,
    training_defaults,
)

__all__ = ["available", "build", "canonical_hyper_parameters", "hyper_parameters", "logit_model", "model_inputs",
           "register", "training_defaults"]
