"""The shape of the package: imports run one way (the layers in the README), no cycles, no private imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "featuremaps"


def _layers() -> dict[str, int]:
    """Component -> level (0 = the top) from the README's layer list."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- layers -->\s*```\n(.*?)```\s*<!-- /layers -->", text, re.S)
    assert block, "the README's architecture section lost its layer list"
    levels = {}
    for level, line in enumerate(block.group(1).strip().splitlines()):
        for name in line.split(","):
            levels[name.strip()] = level
    return levels


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(imported module, names taken from it, line)`` for every featuremaps import, lazy ones included."""
    tree = ast.parse(path.read_text())
    found = []
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("featuremaps")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
            if module.startswith("featuremaps"):
                found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in SRC.rglob("*.py")}


def _resolve(module: str, names: list[str], modules: dict[str, Path]) -> list[str]:
    """The modules an import reaches: ``from featuremaps.models import info`` reaches the submodule."""
    reached = [f"{module}.{name}" for name in names if f"{module}.{name}" in modules]
    return reached or ([module] if module in modules else [])


def test_imports_run_down_the_layers():
    levels = _layers()
    components = {_component(name) for name in _modules() if _component(name)}
    assert components <= set(levels), f"components missing from the README's layer list: {components - set(levels)}"
    upward = []
    for name, path in _modules().items():
        if name == "featuremaps":
            continue  # the package face exports everything
        own = _component(name)
        for module, _, line in _imports(path):
            other = _component(module)
            if other and other != own and levels[other] <= levels[own]:
                upward.append(f"{path.relative_to(SRC)}:{line} ({own}) imports {module} ({other})")
    assert not upward, "imports that do not go down:\n" + "\n".join(upward)


def test_no_import_cycles():
    modules = _modules()
    graph = {name: sorted({target for module, names, _ in _imports(path) for target in _resolve(module, names, modules)
                           if target != name and not target == "featuremaps"})
             for name, path in modules.items() if name != "featuremaps"}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in graph.get(node, []):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, path in _modules().items():
        for module, names, line in _imports(path):
            if module != name:
                private += [f"{path.relative_to(SRC)}:{line}: {module}.{n}" for n in names
                            if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]  # dunders are public
    assert not private, private


def test_the_readme_table_of_units_is_the_package():
    """The README's architecture table names every top-level unit, and for each folder exactly its modules:
    a newcomer who finds a concept there finds the file."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- units -->\s*(.*?)<!-- /units -->", text, re.S)
    assert block, "the README's architecture section lost its table of units"
    rows = {}
    for line in block.group(1).strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = sorted(m.strip() for m in cells[2].split(",") if m.strip())
    actual = {}
    for path in SRC.iterdir():
        if path.suffix == ".py":
            actual[path.name] = []
        elif path.is_dir() and not path.name.startswith("__"):
            actual[f"{path.name}/"] = sorted(p.stem for p in path.glob("*.py") if p.name != "__init__.py")
    assert set(rows) == set(actual), (f"in the package, not the table: {sorted(set(actual) - set(rows))}; "
                                      f"in the table, not the package: {sorted(set(rows) - set(actual))}")
    wrong = {unit: (rows[unit], modules) for unit, modules in actual.items() if rows[unit] != modules}
    assert not wrong, f"the table's modules differ from the folders' (table, package): {wrong}"


def structure(root: Path = ROOT) -> dict[str, int]:
    """Top-level units (modules and folders of the package), levels of the README's layer list, and import
    edges (a module importing from another top-level unit; and unit to unit): ``python
    tests/test_architecture.py [REPO]``."""
    src = root / "src" / "featuremaps"
    units = {p.stem for p in src.iterdir() if (p.suffix == ".py" and p.name != "__init__.py")
             or (p.is_dir() and any(p.glob("*.py")))}
    text = (root / "README.md").read_text()
    block = re.search(r"<!-- layers -->\s*```\n(.*?)```\s*<!-- /layers -->", text, re.S)
    edges, unit_edges = set(), set()
    for path in src.rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        own = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for module in modules:
                other = _component(module) if module.startswith("featuremaps.") else ""
                if other and other != own:
                    edges.add(("/".join(parts), other))
                    unit_edges.add((own, other))
    return {"top-level units": len(units), "levels": len(block.group(1).strip().splitlines()) if block else 0,
            "module-to-unit import edges": len(edges), "unit-to-unit import edges": len(unit_edges)}


if __name__ == "__main__":
    import sys

    print(structure(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
