"""The report: one self-contained HTML page comparing every source x correction.

- ``figures``: draws the diagnostics' figures (``plot_pca``, ``plot_umap``, ``plot_metric_bars``);
- ``gallery``: draws example cells per treatment from the crops (``plot_gallery``);
- ``hits``: the per-treatment hit list of the ranking's first row (``hit_list``);
- ``plates``: per-plate QC at screen scale: one summary row per plate, the worst plates first;
- ``tables``: the page's tables (ranking as shown, scores, values, held-out, training), their
  colours and HTML building blocks (sortable tables, TSV links, figures, contents);
- ``wilds``: the WILDS protocol's table: OOD, validation and ID accuracy at each model's
  selected epoch, over seeds (``wilds_table``);
- ``html``: writes the page (contents, tables, verdict, embedded figures) and the files it links
  (``write_report``).
"""

__all__ = ["figures", "gallery", "hits", "html", "plates", "tables", "wilds"]
