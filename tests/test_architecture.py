"""The package's data flows one way: features → data → layers → models → runs → training → export → serving.

Read from the source with ``ast`` (lazy imports inside functions included): no module imports one of a later
stage, and the module import graph has no cycle."""

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE_DIRS = {"tfctr": ROOT / "tfctr", "tfctr.export": ROOT / "export", "tfctr.serving": ROOT / "serving"}
# the stage of a module is that of its longest matching prefix
STAGES = {
    "tfctr._quiet": 0, "tfctr._hints": 0, "tfctr._version": 0, "tfctr.defaults": 0, "tfctr.utils": 0,
    "tfctr.metrics": 0, "tfctr.hardware": 0,
    "tfctr.features": 1, "tfctr.data": 2, "tfctr.layers": 3, "tfctr.models": 4, "tfctr.runs": 5,
    "tfctr.training": 6, "tfctr.export": 7, "tfctr.serving": 8,
    # the front doors, which may use everything: the package itself, plots, the demo and the command line
    "tfctr": 9, "tfctr.plots": 9, "tfctr.demo": 9, "tfctr.cli": 9, "tfctr_command": 9,
}


def _modules() -> dict:
    """module name -> source path, for tfctr/, export/, serving/ and the console command."""
    found = {"tfctr_command": ROOT / "tfctr_command.py"}
    for package, directory in PACKAGE_DIRS.items():
        for path in directory.rglob("*.py"):
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _stage(module: str) -> int:
    candidates = [prefix for prefix in STAGES if module == prefix or module.startswith(prefix + ".")]
    assert candidates, f"{module}: give it a stage in tests/test_architecture.py"
    return STAGES[max(candidates, key=len)]


def _imports(module: str, path: Path, known: set) -> set:
    """The tfctr modules ``module`` imports (``from a import b`` counts as a.b when that is a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known and name != module}


def _graph() -> dict:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_no_module_imports_a_later_stage():
    wrong = sorted(f"{module} (stage {_stage(module)}) imports {target} (stage {_stage(target)})"
                   for module, targets in _graph().items() for target in targets
                   if _stage(target) > _stage(module))
    assert not wrong, "\n".join(wrong)


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle of the design: only edges that do not
    # go from a package to a module inside it count
    edges = {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in graph.items()}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(" → ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_export_and_serving_do_not_depend_on_training():
    """A SavedModel is written from a run directory (``tfctr.runs``) or a model, never through the trainer."""
    wrong = sorted(f"{module} imports {target}" for module, targets in _graph().items()
                   if module.startswith(("tfctr.export", "tfctr.serving"))
                   for target in targets if target.startswith("tfctr.training"))
    assert not wrong, "\n".join(wrong)
