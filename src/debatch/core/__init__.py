"""Helpers every stage shares.

- ``io``: writes files atomically (``atomic_path``, ``write_parquet``, ``NpzWriter``);
- ``images``: reads raw sites and a plate's illumination functions, and applies them
  (``read_site``, ``read_illum``);
- ``wells``: converts well names to plate positions and back (``well_position``, ``well_name``);
- ``logs``: sets up a job's logging (``setup_logging``);
- ``parallel``: counts usable cores and maps over threads with bounded read-ahead;
- ``plotting``: sets up matplotlib and draws the plate heatmap (``draw_plate``);
- ``stats``: computes robust statistics (``median_and_mad``, ``pca``);
- ``device``: resolves the torch device, importing torch only when asked (``resolve_device``);
- ``provenance``: records how a file was made, inside the file (``job_provenance``);
- ``shards``: splits a plate's sites into jobs and gathers their outputs back;
- ``compiled``: imports umap-learn and cellpose so that their numba functions use numba's
  on-disk cache (``import_with_numba_cache``);
- ``sorting``: sorts a site's float32 pixels by radix for medians and Li's tolerance
  (``sort_float32``).
"""

__all__ = [
    "io",
    "images",
    "wells",
    "logs",
    "parallel",
    "plotting",
    "stats",
    "device",
    "provenance",
    "shards",
    "compiled",
    "sorting",
]
