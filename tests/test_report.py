"""Report: self-contained HTML (parsed), ranking order, files beside the page, a table of
contents, sorting in a real browser, and a real render in headless Chromium."""

import datetime
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from debatch.core.provenance import code_version
from debatch.evaluate.diagnostics import compute_metrics
from debatch.illum.plot import plot_functions
from debatch.report.figures import (
    cosine_distances,
    plot_cells_per_well,
    plot_metric_bars,
    plot_pca,
    plot_umap,
    umap_embedding,
    umap_figure,
)
from debatch.report.html import PlateQC, render, write_report
from debatch.report.tables import ranking_table
from debatch.segment.qc import COUNT, flag_sites
from debatch.segment.qc_figures import plot_heatmaps
from debatch.settings import SATURATION, SHARPNESS, TREATMENT

from builders import wells_table
from conftest import docs_tool

CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)
PLATES = [f"P{i}" for i in range(5)]
FAILED = {"P0": 1, "P1": 4, "P2": 0, "P3": 2, "P4": 0}  # empty sites per plate (of 8)
CAP = 2  # report.max_plate_figures of the fixture: fewer than its plates
MADE = datetime.datetime(2026, 12, 5, 9, 30, tzinfo=datetime.UTC)


class Page(HTMLParser):
    """Tables (id -> rows of cell texts), their classes, image sources, every external
    reference, links, the ids of section headings and the table of contents' links."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.classes, self.images, self.external = {}, {}, [], []
        self.links, self.ids, self.sections, self.toc, self.scripts = [], set(), [], [], []
        self._table, self._row, self._cell, self._nav = None, None, None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith(("data:", "#")):
                self.external.append(attrs[key])
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "h2" and "id" in attrs:
            self.sections.append(attrs["id"])
        if tag == "nav":
            self._nav = True
        if tag == "a" and "href" in attrs:
            (self.toc if self._nav else self.links).append(attrs["href"])
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
            self.classes[attrs.get("id")] = attrs.get("class", "")
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
        elif tag == "nav":
            self._nav = False


def plate_qc_inputs(folder):
    """Five plates of 8 sites, FAILED[plate] of them empty (failing QC's cell count), each
    plate's QC heatmaps and illumination picture, and every plate's cells per well."""
    rng = np.random.default_rng(0)
    rows = []
    for plate in PLATES:
        for site in range(8):
            rows.append(
                {
                    "Metadata_Plate": plate,
                    "Metadata_Batch": f"b{int(plate[1]) % 2}",
                    "Metadata_Well": f"A{site + 1:02d}",
                    "Metadata_Site": 1,
                    f"{SHARPNESS}_DNA": 0.3 * np.exp(rng.normal(0, 0.02)),
                    f"{SATURATION}_DNA": 0.01,
                    COUNT: 0 if site < FAILED[plate] else 30 - int(plate[1]),
                }
            )
    sites = flag_sites(pd.DataFrame(rows), "DNA")
    figures = {}
    grid = np.linspace(0.8, 1.2, 64)
    for plate in PLATES:
        heatmaps, illum = folder / f"heatmaps_{plate}.png", folder / f"illum_{plate}.png"
        plot_heatmaps(sites[sites["Metadata_Plate"] == plate], "DNA", f"plate {plate}", heatmaps)
        plot_functions({"DNA": np.outer(grid, grid)}, f"illumination, plate {plate}", illum)
        figures[plate] = {"heatmaps": str(heatmaps), "illum": str(illum)}
    cells = sites.loc[sites.index.repeat(sites[COUNT])]
    plot_cells_per_well(cells, folder / "cells_per_well.png")
    return PlateQC(sites, figures, str(folder / "cells_per_well.png"))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of erm and abra x 2 "corrections" that differ in how well batches are mixed,
    2 seeds each: metric bars, PCAs, UMAPs, and five plates' QC with figures for two."""
    folder = tmp_path_factory.mktemp("report")
    inputs = folder / "inputs"
    inputs.mkdir()
    entries, umaps = [], {}
    for method in ("erm", "abra"):
        for seed in (0, 1):
            profiles = {}
            for correction, shift in [("none", 6.0), ("harmony", 0.0)]:
                wells = wells_table(batch_shift=shift, seed=seed + 2 * (method == "abra"))
                profiles[correction] = wells
                metrics = compute_metrics(wells, {"map_null_size": 500}, holdout_batches=["b2"])
                metrics.update(
                    method=method, seed=seed, source=f"{method}_seed{seed}", correction=correction
                )
                figure = inputs / f"pca_{method}{seed}_{correction}.png"
                plot_pca(wells, correction, figure)
                entries.append(
                    {"correction": correction, "metrics": metrics, "figure": str(figure)}
                )
            umaps[f"{method}_seed{seed}"] = str(inputs / f"umap_{method}{seed}.png")
            plot_umap(profiles, f"{method}_seed{seed}", umaps[f"{method}_seed{seed}"], seed=0)
    plot_metric_bars(entries[:2], "erm", inputs / "bars.png")
    log = inputs / "training_log.tsv"
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
    card = inputs / "model.json"
    card.write_text(
        json.dumps(
            {
                "training_plates": ["p1", "p2"],
                "training_batches": ["b1", "b2"],
                "holdout_batches": ["b3"],
                "input_scaling": "plate",
                "trained_in": "/elsewhere/results/models/erm/seed0",
                "code": "0.1.0+abc",
            }
        )
    )
    params = {"title": "My <screen>", "bootstrap": 200, "max_plate_figures": CAP}
    index = write_report(
        folder / "report",
        entries,
        params,
        plate_qc=plate_qc_inputs(inputs),
        training_logs={"erm_seed0": str(log)},
        model_cards={"erm_seed0": str(card)},
        frozen=["erm_seed0"],
        source_figures={"erm_seed0": str(inputs / "bars.png")},
        umap_figures=umaps,
        config={"results": "results", "report": params, "train": {"methods": ["erm", "abra"]}},
        made=MADE,
    )
    return index.parent, entries, index.read_text()


def test_ranking_puts_the_better_correction_first(report):
    _, entries, _ = report
    table = ranking_table(entries, {"bootstrap": 200})
    assert table["correction"].tolist()[:2] == ["harmony", "harmony"]
    assert table["overall"].is_monotonic_decreasing and table["rank"].tolist() == [1, 2, 3, 4]
    assert (table["seeds"] == 2).all() and table["overall sd"].notna().all()
    abra = table[table["method"] == "abra"]
    assert abra["vs erm low"].notna().all()  # paired intervals against the reference


def test_html_is_self_contained_with_every_table_and_figure(report):
    folder, _, text = report
    page = Page(text)
    # nothing to fetch: every reference is a file written beside the page, no script file
    assert page.external and all(
        "://" not in ref and not ref.startswith("/") and (folder / ref).is_file()
        for ref in page.external
    )
    assert page.scripts == [{}]  # the inline sorting script only
    # PCAs of each method's first seed (2 methods x 2 corrections), metric bars, a UMAP per
    # method's first seed, the CAP worst plates' heatmaps and illumination
    assert len(page.images) == 4 + 1 + 2 + 2 * CAP and all(
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
    training = dict(zip(*page.tables["training"][:2]))
    assert training["held-out acc"] == "0.500" and training["model"] == "frozen"
    assert training["trained on"] == "2 plates of b1, b2" and training["held out"] == "b3"
    generalisation = page.tables["generalisation"][0]  # held-out batch b2 given, no ground truth
    assert "held-out kNN acc" in generalisation and not any("truth" in c for c in generalisation)
    assert "My &lt;screen&gt;" in text  # escaped, never raw markup from config
    assert "class='verdict'>Provisional" in text.split("<h2")[0]  # 2 seeds; before any section


def test_contents_link_every_section_and_the_page_says_what_made_it(report):
    """A table of contents with a link to every section (and none to a missing one); the code
    version, the date and the configuration on the page."""
    _, _, text = report
    page = Page(text)
    assert page.toc == [f"#{section}" for section in page.sections]
    assert {link.removeprefix("#") for link in page.toc + page.links if link[0] == "#"} <= page.ids
    for section in ("ranking", "hits", "umap", "qc", "config", "source-erm-seed0"):
        assert f"section-{section}" in page.sections
    provenance = text.split("id='provenance'>")[1].split("</p>")[0]
    assert f"debatch {code_version()} on 2026-12-05 09:30" in provenance
    assert code_version().startswith("0.") and "#section-config" in provenance
    config = text.split("<pre id='config-yaml'>")[1].split("</pre>")[0]
    assert "max_plate_figures: 2" in config and "- abra" in config
    assert "&lt;screen&gt;" in config  # the title, escaped


def test_ranking_and_hit_list_are_sortable_with_their_tsv_beside_the_page(report):
    """Both tables sort on a click and link a TSV beside the page that holds the same rows."""
    folder, entries, text = report
    page = Page(text)
    assert "ranking.tsv" in page.links and "hits.tsv" in page.links
    for table in ("ranking", "hits", "plates"):
        assert page.classes[table] == "sortable"
    ranking = pd.read_csv(folder / "ranking.tsv", sep="\t")
    shown = page.tables["ranking"][1:]
    pairs = list(zip(ranking["method"], ranking["correction"]))
    assert [(row[1], row[2]) for row in shown] == pairs
    assert [row[4].split()[0] for row in shown] == [f"{v:.3f}" for v in ranking["overall"]]
    hits = pd.read_csv(folder / "hits.tsv", sep="\t")
    header, *rows = page.tables["hits"]
    assert header == ["treatment", "mAP", "corrected p", "active", "seeds active"]
    assert hits.columns.tolist() == header
    assert [row[0] for row in rows] == hits["treatment"].tolist() == ["t1", "t2", "t3", "t4", "t5"]
    assert [row[1] for row in rows] == [f"{v:.3f}" for v in hits["mAP"]]
    assert [row[3] for row in rows] == hits["active"].tolist()
    first = ranking.iloc[0]
    assert f"Hit list: {first['method']} + {first['correction']}" in text
    per_treatment = [
        e["metrics"]["per_treatment"]
        for e in entries
        if (e["metrics"]["method"], e["correction"]) == (first["method"], first["correction"])
    ]
    assert len(per_treatment) == 2  # both seeds
    t1 = [r["mean_average_precision"] for p in per_treatment for r in p if r[TREATMENT] == "t1"]
    assert hits.loc[hits["treatment"] == "t1", "mAP"].item() == pytest.approx(np.mean(t1), 1e-3)


def test_a_umap_per_source_drawn_the_same_for_the_same_seed(report):
    _, _, text = report
    umap = text.split("id='section-umap'>")[1].split("<h2")[0]
    images = re.findall(r"<figure><img src=\"data:image/png;base64,", umap)
    captions = re.findall(r"UMAP of the well profiles of (\S+), per correction", umap)
    assert len(images) == 2 and captions == ["erm_seed0", "abra_seed0"]
    assert "abra_seed1" in umap.split("Further seeds' UMAPs")[1]
    values = wells_table(batch_shift=2.0).filter(like="emb_").to_numpy()
    first, again = umap_embedding(values, 3), umap_embedding(values, 3)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (len(values), 2) and not np.allclose(first, umap_embedding(values, 4))


def test_umaps_distances_are_umap_learns_cosine_on_every_pair():
    """The matrix UMAP is given below UMAP_EXACT_WELLS wells is umap-learn's own cosine metric,
    zero profiles included (1 to any other, 0 to each other)."""
    from debatch.core.compiled import import_with_numba_cache

    cosine = import_with_numba_cache("umap.distances").cosine
    values = np.random.default_rng(0).normal(size=(30, 12))
    values[[4, 9]] = 0.0
    expected = np.array([[cosine(a, b) for b in values] for a in values])
    np.testing.assert_allclose(cosine_distances(values), expected, rtol=0, atol=1e-12)


def test_a_umap_of_too_few_wells_says_why_it_is_missing():
    wells = wells_table().head(4)
    figure = umap_figure({"none": wells}, "tiny", seed=0, max_wells=100)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert texts == ["no UMAP: 4 wells (needs 5)"] * 2


def test_plate_qc_is_one_table_with_the_worst_plates_figures_inline_and_the_rest_linked(report):
    """Every plate is a row, worst first; only the CAP worst plates' figures are embedded; every
    plate's figures (and the cells-per-well overview of more plates than CAP) are files beside
    the page, linked from the page."""
    folder, _, text = report
    page = Page(text)
    header, *rows = page.tables["plates"]
    worst = sorted(PLATES, key=lambda p: (-FAILED[p], p))
    assert [row[0] for row in rows] == worst[:3] + ["P4", "P2"]  # ties: fewer cells first
    failed = dict(zip(header, rows[0]))
    assert failed["failed sites"] == "4" and failed["failed share"] == "50.0%"
    assert failed["failed by"] == "cell count 4"
    inline = re.findall(r"<h3 id='plate-(\w+)'>", text)
    assert inline == worst[:CAP]
    qc = text.split("id='section-qc'>")[1]
    assert len(re.findall(r"<img ", qc)) == 2 * CAP
    for plate in PLATES:
        for name in ("heatmaps", "illum"):
            assert f"plates/{plate}/{name}.png" in page.links
            assert (folder / "plates" / plate / f"{name}.png").stat().st_size > 1000
    assert "plates/cells_per_well.png" in page.links
    assert (folder / "plates" / "cells_per_well.png").is_file()
    assert [row[-1].startswith("shown below") for row in rows] == [True] * CAP + [False] * 3


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


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)"
)
def test_a_click_on_a_header_sorts_the_table_in_chromium(report, tmp_path):
    """The page's own script, run by a browser: clicking "overall" orders the ranking from the
    lowest up, a second click from the highest; two clicks on "treatment" sort the hit list
    by name from z to a. The clicks are appended to a copy of the page, the DOM read back
    after they ran."""
    folder, _, text = report
    clicks = (
        "<script>var h=document.querySelectorAll('#ranking thead th')[4];h.click();"
        "var first=document.querySelector('#ranking tbody tr').cells[4].textContent;h.click();"
        "document.body.setAttribute('data-first',first);"
        "var t=document.querySelectorAll('#hits thead th')[0];t.click();t.click();</script></body>"
    )
    page = folder / "clicked.html"
    page.write_text(text.replace("</body>", clicks))
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    page.unlink()
    shown = Page(dom)
    overall = [float(row[4].split()[0]) for row in shown.tables["ranking"][1:]]
    lowest = re.search(r'data-first="([^"]+)"', dom).group(1)
    assert float(lowest.split()[0]) == min(overall)
    assert overall == sorted(overall, reverse=True)
    treatments = [row[0] for row in shown.tables["hits"][1:]]
    assert treatments == sorted(treatments, reverse=True) and len(treatments) == 5


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
    ranking = text.split("<table id='ranking' class='sortable'>")[1].split("</table>")[0]
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
    from debatch.report.tables import WORST, score_shades, shade

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


