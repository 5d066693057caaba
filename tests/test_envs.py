"""The pip spec the Makefile installs and the conda YAML for conda users pin the same packages,
and the package declares what its code imports."""

import ast
import importlib.metadata
import re
import sys
import tomllib

import yaml

from conftest import REPO


def pins(lines):
    return {
        line.strip().lower() for line in lines if line.strip() and not line.strip().startswith("#")
    }


def test_conda_yaml_matches_requirements():
    requirements = pins((REPO / "workflow" / "envs" / "requirements.txt").read_text().splitlines())
    conda = yaml.safe_load((REPO / "workflow" / "envs" / "debatch.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    assert pins(pip_section) == requirements
    assert any(str(dep).startswith("python=3.11") for dep in conda["dependencies"])


def test_torch_pinned_to_the_cpu_wheel_version():
    assert "torch==2.13.0" in pins(
        (REPO / "workflow" / "envs" / "requirements.txt").read_text().splitlines()
    )


# installed with --no-deps from their own requirement files, whose comments say why (a declared
# cap that debatch's pins break): declared, pip's resolver would refuse the environment
NO_DEPS_INSTALLS = {"anndata", "cellpose"}
# functions that import the module named by their first argument (a string)
IMPORTERS = {"import_module", "import_with_numba_cache"}


def normalised(distribution: str) -> str:
    """A distribution's name as pip compares them (PEP 503: cp_measure is cp-measure)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def imported_packages(folder) -> set[str]:
    """Top-level names of the modules that the Python files under ``folder`` import, by
    statement or by name (``import_with_numba_cache("umap")``)."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) in IMPORTERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value.split(".")[0])
    return names


def test_every_package_the_library_imports_is_a_declared_dependency():
    """Installing the package installs what src/debatch imports, but for NO_DEPS_INSTALLS
    (cp-measure was once pinned only in workflow/envs: its features stage failed on import
    elsewhere)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {
        normalised(re.split(r"[<>=!~;\[ ]", dependency)[0])
        for dependency in project["dependencies"]
    }
    distributions = importlib.metadata.packages_distributions()
    third_party = imported_packages(REPO / "src" / "debatch") - set(sys.stdlib_module_names)
    third_party -= {"debatch"} | NO_DEPS_INSTALLS
    not_installed = sorted(name for name in third_party if name not in distributions)
    assert not not_installed, f"imported but not installed here: {not_installed}"
    undeclared = {
        name: distributions[name]
        for name in third_party
        if not {normalised(d) for d in distributions[name]} & declared
    }
    assert not undeclared, undeclared
