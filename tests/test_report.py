"""Report: self-contained HTML (parsed), ranking order, and a real render in headless Chromium."""

import shutil
from html.parser import HTMLParser

import matplotlib.image
import pandas as pd
import pytest

from debatch.evaluate.diagnostics import compute_metrics
from debatch.report.figures import plot_metric_bars, plot_pca
from debatch.report.html import ranking_table, render

from builders import wells_table
from conftest import docs_tool

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
    """A report of erm and abra x 2 "corrections" that differ in how well batches are mixed,
    2 seeds each: metric bars, PCAs, 1 QC figure."""
    folder = tmp_path_factory.mktemp("report")
    entries = []
    for method in ("erm", "abra"):
        for seed in (0, 1):
            for correction, shift in [("none", 6.0), ("harmony", 0.0)]:
                wells = wells_table(batch_shift=shift, seed=seed + 2 * (method == "abra"))
                metrics = compute_metrics(wells, {"map_null_size": 500}, holdout_batches=["b2"])
                metrics.update(
                    method=method, seed=seed, source=f"{method}_seed{seed}", correction=correction
                )
                figure = folder / f"pca_{method}{seed}_{correction}.png"
                plot_pca(wells, correction, figure)
                entries.append(
                    {"correction": correction, "metrics": metrics, "figure": str(figure)}
                )
    plot_metric_bars(entries[:2], "erm", folder / "bars.png")
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
        {"title": "My <screen>", "bootstrap": 200},
        [("cells per well", str(folder / "bars.png"))],
        {"erm_seed0": str(log)},
        {"erm_seed0": str(folder / "bars.png")},
    )
    (folder / "index.html").write_text(text)
    return folder, entries, text


def test_ranking_puts_the_better_correction_first(report):
    _, entries, _ = report
    table = ranking_table(entries, {"bootstrap": 200})
    assert table["correction"].tolist()[:2] == ["harmony", "harmony"]
    assert table["overall"].is_monotonic_decreasing and table["rank"].tolist() == [1, 2, 3, 4]
    assert (table["seeds"] == 2).all() and table["overall sd"].notna().all()
    abra = table[table["method"] == "abra"]
    assert abra["vs erm low"].notna().all()  # paired intervals against the reference


def test_html_is_self_contained_with_every_table_and_figure(report):
    _, _, text = report
    page = Page(text)
    assert page.external == []  # nothing to fetch: opens from disk or a mail attachment
    # PCAs of each method's first seed only (2 methods x 2 corrections), metric bars, QC
    assert len(page.images) == 4 + 2 and all(
        src.startswith("data:image/png;base64,") for src in page.images
    )
    assert "this seed's are in diagnostics/abra_seed1/" in text
    ranking = page.tables["ranking"]
    header = ranking[0]
    assert header[:7] == [
        "rank",
        "method",
        "correction",
        "seeds",
        "overall",
        "activity",
        "generalisation",
    ]
    assert [row[2] for row in ranking[1:3]] == ["harmony", "harmony"]
    assert "±" in ranking[1][4] and "[" in ranking[-1][-1] or ranking[-1][-1] == "n/a"
    assert float(ranking[1][4].split()[0]) > float(ranking[-1][4].split()[0])
    values = dict(zip(page.tables["values"][0], page.tables["values"][1]))
    assert values["correction"] == "none"  # batches perfectly readable without correction
    assert values["batch acc"] == "1.000" and values["chance"] == "0.333"
    assert page.tables["training"][1][3] == "0.500"
    generalisation = page.tables["generalisation"][0]  # held-out batch b2 given, no ground truth
    assert "held-out kNN acc" in generalisation and not any("truth" in c for c in generalisation)
    assert "My &lt;screen&gt;" in text  # escaped, never raw markup from config
    assert "class='verdict'>Provisional" in text.split("<h2>")[0]  # 2 seeds; before any section


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
        {
            "correction": c,
            "figure": str(tmp_path / "pca.png"),
            "metrics": {
                **metrics,
                "method": "erm",
                "seed": 0,
                "source": "erm_seed0",
                "correction": c,
            },
        }
        for c in ("none", "harmony")
    ]
    plot_metric_bars(entries, "erm", tmp_path / "bars.png")
    page = Page(
        render(
            entries,
            {"title": "one batch"},
            source_figures={"erm_seed0": str(tmp_path / "bars.png")},
        )
    )
    ranking = dict(zip(page.tables["ranking"][0], page.tables["ranking"][1]))
    assert ranking["overall"] == ranking["batch"] == "n/a"
    assert float(ranking["bio"]) > 0.5


