"""The library's shape: files short enough to read whole, and imports that run only down its
layers (a package may use the ones below it and its own layer, never one above), with no cycle;
compiled functions that call no compiled function of another file (numba's cache)."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src"
MAX_LINES = 500
# Each package's layer: settings at the bottom, the validation harness and the workflow's glue
# at the top.
LAYERS = [
    {"settings"},
    {"core"},
    {"ingest", "illum", "segment", "crops", "profiles", "features", "evaluate"},
    {"demo", "cnn", "report"},
    {"validate", "pipeline"},
]
LAYER = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The debatch modules ``path`` imports, anywhere in it (a lazy import is still a use)."""
    own = module_name(path).split(".")
    package = own if path.name == "__init__.py" else own[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, *([node.module] if node.module else [])]))
    return {name for name in names if name.split(".")[0] == "debatch"}


def modules() -> dict[str, set[str]]:
    return {module_name(p): imported(p) for p in sorted((SRC / "debatch").rglob("*.py"))}


def package(module: str) -> str | None:
    """The stage package of a module (debatch.segment.qc -> segment); None for debatch itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_file_is_too_long_to_read_whole():
    long = {
        str(path.relative_to(SRC)): n
        for path in (SRC / "debatch").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_package_has_a_layer():
    packages = {package(m) for m in modules()} - {None}
    assert packages <= set(LAYER), sorted(packages - set(LAYER))


def test_imports_run_down_the_layers_only():
    upward = sorted(
        f"{module} -> {name}"
        for module, names in modules().items()
        for name in names
        if package(module) and package(name) and LAYER[package(name)] > LAYER[package(module)]
    )
    assert upward == []


@pytest.mark.parametrize("level", ["module", "package"])
def test_imports_have_no_cycle(level):
    graph: dict[str, set[str]] = {}
    for module, names in modules().items():
        if level == "module":
            graph.setdefault(module, set()).update(n for n in names if n != module)
        elif package(module):
            graph.setdefault(package(module), set()).update(
                package(n) for n in names if package(n) not in (None, package(module))
            )
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


# packages whose __init__ re-exports the names of their modules: __all__ holds those names
REEXPORTING = {"settings", "pipeline"}


def init_of(folder: Path) -> tuple[str, list[str] | None]:
    """A package __init__'s docstring and its __all__ (None when it has none), read, not run."""
    tree = ast.parse((folder / "__init__.py").read_text())
    names = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            names = ast.literal_eval(node.value)
    return ast.get_docstring(tree) or "", names


@pytest.mark.parametrize(
    "folder",
    sorted(p.parent for p in (SRC / "debatch").glob("*/__init__.py")),
    ids=lambda folder: folder.name,
)
def test_package_init_names_its_modules(folder):
    doc, names = init_of(folder)
    public = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert names is not None, f"{folder.name}/__init__.py has no __all__"
    assert {m for m in public if f"``{m}``" not in doc and f"({m})" not in doc} == set()
    if folder.name not in REEXPORTING:
        assert sorted(names) == sorted(public)


def test_debatch_init_names_its_packages():
    doc, names = init_of(SRC / "debatch")
    packages = {p.parent.name for p in (SRC / "debatch").glob("*/__init__.py")}
    assert sorted(names) == sorted(packages)
    assert {p for p in packages if f"``{p}``" not in doc} == set()


def _is_compiled(function: ast.FunctionDef) -> bool:
    """Decorated with numba's njit or jit (with or without arguments)."""
    targets = (d.func if isinstance(d, ast.Call) else d for d in function.decorator_list)
    return any(ast.unparse(t) in {"numba.njit", "njit", "numba.jit", "jit"} for t in targets)


def compiled_calls_across_files(root: Path) -> list[str]:
    """Calls from a numba-compiled function to a compiled function of another debatch module
    (imported by name, or as a module and called as ``module.function``)."""
    trees = {module_name(p): ast.parse(p.read_text()) for p in (root / "debatch").rglob("*.py")}
    compiled = {
        module: {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and _is_compiled(n)}
        for module, tree in trees.items()
    }
    found = []
    for module, tree in trees.items():
        aliases = {}  # a name in this module -> the debatch module or function it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("debatch"):
                aliases |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
        for function in tree.body:
            if not (isinstance(function, ast.FunctionDef) and _is_compiled(function)):
                continue
            for call in ast.walk(function):
                if isinstance(call, ast.Call):
                    head, *rest = ast.unparse(call.func).split(".")
                    target = ".".join([aliases.get(head, head), *rest])
                    source, _, name = target.rpartition(".")
                    if source != module and name in compiled.get(source, ()):
                        found.append(f"{module}.{function.name} calls {target}")
    return found


def test_compiled_functions_call_no_compiled_function_of_another_file():
    """numba's on-disk cache of a function is renewed when its own file changes, not when a
    compiled function it calls in another file does: such a call would keep running the old
    code after an edit (or a `git pull`) until the cache is cleared. So compiled functions call
    only compiled functions of their own module."""
    assert compiled_calls_across_files(SRC) == []
