"""Crops: a fixed-size, illumination-corrected image around every eligible cell.

- ``eligible``: selects which cells get a crop (``select_cells``);
- ``cut``: cuts and writes a plate's crops (``write_plate_crops``);
- ``store``: opens a plate's crops with their table (``open_plate``).
"""

__all__ = ["eligible", "cut", "store"]
