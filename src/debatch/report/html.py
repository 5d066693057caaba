"""The HTML report: one self-contained page comparing every method x correction over seeds.

Figures are embedded as base64 PNGs and the page runs no fetched script, so the file can be
mailed or opened from a cluster's scratch folder without a server. What does not fit a page at
screen scale is written beside it (:func:`write_report`) and linked relatively: the ranking and
the hit list as TSV, every plate's QC figures under ``plates/``.
"""

from __future__ import annotations

import datetime
import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import yaml

from debatch.core.io import atomic_path, write_text
from debatch.core.provenance import code_version
from debatch.evaluate import verdict
from debatch.report.gallery import gallery_text
from debatch.report.hits import HITS_TSV, hits_section, hits_table
from debatch.report.plates import CELLS_PER_WELL, FIGURES, plate_summary, worst_plates
from debatch.report.tables import (
    SORT_SCRIPT,
    Contents,
    download_link,
    figure,
    generalisation_table,
    html_table,
    ranking_display,
    ranking_table,
    rotation_section,
    score_shades,
    scores_table,
    training_table,
    values_table,
)
from debatch.report.wilds import WILDS_TSV, wilds_section, wilds_table
from debatch.settings import CROPS, REPORT

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em;
box-sizing:border-box}table{border-collapse:collapse;margin:1em 0;font-size:85%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0}td.text{text-align:left}img{max-width:100%}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#999}
figure{margin:1em 0}figcaption{color:#555;font-size:90%}p.note{color:#444;font-size:92%}
p.verdict{font-size:110%;background:#f4f7fb;border-left:4px solid #1f77b4;padding:.6em 1em}
p.warning{background:#fff4e5;border-left:4px solid #d9822b;padding:.6em 1em}
p.provenance{color:#555;font-size:90%}nav.toc{background:#f7f7f7;padding:.4em 1em;margin:1em 0}
nav.toc ol{margin:.3em 0;columns:2}div.scroll{max-height:40em;overflow:auto}
pre{white-space:pre-wrap;font-size:85%}
"""
# Click a header of a sortable table to sort by that column (again: the other way). Cells that
# start with a number sort as numbers (a leading flag sign is skipped), "n/a" and text last.
RANKING_TSV, PLATES_DIR = "ranking.tsv", "plates"

RANKING_NOTE = (
    "Rows are method x correction, averaged over seeds (± sd over seeds). Overall weighs the "
    "two jobs a screen is run for (diagnostics.activity_weight): activity (calling hits: the "
    "mean of each treatment's mAP against negcon and the share of treatments called active) "
    "and generalisation (each held-out well "
    "retrieving its treatment among the training batches' wells: mean of the chance-corrected"
    " 1-NN accuracy and the cross-batch mAP; kNN leave-one-batch-out without held-out "
    "batches). Batch and bio are the means of their metrics' [0, 1] scores (table below; "
    "docs/metrics.md), shown, not ranked on: on generated screens whose truth is known they "
    "did not follow it. A correction fitted with the held-out wells (Harmony) is marked; its "
    "held-out scores are not out of sample. The difference to each reference method (same "
    "correction) is paired by seed and held-out well; its 95 % interval is a bootstrap over "
    "the held-out wells, and it is real only when the interval excludes 0. Over-correction "
    "flags: batch prediction below chance, replicate wells pulled apart, held-out retrieval "
    "below the uncorrected row."
)

GENERALISATION_NOTE = (
    "Held-out: wells of batches never seen in training, each retrieved among the training "
    "batches' wells (1-NN accuracy, cross-batch mAP); wells of a treatment the training batches "
    "lack are left out and counted. Truth (generated screens only): sensitivity = truly active "
    "treatments called active (retrieved by mAP), specificity = truly inactive ones called "
    "inactive, AUC = mAP ranks active above inactive; hit rate = truly active treatments whose "
    "mAP beats all but 20 % of the truly inactive ones, matching = held-out wells of truly "
    "active treatments matched to their treatment (1-NN and AP), truth score = their mean "
    "(docs/metrics.md). The verdict above never uses the truth: these columns check it."
)


def _left_out(entries: list[dict], plates: list[str] | None) -> list[str]:
    """A warning naming the plates no profile holds (qc.plate_without_negcon: drop)."""
    profiled = {p for entry in entries for p in entry["metrics"].get("plates", [])}
    missing = sorted(set(plates or []) - profiled) if profiled else []
    if not missing:
        return []
    text = (
        f"Left out of every profile: plate(s) {', '.join(missing)}. Their negcon wells kept no "
        "cell after QC, so they could not be normalised (qc.plate_without_negcon: drop); see "
        "the QC log of each plate."
    )
    return [f"<p class='warning'><b>{html.escape(text)}</b></p>"]


def headline(table: pd.DataFrame, entries: list[dict], params: dict | None = None) -> list[str]:
    """The report's first paragraph, from the ranking's numbers: what to use and how sure
    that is, how much batch it leaves, how many treatments it retrieves."""
    report = REPORT.merge(params)
    return verdict.headline(table, entries, report["bootstrap"], report["seed"])


def _ranking_section(
    contents: Contents,
    table: pd.DataFrame,
    entries: list[dict],
) -> list[str]:
    """The ranking, every metric's score, held-out / truth."""
    parts = [
        contents.heading(2, "Ranking: method x correction", "ranking"),
        f"<p class='note'>{html.escape(RANKING_NOTE)} Colours run from the worst (orange) to "
        "the best (blue) value of each column; ⚠ marks a value an over-correction flag "
        "discredits (shown as the worst).</p>",
        download_link(RANKING_TSV, "the ranking"),
        html_table(ranking_display(table), "ranking", score_shades(table), sortable=True),
        *rotation_section(entries),
        "<h3>Every metric's score, per seed</h3>",
        html_table(scores_table(entries), "scores", sortable=True),
        "<h3>Raw values</h3><p class='note'>Batch acc: cross-validated accuracy of "
        "predicting the batch (lower is better); LISI values are effective numbers of "
        "batches / treatments around a well.</p>",
        html_table(values_table(entries), "values", sortable=True),
    ]
    generalisation = generalisation_table(entries)
    if generalisation.shape[1] > 2:
        parts += [
            "<h3>Held-out batches and ground truth</h3>",
            f"<p class='note'>{html.escape(GENERALISATION_NOTE)}</p>",
            html_table(generalisation, "generalisation", sortable=True),
        ]
    return parts


def _training_section(
    contents: Contents, training_logs: dict | None, model_cards: dict | None, frozen
) -> list[str]:
    """Each model's last epoch and its card: trained here or frozen, on what, where."""
    if not training_logs and not model_cards:
        return []
    return [
        contents.heading(2, "Training"),
        "<p class='note'>Cell-level treatment accuracy at the last "
        "epoch; held-out batches were never seen in training. A frozen model was trained "
        "in another run (embed.models): 'trained in' names its folder.</p>",
        html_table(training_table(training_logs or {}, model_cards, frozen), "training"),
    ]


def _first_seeds(entries: list[dict]) -> dict[str, tuple]:
    """Per method, its first run (seed, held-out batch when rotating): the one whose figures
    the page shows (further runs' figures look alike and would multiply the page's size; they
    are files beside their metrics)."""
    first = {}
    for entry in entries:
        method, seed = entry["metrics"]["method"], entry["metrics"].get("seed")
        if seed is not None:
            run = (seed, entry["metrics"].get("fold", ""))
            first[method] = min(run, first.get(method, run))
    return first


def _shown(metrics: dict, first_seed: dict[str, tuple]) -> bool:
    run = (metrics.get("seed"), metrics.get("fold", ""))
    return run[0] is None or run == first_seed[metrics["method"]]


def _gallery_section(contents: Contents, gallery: str, unit: str) -> list[str]:
    """The gallery's heading and figure, worded for cells or whole sites (crops.unit)."""
    heading, note = gallery_text(unit)
    return [contents.heading(2, heading, "gallery"), figure(gallery, note)]


def _umap_section(
    contents: Contents, entries: list[dict], umap_figures: dict[str, str] | None
) -> list[str]:
    """One UMAP figure per source (each method's first seed)."""
    parts = [contents.heading(2, "UMAP of well profiles", "umap")]
    if not umap_figures:
        return parts + [
            "<p class='note'>No UMAP figures were given to this page (the workflow draws "
            "diagnostics/{source}/umap.png per source).</p>"
        ]
    first_seed = _first_seeds(entries)
    sources = {e["metrics"]["source"]: e["metrics"] for e in entries}
    parts.append(
        "<p class='note'>Per source, one UMAP (umap-learn, cosine distance, report.umap_seed) "
        "per correction, coloured by batch and by treatment (negcon grey; by role when there "
        "are too many treatments to list). Batches that separate here are batch effect left; "
        "the PCA of each source below shows the same wells on linear axes.</p>"
    )
    hidden = []
    for source, path in umap_figures.items():
        metrics = sources.get(source)
        if metrics is not None and not _shown(metrics, first_seed):
            hidden.append(source)
            continue
        parts.append(figure(path, f"UMAP of the well profiles of {source}, per correction."))
    if hidden:
        parts.append(
            f"<p class='note'>Further seeds' UMAPs ({html.escape(', '.join(hidden))}) are in "
            "diagnostics/{source}/umap.png.</p>"
        )
    return parts


def _source_sections(
    contents: Contents, entries: list[dict], source_figures: dict[str, str] | None
) -> list[str]:
    """Per source: its metric bars, then per correction its PCA and metrics.json. Figures are
    shown for each method's first seed only; their metrics are all here, their PNGs beside
    their metrics."""
    first_seed = _first_seeds(entries)
    parts = []
    for source in dict.fromkeys(entry["metrics"]["source"] for entry in entries):
        mine = [e for e in entries if e["metrics"]["source"] == source]
        method = mine[0]["metrics"]["method"]
        shown = _shown(mine[0]["metrics"], first_seed)
        parts.append(contents.heading(2, f"Source: {source}", f"source {source}"))
        if not shown:
            seed, fold = first_seed[method]
            run = f"seed {seed}" + (f" with {fold} held out; this run" if fold else "; this seed")
            parts.append(
                f"<p class='note'>Figures of {html.escape(method)} are shown for {html.escape(run)}"
                f"'s are in diagnostics/{html.escape(source)}/.</p>"
            )
        if shown and source_figures and source in source_figures:
            caption = f"Metric scores of {source} per correction (1 = best)."
            parts.append(figure(source_figures[source], caption))
        for entry in mine:
            name = f"{source} / {entry['correction']}"
            caption = (
                f"PCA of well profiles ({name}), coloured by batch and by treatment (negcon grey)."
            )
            metrics = {k: v for k, v in entry["metrics"].items() if k != "holdout"}
            metrics["holdout"] = {
                k: v for k, v in entry["metrics"].get("holdout", {}).items() if k != "per_well"
            }
            text = html.escape(json.dumps(metrics, indent=2))
            parts += [
                f"<h3>{html.escape(name)}</h3>",
                *([figure(entry["figure"], caption)] if shown else []),
                f"<details><summary>metrics.json</summary><pre>{text}</pre></details>",
            ]
    return parts


@dataclass
class PlateQC:
    """Per-plate QC for the report: ``sites``, every plate's QC table (qc/{plate}.parquet,
    concatenated); ``figures``, plate -> {FIGURES name -> PNG}; ``cells_per_well``, the PNG of
    every plate's cells per well (diagnostics/plate_qc.png)."""

    sites: pd.DataFrame
    figures: dict[str, dict[str, str]] = field(default_factory=dict)
    cells_per_well: str | None = None


def plate_link(plate: str, name: str) -> str:
    """Where a plate's QC figure is beside the page (relative to it)."""
    return f"{PLATES_DIR}/{quote(plate)}/{quote(name)}.png"


def _qc_section(contents: Contents, plate_qc: PlateQC, cap: int) -> list[str]:
    """Every plate as a row of one sortable table (worst first), the worst ``cap`` plates'
    figures embedded, every plate's figures linked beside the page."""
    summary = plate_summary(plate_qc.sites)
    worst = worst_plates(summary, cap)
    anchors = {plate: f"plate-{re.sub(r'[^A-Za-z0-9_-]+', '-', plate)}" for plate in worst}
    parts = [contents.heading(2, "Quality control", "qc")]
    if summary.empty:
        return parts + ["<p class='note'>No plate's QC table was given to this page.</p>"]
    parts.append(
        f"<p class='note'>{len(summary)} plates, worst first: the largest share of sites failing "
        "QC, then the fewest cells per site (failed by: sites per QC test). The figures of the "
        f"{len(worst)} worst (report.max_plate_figures) are shown below; every plate's are files "
        f"beside this page ({PLATES_DIR}/), linked from its row.</p>"
    )
    if plate_qc.cells_per_well:
        caption = "Cells per well on every plate (a QC value: density differs by batch)."
        if len(summary) <= cap:
            parts.append(figure(plate_qc.cells_per_well, caption))
        else:
            link = f"{PLATES_DIR}/{CELLS_PER_WELL}.png"
            parts.append(
                f"<p class='note'><a href='{link}'>{html.escape(caption)}</a> "
                f"({len(summary)} plates: a file beside this page).</p>"
            )
    shown = summary.copy()
    shown["failed share"] = [f"{v:.1%}" for v in summary["failed share"]]

    def links(plate: str) -> str:
        found = [
            f"<a href='{plate_link(plate, name)}'>{name}</a>"
            for name in FIGURES
            if name in plate_qc.figures.get(plate, {})
        ]
        if plate in anchors:
            found.insert(0, f"<a href='#{anchors[plate]}'>shown below</a>")
        return " · ".join(found)

    shown["figures"] = [links(plate) for plate in summary["plate"]]
    table = html_table(shown, "plates", sortable=True, markup=("figures",))
    parts.append(f"<div class='scroll'>{table}</div>")
    for plate in worst:
        row = summary[summary["plate"] == plate].iloc[0]
        parts.append(
            f"<h3 id='{anchors[plate]}'>{html.escape(plate)}: {row['failed sites']} of "
            f"{row['sites']} sites failed QC, {row['cells per site']:.1f} cells per site</h3>"
        )
        for name, caption in FIGURES.items():
            path = plate_qc.figures.get(plate, {}).get(name)
            if path:
                parts.append(figure(path, f"{plate}: {caption}."))
    return parts


def _config_section(contents: Contents, config: dict | None) -> list[str]:
    parts = [contents.heading(2, "Configuration", "config")]
    if config is None:
        return parts + ["<p class='note'>No configuration was given to this page.</p>"]
    text = yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False)
    return parts + [
        "<p class='note'>The configuration this report was made with (config/config.yaml "
        "with every overlay merged; each key is explained in config/config.yaml).</p>",
        f"<details><summary>config (YAML)</summary><pre id='config-yaml'>{html.escape(text)}"
        "</pre></details>",
    ]


def render(
    entries: list[dict],
    params: dict | None = None,
    plate_qc: PlateQC | None = None,
    training_logs: dict[str, str] | None = None,
    model_cards: dict[str, str] | None = None,
    frozen=(),
    source_figures: dict[str, str] | None = None,
    plates: list[str] | None = None,
    warnings: list[str] = (),
    gallery: str | None = None,
    umap_figures: dict[str, str] | None = None,
    config: dict | None = None,
    made: datetime.datetime | None = None,
    ranking: pd.DataFrame | None = None,
    wilds: pd.DataFrame | None = None,
) -> str:
    """HTML text of the report.

    ``entries``: dicts with correction, metrics (metrics.json: source, method, seed, ...) and
    figure (PCA PNG path). ``params``: the ``report`` block (title, references, bootstrap, seed,
    max_plate_figures). ``plate_qc``: per-plate QC (:class:`PlateQC`), the page's last section.
    ``training_logs``: source -> training_log.tsv, summarised as a table with ``model_cards``
    (source -> model.json); ``frozen``: the sources whose model was trained in another run.
    ``source_figures``: source -> metric-bars PNG, shown at the top of the source's section.
    ``plates``: every plate of the screen; those missing from the profiles are named first.
    ``warnings``: further lines shown first (e.g. QC failures concentrated in a treatment).
    ``gallery``: PNG of example cells per treatment (debatch.report.gallery), after the ranking.
    ``umap_figures``: source -> UMAP PNG (debatch.report.figures.plot_umap).
    ``config``: the run's configuration, shown as YAML; ``made``: the date shown (now).
    ``ranking``: :func:`ranking_table` of ``entries`` when already computed; ``wilds``: the
    WILDS protocol's table (debatch.report.wilds), shown after the training section.
    Links (TSV downloads, plate figures) point beside the page: :func:`write_report` writes
    those files.
    """
    report = REPORT.merge(params)
    title = report["title"]
    made = made or datetime.datetime.now().astimezone()
    contents = Contents()
    table = ranking_table(entries, report) if ranking is None else ranking
    body = [
        *_ranking_section(contents, table, entries),
        *_training_section(contents, training_logs, model_cards, frozen),
        *wilds_section(contents, wilds),
        *hits_section(contents, table, entries),
        *(
            _gallery_section(contents, gallery, CROPS.merge((config or {}).get("crops"))["unit"])
            if gallery
            else []
        ),
        *_umap_section(contents, entries, umap_figures),
        *_source_sections(contents, entries, source_figures),
        *(_qc_section(contents, plate_qc, report["max_plate_figures"]) if plate_qc else []),
        *_config_section(contents, config),
    ]
    parts = [
        *_page_head(title, made),
        *_left_out(entries, plates),
        *(f"<p class='warning'><b>{html.escape(text)}</b></p>" for text in warnings),
        f"<p class='verdict'>{html.escape(' '.join(headline(table, entries, report)))}</p>",
        contents.html(),
        *body,
        f"<script>{SORT_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _page_head(title: str, made: datetime.datetime) -> list[str]:
    """The page's head, title and provenance line (code version, date, a link to the config)."""
    provenance = (
        f"Made by debatch {html.escape(code_version())} on "
        f"{made.strftime('%Y-%m-%d %H:%M %Z').strip()}; <a href='#section-config'>its "
        "configuration</a> is at the end of the page."
    )
    return [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='provenance' id='provenance'>{provenance}</p>",
    ]


def _copy(source, target: Path) -> None:
    """A copy with its own modification time (a hard link would keep the source's, older than
    the report's other inputs, and Snakemake would rerun the report every time)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def write_report(folder, entries: list[dict], params: dict | None = None, **page) -> Path:
    """The report in ``folder``: index.html (:func:`render`, ``page`` its further arguments),
    ranking.tsv and hits.tsv (the page's ranking and hit list, every column), wilds.tsv (the
    WILDS protocol's table, when a model was trained under it), and every
    plate's QC figures under plates/ (plates/{plate}/{name}.png, plates/cells_per_well.png),
    which the page links. Returns index.html's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = REPORT.merge(params)
    plate_qc: PlateQC | None = page.get("plate_qc")
    if plate_qc is not None:
        for plate, figures in plate_qc.figures.items():
            for name, path in figures.items():
                _copy(path, folder / PLATES_DIR / plate / f"{name}.png")
        if plate_qc.cells_per_well:
            _copy(plate_qc.cells_per_well, folder / PLATES_DIR / f"{CELLS_PER_WELL}.png")
    table = ranking_table(entries, report)
    with atomic_path(folder / RANKING_TSV) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    with atomic_path(folder / HITS_TSV) as tmp:
        hits_table(table, entries).to_csv(tmp, sep="\t", index=False, float_format="%.4g")
    wilds = wilds_table(page.get("training_logs") or {}, page.get("model_cards") or {})
    if not wilds.empty:
        with atomic_path(folder / WILDS_TSV) as tmp:
            wilds.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    index = folder / "index.html"
    write_text(render(entries, report, ranking=table, wilds=wilds, **page), index)
    return index
