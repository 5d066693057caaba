"""Features stage: CellProfiler's per-cell measurements (cp_measure) of Nuclei, Cells, Cytoplasm.

- ``objects``: the three object sets of a segmented site (Cytoplasm as CellProfiler makes it);
- ``site``: every measurement module on one site, named as CellProfiler names it;
- ``granularity``, ``radial``, ``colocalization``: the modules whose image-level work is shared
  across object sets or channels instead of repeated (same numbers as cp_measure);
- ``plate``: one shard of a plate's sites, in the cells table's row order.
"""