def test_a_rotation_says_batches_were_held_out_in_turn_with_intervals_over_them(tmp_path):
    """Every batch held out in turn: the ranking counts a method's folds as its runs, the page
    says so and shows each held-out batch's score with the interval over batches, and the
    verdict still compares the first two rows on held-out wells."""
    plot_pca(wells_table(), "pca", tmp_path / "pca.png")
    entries = []
    for method, effect in (("erm", 0.6), ("deepnoise", 3.0)):
        wells = wells_table(batch_shift=1.0, effect=effect)
        for fold in ("b0", "b1", "b2"):
            metrics = compute_metrics(wells, {"map_null_size": 200}, [fold])
            source = f"{method}-{fold}_seed0"
            run = {"method": method, "seed": 0, "fold": fold, "source": source}
            entries.append(
                {
                    "correction": "none",
                    "figure": str(tmp_path / "pca.png"),
                    "metrics": {**metrics, **run, "correction": "none"},
                }
            )
    text = render(entries, {"title": "rotation", "bootstrap": 300})
    page, verdict = Page(text), text.split("class='verdict'>")[1].split("</p>")[0]
    ranking = pd.DataFrame(page.tables["ranking"][1:], columns=page.tables["ranking"][0])
    assert ranking["seeds"].tolist() == ["3", "3"] and ranking["method"][0] == "deepnoise"
    header, *rows = page.tables["rotation"]
    assert header[:3] == ["method", "correction", "runs"]
    assert {"held out b0", "held out b1", "held out b2", "95 % interval over batches"} <= set(
        header
    )
    assert [row[0] for row in rows] == ["deepnoise", "erm"]
    assert "every batch was held out in turn" in text
    assert "(every batch held out in turn)" in verdict
    assert "held-out score against the runner-up erm + none" in verdict
    assert text.count("PCA of well profiles (deepnoise-b0_seed0") == 1
    assert "PCA of well profiles (deepnoise-b1_seed0" not in text
