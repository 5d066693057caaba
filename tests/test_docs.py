"""The figures quoted in README.md, config/README.md and docs/ equal their generated sources."""

import re
import subprocess
import sys

import yaml

from debatch.settings import external_block

from conftest import REPO, docs_tool

docs = docs_tool()


def test_every_generated_block_matches_its_source():
    """`make docs-check`: a figure copied by hand, or left stale after `make bench` or
    `make demo-figures`, fails here; `make docs` refreshes the copies."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "docs.py"), "check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    blocks = [
        match
        for document in docs.documents()
        if document.exists()
        for match in docs.BLOCK.finditer(document.read_text())
    ]
    assert len(blocks) >= 5  # the docs do quote generated figures


def test_a_stale_or_missing_source_is_found():
    section = docs.section("# A\nx\n## B (2 s)\n| 1 |\n### C\n| 2 |\n## D\n| 3 |\n", "B")
    assert section == "| 1 |\n### C\n| 2 |\n"
    stale = (
        "<!-- generated from docs/demo/cells.md -->\n| typed by hand |\n<!-- end generated -->\n"
    )
    fresh, problems = docs.synced(stale, REPO / "README.md")
    assert problems == [] and "typed by hand" not in fresh
    assert fresh == docs.synced(fresh, REPO / "README.md")[0]
    missing = stale.replace("docs/demo/cells.md", "benchmarks/README.md#No such heading")
    assert docs.synced(missing, REPO / "README.md")[1]


CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# a dotted config key in backticks, e.g. `profiles.mad_epsilon` or `train.seeds: [0, 1, 2]`
# (file names such as `train.py` or `features.tsv` share the shape and are skipped)
DOTTED_KEY = re.compile(r"`((?:" + "|".join(CONFIG) + r")(?:\.\w+)+)(?=[`:\s=\[])")
FILE_SUFFIXES = (".py", ".tsv", ".csv", ".md", ".yaml", ".parquet", ".json", ".h5ad", ".pt")
YAML_BLOCK = re.compile(r"```ya?ml\n(.*?)```", re.S)
FREE_MAPS = {"channels", "patterns", "train.recipes"}  # keys the user names


def config_has(path: list[str]) -> bool:
    if path[0] == "external" and len(path) > 1:  # sources the user names, each a block's keys
        return len(path) == 2 or (len(path) == 3 and path[2] in external_block(path[1]).defaults)
    node = CONFIG
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def block_keys(block: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a YAML block, not descending into maps whose keys the user names."""
    paths = []
    for key, value in block.items():
        path = (*prefix, str(key))
        paths.append(path)
        if isinstance(value, dict) and ".".join(path) not in FREE_MAPS:
            paths += block_keys(value, path)
    return paths


def test_every_config_key_the_docs_name_exists():
    """A key renamed in config/config.yaml but not in the docs (or written wrong there) fails
    here: dotted keys in backticks and every key of a YAML example."""
    wrong = []
    for document in docs.documents():
        text = document.read_text()
        for match in DOTTED_KEY.finditer(text):
            key = match.group(1)
            if not key.endswith(FILE_SUFFIXES) and not config_has(key.split(".")):
                wrong.append(f"{document.name}: `{key}`")
        for block in YAML_BLOCK.finditer(text):
            example = yaml.safe_load(block.group(1))
            if isinstance(example, dict):
                wrong += [
                    f"{document.name}: {'.'.join(path)} (YAML example)"
                    for path in block_keys(example)
                    if not config_has(list(path))
                ]
    assert not wrong, wrong


def test_a_key_the_config_lacks_is_found():
    assert config_has(["profiles", "mad_epsilon"]) and not config_has(["report", "reference"])
    example = {"train": {"recipes": {"mine": {"scaling": "plate"}}, "seed": 1}}
    assert [p for p in block_keys(example) if not config_has(list(p))] == [("train", "seed")]
