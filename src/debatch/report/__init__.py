"""The report: one self-contained HTML page comparing every source x correction.

- ``figures``: draws the diagnostics' figures (``plot_pca``, ``plot_metric_bars``);
- ``gallery``: draws example cells per treatment from the crops (``plot_gallery``);
- ``html``: writes the page (tables, verdict, embedded figures).
"""

__all__ = ["figures", "gallery", "html"]
