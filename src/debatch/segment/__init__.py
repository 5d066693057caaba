"""Segmentation: nuclei and cells of every site of a plate shard, with per-site image QC.

propagate (classical nuclei + propagation into the cell channel) or cellpose find the objects;
cell_table gives the cells table; qc measures focus/saturation and flags sites; shards segments
one shard of a plate (debatch.core.shards splits and gathers); score compares label images;
qc_figures draws the QC.
"""
