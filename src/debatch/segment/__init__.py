"""Segmentation: nuclei and cells of every site of a plate shard, with per-site image QC.

- ``propagate``: segments a site the CellProfiler way: nuclei, then propagation (``segment_site``);
- ``grow``: propagates seeds over a mask, compiled with numba (``propagate``);
- ``holes``: fills the background holes of grown cells, as CellProfiler (``fill_background_holes``);
- ``cellpose``: segments with a cellpose model (``CellposeSegmenter``);
- ``cell_table``: measures a segmented site into the cells table's rows (``measure_site``);
- ``quality``: measures a site's focus, saturation and intensity (``image_quality``);
- ``qc``: flags the sites that fail image quality control (``flag_sites``);
- ``shards``: segments one shard of a plate's sites (``segment_shard``);
- ``gather``: checks and logs a segmented plate (``check_plate``, ``plate_summary``);
- ``score``: scores label images against a reference (``score_against_labels``);
- ``qc_figures``: draws the QC overlays and plate heatmaps (``plot_overlays``).
"""

__all__ = [
    "propagate",
    "grow",
    "holes",
    "cellpose",
    "cell_table",
    "quality",
    "qc",
    "shards",
    "gather",
    "score",
    "qc_figures",
]
