"""Report: self-contained HTML (parsed), ranking order, and a real render in headless Chromium."""

import shutil
from html.parser import HTMLParser

import matplotlib.image
import pandas as pd
import pytest

from debatch.evaluate.diagnostics import compute_metrics
from debatch.report.figures import plot_metric_bars, plot_pca
from debatch.report.html import ranking_table, render

from conftest import docs_tool
from test_diagnostics import wells_table

CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)


class Page(HTMLParser):
    """Tables (id -> rows of cell texts), image sources and every external reference."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.images, self.external = {}, [], []
        self._table, self._row, self._cell = None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of one method x 2 "corrections" that differ in how well batches are mixed:
    metric bars, 2 PCAs, 1 QC figure."""
    folder = tmp_path_factory.mktemp("report")
    entries = []
    for correction, shift in [("none", 6.0), ("harmony", 0.0)]:
        wells = wells_table(batch_shift=shift)
        metrics = compute_metrics(wells, {"map_null_size": 500}, holdout_batches=["b2"])
        figure = folder / f"pca_{correction}.png"
        plot_pca(wells, correction, figure)
        entries.append(
            {"method": "erm", "correction": correction, "metrics": metrics, "figure": str(figure)}
        )
    plot_metric_bars(entries, "erm", folder / "bars.png")
    log = folder / "training_log.tsv"
    pd.DataFrame(
        {
            "epoch": [1, 2],
            "loss": [2.0, 1.0],
            "train_acc": [0.3, 0.6],
            "holdout_acc": [0.2, 0.5],
            "crops_per_s": [900.0, 1000.0],
            "seconds": [1.0, 1.0],
        }
    ).to_csv(log, sep="\t", index=False)
    text = render(
        entries,
        "My <screen>",
        [("cells per well", str(folder / "bars.png"))],
        {"erm": str(log)},
        {"erm": str(folder / "bars.png")},
    )
    (folder / "index.html").write_text(text)
    return folder, entries, text


def test_ranking_puts_the_better_correction_first(report):
    _, entries, _ = report
    table = ranking_table(entries)
    assert table["correction"].tolist() == ["harmony", "none"]
    assert table["overall"].is_monotonic_decreasing and table["rank"].tolist() == [1, 2]


def test_html_is_self_contained_with_every_table_and_figure(report):
    _, _, text = report
    page = Page(text)
    assert page.external == []  # nothing to fetch: opens from disk or a mail attachment
    assert len(page.images) == 4 and all(
        src.startswith("data:image/png;base64,") for src in page.images
    )
    ranking = page.tables["ranking"]
    header = ranking[0]
    assert header[:6] == ["rank", "method", "correction", "overall", "batch", "bio"]
    assert [row[2] for row in ranking[1:]] == ["harmony", "none"]
    assert float(ranking[1][3]) > float(ranking[2][3])
    values = dict(zip(page.tables["values"][0], page.tables["values"][1]))
    assert values["correction"] == "none"  # batches perfectly readable without correction
    assert values["batch acc"] == "1.000" and values["chance"] == "0.333"
    assert page.tables["training"][1][3] == "0.500"
    generalisation = page.tables["generalisation"][0]  # held-out batch b2 given, no ground truth
    assert "held-out kNN acc" in generalisation and not any("truth" in c for c in generalisation)
    assert "My &lt;screen&gt;" in text  # escaped, never raw markup from config


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(report, tmp_path):
    """The page renders (the same screenshot command `make demo-figures` uses for the docs)."""
    folder, _, _ = report
    screenshot = tmp_path / "report.png"
    docs_tool().screenshot(folder / "index.html", screenshot, width=1200, height=2000)
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (2000, 1200)
    ink = (pixels[..., :3].mean(axis=2) < 0.9).mean()  # text, table lines, figures
    colour = (pixels[..., :3].std(axis=2) > 0.1).mean()  # only the embedded figures are coloured
    assert ink > 0.02 and colour > 0.005


def test_single_batch_screen_renders_with_n_a(tmp_path):
    wells = wells_table(n_batches=1)
    metrics = compute_metrics(wells, {"map_null_size": 500})
    plot_pca(wells, "one batch", tmp_path / "pca.png")
    entries = [
        {"method": "erm", "correction": c, "metrics": metrics, "figure": str(tmp_path / "pca.png")}
        for c in ("none", "harmony")
    ]
    plot_metric_bars(entries, "erm", tmp_path / "bars.png")
    page = Page(render(entries, "one batch", method_figures={"erm": str(tmp_path / "bars.png")}))
    ranking = dict(zip(page.tables["ranking"][0], page.tables["ranking"][1]))
    assert ranking["overall"] == ranking["batch"] == ranking["iLISI"] == "n/a"
    assert float(ranking["bio"]) > 0.5
