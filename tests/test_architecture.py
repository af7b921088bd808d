"""The import rules of docs/architecture.md, checked on the source: every `import` statement of sim/,
calibrate/ and kernels/ (at module level or inside functions) is parsed and held against the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sim", "calibrate", "kernels")

# sim's layers, top first: a module may import its own layer and the layers below it, never one above.
# The most specific prefix names a module's layer. Keep in step with docs/architecture.md.
SIM_LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry", ("sim.cli", "sim.cli_support", "sim.plan.cli", "sim.validate.cli")),
    ("report", ("sim.report", "sim.validate.report")),
    ("study", ("sim.sweep", "sim.risk", "sim.plan", "sim.validate", "sim.executor")),
    ("live", ("sim.live",)),
    ("run", ("sim.run", "sim.document")),
    ("config", ("sim.scenario", "sim.scenario_studies", "sim.loader", "sim.resolve", "sim.schema_doc")),
    ("traffic", ("sim.traffic",)),
    ("fleet", ("sim.fleet",)),
    ("replica", ("sim.replica",)),
    ("step cost", ("sim.runtime", "sim.cost")),
    ("metrics", ("sim.metrics",)),
    (
        "foundation",
        (
            "sim",
            "sim.errors",
            "sim.strict",
            "sim.registry",
            "sim.architecture",
            "sim.hardware",
            "sim.hardware_kinds",
            "sim.profile",
            "sim.catalog",
        ),
    ),
]
RANK = {prefix: rank for rank, (_, prefixes) in enumerate(SIM_LAYERS) for prefix in prefixes}


def layer_of(module: str) -> tuple[int, str]:
    """(rank, name) of a sim module's layer: 0 is the top."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in RANK:
            return RANK[prefix], SIM_LAYERS[RANK[prefix]][0]
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py (and docs/architecture.md)")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (imports for annotations only never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.If)
                and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING"
            ):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of our packages in the file that runs
    (at module level or inside functions; not the ones for type checkers only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            taken = [alias.name for alias in node.names]
            # `from sim.report import files` imports the module sim.report.files
            submodules = [f"{target}.{t}" for t in taken if f"{target}.{t}" in MODULES]
            out += [(sub, [], node.lineno) for sub in submodules]
            rest = [t for t in taken if f"{target}.{t}" not in MODULES]
            if rest or not submodules:
                out.append((target, rest, node.lineno))
    return [(target, names, line) for target, names, line in out if target.split(".")[0] in PACKAGES]


EDGES = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_every_sim_module_has_a_layer():
    for name in MODULES:
        if name.startswith("sim"):
            layer_of(name)


def test_sim_layers_point_down_only():
    upward = []
    for name, edges in EDGES.items():
        if not name.startswith("sim"):
            continue
        rank, layer = layer_of(name)
        for target, _, line in edges:
            if target.startswith("sim"):
                target_rank, target_layer = layer_of(target)
                if target_rank < rank:
                    upward.append(f"{name}:{line} ({layer}) imports {target} ({target_layer})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    "package, forbidden",
    [("sim", ("calibrate", "kernels")), ("kernels", ("sim", "calibrate"))],
)
def test_packages_that_must_not_import_each_other(package, forbidden):
    bad = [
        f"{name}:{line} imports {target}"
        for name, edges in EDGES.items()
        if name.split(".")[0] == package
        for target, _, line in edges
        if target.split(".")[0] in forbidden
    ]
    assert not bad, "\n".join(bad)


def test_no_private_name_is_imported_across_packages():
    bad = []
    for name, edges in EDGES.items():
        package = name.rpartition(".")[0] if MODULES[name].name != "__init__.py" else name
        for target, names, line in edges:
            target_package = target.rpartition(".")[0] if target in MODULES else target
            for taken in names:
                private = taken.startswith("_") and not (taken.startswith("__") and taken.endswith("__"))
                if private and target_package != package:
                    bad.append(f"{name}:{line} takes {taken} from {target}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Between modules of our packages, function-level imports included (a cycle hidden in a function is
    still a cycle between two modules that each need the other)."""
    graph = {name: {t for t, _, _ in edges if t in MODULES and t != name} for name, edges in EDGES.items()}
    cycles = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