def test_plates_left_out_of_the_profiles_are_named_first(report):
    _, entries, text = report
    assert "Left out of every profile" not in text
    plates = sorted({p for e in entries for p in e["metrics"]["plates"]})
    page = render(entries, {"bootstrap": 200}, plates=[*plates, "P9"])
    assert "Left out of every profile: plate(s) P9." in page
    assert page.index("Left out") < page.index("class='verdict'")


def test_qc_warnings_come_before_the_ranking(report):
    """A QC failure concentrated in one treatment is said at the top, where it is read."""
    _, entries, _ = report
    warning = "QC failed 5 of the 8 sites of treatment cpd03: QC may be removing its phenotype"
    page = render(entries, {"bootstrap": 200}, warnings=[warning])
    assert page.index("QC may be removing") < page.index("class='verdict'")


def test_first_paragraph_says_what_ranks_first_and_how_much_batch_is_left(report):
    """The headline's numbers are the ranking table's: the first row's name (provisional with
    2 seeds), its batch classifier accuracy and chance, the same method without correction,
    and the treatments it retrieves; ranking cells are coloured worst (orange) to best
    (blue), a scale readers without red-green vision read the same way."""
    _, entries, text = report
    table = ranking_table(entries, {"bootstrap": 200})
    best = table.loc[0]
    headline = text.split("class='verdict'>")[1].split("</p>")[0]
    assert f"With these seeds {best['method']} + {best['correction']} ranks first" in headline
    assert f"{best['batch acc']:.0%} of the time (chance {best['chance']:.0%})" in headline
    raw = table[(table["method"] == best["method"]) & (table["correction"] == "none")].iloc[0]
    assert f"without correction, {raw['batch acc']:.0%}" in headline
    assert "Treatments retrieved:" in headline
    ranking = text.split("<table id='ranking'>")[1].split("</table>")[0]
    first_row = ranking.split("<tr>")[2]
    assert "background:#92c5de" in first_row  # the best overall is full blue


def test_replicate_pairs_and_non_replicates_are_split_by_treatment():
    from debatch.evaluate.metrics import replicate_correlations

    wells = pd.DataFrame(
        {
            "Metadata_Treatment": ["DMSO", "DMSO", "a", "a", "b"],
            "Metadata_Role": ["negcon", "negcon", "trt", "trt", "trt"],
            "f1": [0.0, 0.1, 1.0, 1.1, -1.0],
            "f2": [1.0, 0.9, 0.0, 0.1, 2.0],
            "f3": [0.5, 0.4, 2.0, 1.9, 0.0],
        }
    )
    replicate, other = replicate_correlations(wells)
    assert len(replicate) == 1 and replicate[0] > 0.9  # a-a only: negcon pairs are not replicates
    assert len(other) == 10 - 2  # every pair across treatments


def test_flagged_cells_are_marked_and_never_coloured_as_good():
    """A batch accuracy below chance would be the 'best' (lowest) value: flagged, it is marked
    and shown as the worst, and an accuracy at chance counts as good as any lower one."""
    from debatch.report.html import WORST, score_shades, shade

    table = pd.DataFrame(
        {
            "overall": [0.6, 0.5, 0.4],
            "generalisation": [0.5, 0.4, 0.3],
            "batch": [0.9, 0.7, 0.6],
            "bio": [0.5, 0.5, 0.4],
            "activity": [0.5, 0.6, 0.4],
            "held-out kNN acc": [0.5, 0.4, 0.3],
            "held-out mAP": [0.5, 0.4, 0.3],
            "batch acc": [0.05, 0.25, 0.7],
            "chance": [0.25, 0.25, 0.25],
            "flags": ["batch acc below chance", "", ""],
        }
    )
    colours = score_shades(table)["batch acc"]
    assert colours[0] == shade(0.0) == "#" + "".join(f"{c:02x}" for c in WORST)
    assert colours[1] == shade(1.0)  # at chance: the best a batch classifier can do
