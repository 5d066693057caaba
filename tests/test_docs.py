"""The figures quoted in README.md, config/README.md and docs/ equal their generated sources."""

import subprocess
import sys

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
