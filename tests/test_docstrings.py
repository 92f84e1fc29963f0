"""Every tfctr module, every public name in a module's ``__all__`` and every public method or property of a
public class has a docstring (Keras hooks, documented by Keras, excepted)."""

import importlib
import inspect
import pkgutil

import tfctr

KERAS_HOOKS = {"call", "build", "get_config", "from_config", "compute_output_shape", "train_step", "test_step",
               "predict_step"}


def _doc(member) -> str:
    member = getattr(member, "__func__", member)  # classmethod / staticmethod
    return (getattr(member, "__doc__", None) or "").strip()


def _undocumented_members(cls) -> list[str]:
    names = []
    for name, member in vars(cls).items():
        if name.startswith("_") or name.startswith("on_") or name in KERAS_HOOKS:
            continue
        if (inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod))) \
                and not _doc(member):
            names.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    return names


def test_public_api_is_documented():
    modules = ["tfctr"] + [m.name for m in pkgutil.walk_packages(tfctr.__path__, "tfctr.")]
    missing = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        if not _doc(module):
            missing.append(f"{module_name} (module)")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not _doc(obj):
                missing.append(f"{module_name}.{name}")
            if inspect.isclass(obj) and obj.__module__.startswith("tfctr"):
                missing += _undocumented_members(obj)
    assert len(modules) > 30
    assert not sorted(set(missing)), sorted(set(missing))
