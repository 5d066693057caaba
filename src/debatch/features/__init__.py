"""Features stage: CellProfiler's per-cell measurements (cp_measure) of Nuclei, Cells, Cytoplasm.

- ``objects``: makes the three object sets of a segmented site (``object_sets``) and their
  bounding boxes (``bounding_boxes``);
- ``site``: measures every module on one site, named as CellProfiler names it (``measure_site``);
- ``granularity``, ``radial``, ``colocalization``: measure the modules whose image-level work is
  shared across object sets or channels instead of repeated (same numbers as cp_measure);
- ``intensity``: MeasureObjectIntensity, its quartiles read by selection, not by sorting
  (``get_intensity``, cp_measure's numbers);
- ``shape``: MeasureObjectSizeShape, every object measured in passes over the label image, not
  by per-object regionprops (``get_sizeshape``, cp_measure's numbers);
- ``texture``: MeasureTexture, every object's crop cut in one compiled loop
  (``get_texture``, cp_measure's numbers);
- ``plate``: measures a plate's sites, or one shard of them, in the cells table's row order
  (``measure_shard``);
- ``gather``: gathers a plate's features from its shards, checked against the cells table
  (``gather_features``, ``check_cells_order``).
"""

__all__ = [
    "objects",
    "site",
    "granularity",
    "radial",
    "colocalization",
    "intensity",
    "shape",
    "texture",
    "plate",
    "gather",
]
