"""Segmentation: nuclei and cells of every site of a plate shard, with per-site image QC.

propagate (classical nuclei + propagation into the cell channel) or cellpose find the objects;
measure gives the cells table; qc measures focus/saturation and flags sites; shards splits a
plate into jobs and gathers them back; score compares label images; figures draws the QC.
"""
