"""Model registry: ``build(name, spec, **hyper_parameters)`` for every model registered by a short name."""

import inspect
import json
import warnings

_BUILDERS = {}
_TRAINING = {}
# former names of hyper-parameters: one name per idea across the zoo (the number of interaction layers is
# num_layers; OptFusion keeps num_levels, its unit being a level of one cross and one MLP layer; the kinds of
# a mixture's experts are expert_kinds, as SparseMoE stores them, whose ``experts`` are the built layers); the former
# names are still accepted, with a DeprecationWarning, for one release
RENAMED = {"num_cross_layers": "num_layers", "attention_layers": "num_layers", "pin_layers": "num_layers",
           "experts": "expert_kinds"}


def register(name: str, **training):
    """Decorator registering a builder ``fn(spec, **hp) -> tf.keras.Model`` under ``name``; ``training``: the
    model's recommended training arguments where they differ from ``tfctr.training.train``'s (e.g.
    ``learning_rate``), returned by ``training_defaults(name)``."""

    def wrap(fn):
        if name in _BUILDERS:
            raise ValueError(f"model '{name}' is already registered")
        _BUILDERS[name] = fn
        _TRAINING[name] = dict(training)
        return fn

    return wrap


def training_defaults(name: str) -> dict:
    """The training arguments model ``name`` recommends over ``train``'s own defaults (may be empty)."""
    _builder(name)
    return dict(_TRAINING[name])


def available() -> list[str]:
    """Names of all registered models."""
    return sorted(_BUILDERS)


def hyper_parameters(name: str) -> dict:
    """The hyper-parameters of model ``name`` with their defaults."""
    params = inspect.signature(_builder(name)).parameters
    return {k: p.default for k, p in params.items() if k != "spec"}


def _builder(name: str):
    if name not in _BUILDERS:
        raise KeyError(f"unknown model '{name}'; registered models are {available()}")
    return _BUILDERS[name]


def canonical_hyper_parameters(name: str, hp: dict) -> dict:
    """``hp`` with former names (``RENAMED``) replaced by the current ones of model ``name`` (warning once each);
    TypeError when both names are given."""
    accepted = hyper_parameters(name)
    out = {}
    for key, value in hp.items():
        current = RENAMED.get(key)
        if key not in accepted and current in accepted:
            if current in hp:
                raise TypeError(f"model '{name}': give {current} or its former name {key}, not both")
            warnings.warn(f"model '{name}': {key} is now called {current}", DeprecationWarning, stacklevel=3)
            key = current
        out[key] = value
    return out


def build(name: str, spec, **hp):
    """Builds the uncompiled functional model ``name`` for a fitted FeatureSpec.

    Its output is the click probability (layer ``"probability"``); the pre-sigmoid layer is ``"logit"``. The
    model's ``tfctr_card`` (JSON text) records its name and hyper-parameters for the exported model card.
    """
    spec.require_fitted()
    hp = canonical_hyper_parameters(name, hp)
    accepted = hyper_parameters(name)
    unknown = sorted(set(hp) - set(accepted))
    if unknown:
        raise TypeError(f"model '{name}' has no hyper-parameters {unknown}; it accepts {sorted(accepted)}")
    model = _builder(name)(spec, **hp)
    # what export_saved_model writes into model_card.json for a model exported straight from Python
    model.tfctr_card = json.dumps({"model": name, "hyper_parameters": {**accepted, **hp}}, default=list)
    return model
