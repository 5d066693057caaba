"""Crops: a fixed-size, illumination-corrected image around every eligible cell, or of every
whole site that passed QC (``crops.unit: site``).

- ``eligible``: selects which cells (``select_cells``) or sites (``select_sites``) get a crop;
- ``cut``: cuts and writes a plate's crops (``write_plate_crops``);
- ``sites``: area-averages and writes a plate's whole sites (``write_plate_sites``);
- ``store``: opens a plate's crops with their table (``open_plate``).
"""

__all__ = ["eligible", "cut", "sites", "store"]
