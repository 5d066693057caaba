"""The pip spec the Makefile installs and the conda YAML for conda users pin the same packages."""

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
