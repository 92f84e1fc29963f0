"""What a server serves, as TF Serving's model configuration: each model's name, base path, version policy and
version labels, from the command line or from a ``--model_config_file`` in TF Serving's text format::

    model_config_list {
      config {
        name: "ctr"
        base_path: "/models/ctr"
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 3 versions: 4 } }
        version_labels { key: "stable" value: 3 }
        version_labels { key: "canary" value: 4 }
      }
    }

Version policies (``model_version_policy``): ``latest { num_versions: N }`` serves the N newest versions (default:
the newest one), ``all {}`` every version, ``specific { versions: ... }`` the listed ones. A label names one
served version; requests may address a version by number or by label.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

POLICIES = ("latest", "all", "specific")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: ``base_path`` holds its integer version directories.

    Args:
        policy: ``"latest"`` (the ``num_versions`` newest), ``"all"`` or ``"specific"`` (``versions``).
        labels: version label → version number (e.g. ``{"stable": 3, "canary": 4}``).
    """

    name: str
    base_path: Path
    policy: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    labels: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"model {self.name!r}: version policy must be one of {list(POLICIES)}, got "
                             f"{self.policy!r}")
        if self.policy == "latest" and self.num_versions < 1:
            raise ValueError(f"model {self.name!r}: latest.num_versions must be at least 1, got {self.num_versions}")
        if self.policy == "specific" and not self.versions:
            raise ValueError(f"model {self.name!r}: a specific version policy lists at least one version")
        for label, version in self.labels.items():
            if self.policy == "specific" and version not in self.versions:
                raise ValueError(f"model {self.name!r}: label {label!r} points to version {version}, which the "
                                 f"policy does not serve (versions {list(self.versions)})")

    def wanted(self, on_disk: list[int]) -> list[int]:
        """The versions among ``on_disk`` (sorted) this policy serves."""
        if self.policy == "latest":
            return on_disk[-self.num_versions:]
        if self.policy == "all":
            return list(on_disk)
        return [v for v in on_disk if v in self.versions]


def read_model_config_file(path) -> list[ModelConfig]:
    """The models of a TF Serving ``--model_config_file`` (``ModelServerConfig`` in protobuf text format);
    relative base paths are taken from the file's directory. Errors name the file and what is wrong."""
    path = Path(path)
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as err:
        raise ValueError(f"{path}: not a TF Serving model config ({err})") from None
    if config.WhichOneof("config") != "model_config_list" or not config.model_config_list.config:
        raise ValueError(f"{path}: expected a model_config_list with at least one config")
    models = []
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise ValueError(f"{path}: every config needs a name and a base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {entry.name!r} has platform {entry.model_platform!r}; only "
                             "'tensorflow' SavedModels are served")
        policy = entry.model_version_policy
        kind = policy.WhichOneof("policy_choice") or "latest"
        base = Path(entry.base_path)
        models.append(ModelConfig(
            name=entry.name, base_path=base if base.is_absolute() else path.parent / base, policy=kind,
            num_versions=(policy.latest.num_versions or 1) if kind == "latest" else 1,
            versions=tuple(sorted(policy.specific.versions)) if kind == "specific" else (),
            labels=dict(entry.version_labels)))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: model names must be unique, got {names}")
    return models
